"""What the loose-match bar (rank.hold_loose, reference.similarity_bar) holds back, on CiteULike.

A digest picks papers that clear the floor, a score calibrated against the store; in a store of other fields the
floor still lets its least unrelated papers through, so a pick must also be as close to something the reader
named as one pair in ten of random papers (the bar, from ``digest/data/reference_titles.txt``). This measures
both sides, with the production ranking (``rank.rank`` with the bar, as the pipeline calls it):

* **own field** (the cost): the quality.py protocols (static k=5, hard k=5, online 5 seeds + thumbs), the
  background the random pool: of the day's top 10 that clear the floor, the share held back, for the
  reader's library papers (which a digest should show) and for the others;
* **other field** (the point): the same readers' 5 seeds against a store of another reader's field (the
  neighbour pool of a reader who shares no paper with them, the least close of 60 by library centroid or the
  one at the lower quartile: ``--other``), that store's papers as background and 100 of them as candidates:
  of the top 10 that clear the floor there, the share held back.

Example:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/loose.py --seed 2 --users 150
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

from digest import evaluation  # noqa: E402
from digest.models import Paper  # noqa: E402
from digest.rank import DEFAULT_FLOOR, rank  # noqa: E402
from digest.reference import PAIR_QUANTILE, reference_titles  # noqa: E402


def top_cleared(seeds, feedback, cands, background, bar):
    """The production ranking's top 10 of ``cands`` that clear the floor: (index, held back?) pairs."""
    signals = evaluation.signals_for(seeds, feedback, 0)
    papers = [Paper(title=t) for t in cands]
    ranking = rank(signals, evaluation.embed(cands), papers, max_items=len(papers),
                   background_vecs=evaluation.embed(background), min_similarity=bar)
    index = {id(p): i for i, p in enumerate(papers)}
    return [(index[id(s.paper)], "loose" in s.details) for s in ranking.scored[:quality.SHOWN]
            if s.score >= DEFAULT_FLOOR]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=quality.ROOT / "../shared/data/citeulike-a")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--online-users", type=int, default=40)
    parser.add_argument("--other", choices=["least", "quartile"], default="least",
                        help="the other field: the least close reader of 60, or the one at the lower quartile")
    parser.add_argument("--model", default=quality.DEFAULT_MODEL)
    parser.add_argument("--cache-dir", type=Path, default=quality.ROOT / ".cache")
    args = parser.parse_args()
    t0 = time.perf_counter()
    titles, vecs, _ = quality.load_for_ours(args.data, args.model, args.cache_dir)
    ref = evaluation.embed(list(reference_titles()))
    sims = ref @ ref.T
    bar = float(np.quantile(sims[np.triu_indices(len(ref), 1)], PAIR_QUANTILE))
    print(f"model {args.model}: bar {bar:.3f} (random reference pairs' {PAIR_QUANTILE:.0%} quantile)")
    setup = quality.Setup(load_users(args.data), len(titles), args.users, args.seed)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def text(ids):
        return [titles[i] for i in ids]

    own: dict[str, list[tuple[bool, bool]]] = {"static k=5": [], "hard k=5": [], "online": []}
    lost: dict[str, dict[int, int]] = {name: {} for name in own}  # reader -> library papers held back
    other: list[bool] = []
    pick_rng = np.random.default_rng([args.seed, 99])
    for u in setup.users:
        rng = np.random.default_rng([args.seed, u])  # quality.run_static's split
        lib = list(setup.libraries[u])
        rng.shuffle(lib)
        seeds, pos = lib[:5], lib[5:]
        for name, hard in (("static k=5", False), ("hard k=5", True)):
            neg_rng = np.random.default_rng([args.seed, u, 1])
            neg = setup.hard_negatives(u, set(lib), quality.NEGATIVES, neg_rng) if hard else \
                setup.random_negatives(set(lib), quality.NEGATIVES, neg_rng)
            for i, loose in top_cleared(text(seeds), [], text(pos + neg), text(setup.background), bar):
                own[name].append((i < len(pos), loose))
                if loose and i < len(pos):
                    lost[name][u] = lost[name].get(u, 0) + 1
        # a store of another reader's field, who shares no paper with this one
        others = [v for v in pick_rng.choice(len(setup.libraries), 60, replace=False).tolist()
                  if len(setup.libraries[v]) >= 30 and not set(setup.libraries[v]) & set(lib)]
        closeness = [float(unit[setup.libraries[v]].mean(0) @ unit[seeds].mean(0)) for v in others]
        order = np.argsort(closeness)
        v = others[int(order[0 if args.other == "least" else len(order) // 4])]
        field = sorted((set(setup.neighbour_pool(v, set(setup.libraries[v]))) | set(setup.libraries[v])) - set(lib))
        if len(field) >= 300:
            shuffled = np.random.default_rng([args.seed, u, 7]).permutation(field).tolist()
            store, cands = shuffled[:min(quality.BACKGROUND, len(shuffled) - 100)], shuffled[-100:]
            other += [loose for _, loose in top_cleared(text(seeds), [], text(cands), text(store), bar)]
    for u in setup.online_users[:args.online_users]:
        seeds, days = quality.online_days(setup, u, args.seed)
        feedback: list[tuple[str, int]] = []
        for cands, labels in days:
            top = top_cleared(text(seeds), feedback, text(cands), text(setup.background), bar)
            own["online"] += [(bool(labels[i]), loose) for i, loose in top]
            for i, loose in top:
                if loose and labels[i]:
                    lost["online"][u] = lost["online"].get(u, 0) + 1
            shown = quality.shown(evaluation.score(text(seeds), feedback, text(cands), text(setup.background)))
            feedback += [(titles[cands[i]], int(labels[i])) for i in shown]
    print(f"seed {args.seed}: {len(setup.users)} readers, {min(args.online_users, len(setup.online_users))} online")
    print("own field: of the top 10 that clear the floor, held back as loose matches")
    for name, rows in own.items():
        a = np.array(rows, dtype=bool).reshape(-1, 2)
        lib_rows, rest = a[a[:, 0]], a[~a[:, 0]]
        print(f"  {name:10s} library papers {lib_rows[:, 1].mean():.4f} (of {len(lib_rows)}), "
              f"others {rest[:, 1].mean():.4f} (of {len(rest)})")
        for u, n in sorted(lost[name].items(), key=lambda kv: -kv[1])[:5]:
            print(f"    reader {u}: {n} held back; library starts {' | '.join(t[:40] for t in text(setup.libraries[u][:3]))}")
    print(f"other field ({args.other} close of 60): of the top 10 that clear the floor there, held back "
          f"{np.mean(other):.3f} (of {len(other)})")
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
