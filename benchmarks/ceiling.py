"""How high can online P@10 go with these title vectors? Rankers that know the user's whole library.

The online protocol of quality.py (same users, seeds, daily batches) scored three ways:

* ``ours``: the production ranking with five seeds and the thumbs of the days before (what quality.py reports);
* ``ours, whole library``: the same production ranking, but with every library paper except today's ten
  positives as seeds (about 130 for a median user instead of 5 + the thumbs so far);
* ``logreg, whole library``: a per-user logistic regression (Scholar Inbox style) on the same vectors, trained
  on the whole library minus today's positives against the background.

The two whole-library rankers cheat on purpose: they know far more about the user than any digest can learn in
ten days. Their P@10 is a ceiling for what a ranker on these vectors reaches, so it says how far a target is
from what the representation supports.

Example:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ceiling.py --seed 2 --users 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (sets sys.path and the offline flags)
from citeulike import load_users  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=quality.ROOT / "../shared/data/citeulike-a")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--users", type=int, default=100, help="online users (the first of quality.py's sample)")
    parser.add_argument("--model", default=quality.DEFAULT_MODEL)
    parser.add_argument("--cache-dir", type=Path, default=quality.ROOT / ".cache")
    args = parser.parse_args()

    t0 = time.perf_counter()
    titles, vecs, _ = quality.load_for_ours(args.data, args.model, args.cache_dir)
    # quality.py's own methods; the Scholar Inbox baseline on these vectors, given the whole library as seeds
    methods = quality.make_methods(titles, vecs, ["ours", "logreg-same-model"], model_vecs=vecs)
    ours, logreg = methods["ours"], methods["logreg-same-model"]
    setup = quality.Setup(load_users(args.data), len(titles), 300, args.seed)
    bg = setup.background
    results: dict[str, list[list[float]]] = {"ours": [], "ours, whole library": [], "logreg, whole library": []}
    for u in setup.online_users[: args.users]:
        seeds, days = quality.online_days(setup, u, args.seed)
        feedback: list[tuple[int, int]] = []
        rows: dict[str, list[float]] = {name: [] for name in results}
        for cands, labels in days:
            today = {c for c, y in zip(cands, labels, strict=True) if y}
            known = [i for i in setup.libraries[u] if i not in today]
            scores = {"ours": ours(seeds, feedback, cands, bg),
                      "ours, whole library": ours(known, [], cands, bg),
                      "logreg, whole library": logreg(known, [], cands, bg)}
            for name, s in scores.items():
                top = quality.shown(s)
                rows[name].append(float(labels[top].mean()))
                if name == "ours":
                    feedback += [(cands[i], int(labels[i])) for i in top]
        for name in results:
            results[name].append(rows[name])
    n = len(results["ours"])
    print(f"model {args.model}, seed {args.seed}, {n} online users "
          f"(median library {int(np.median([len(setup.libraries[u]) for u in setup.online_users[:n]]))} papers)")
    for name, per_user in results.items():
        arr = np.array(per_user)
        lo, hi = quality.bootstrap(arr.mean(axis=1))
        print(f"{name:24s} P@10 {arr.mean():.3f} [{lo:.3f}, {hi:.3f}]   per day "
              + " ".join(f"{v:.2f}" for v in arr.mean(axis=0)))
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
