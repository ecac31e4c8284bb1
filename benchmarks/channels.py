"""Is there more in the ranking's own channels? An off-policy check on the online protocol (round 9).

Runs the online protocol with the production channels (``digest.rank.compute_channels`` on the profile that
``digest.evaluation.score`` builds; ranked by their ``z``, i.e. ``ours`` up to the score's rounding), records
per candidate the channels and the anchor z-scores behind them, then re-ranks the *same* days (same shown
papers, same votes) three ways:

* **global re-weighting**: a logistic regression on the channels (and the best seed / liked / disliked anchor
  z, and their products with the number of votes) fitted on the users of ``--train-seed``, applied to those of
  ``--test-seed``: how much a different combination of what is already computed could gain;
* **per-user stacking**: before each day, a logistic regression on the channels of the papers this user
  already voted on (as they were scored then), mixed into the score: per-user weights learned from the votes;
* **lexical channels**: a TF-IDF (words 1-2, or character 3-5-grams) logistic regression on seeds + 👍
  against background + 👎, added at a few weights: does the text's surface carry what the vectors miss?

Off-policy means the votes stay those of the production ranking; a re-ranking that would have shown other
papers would also have been taught by other votes, so the gains here are indicative, not final figures.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/channels.py --train-seed 1 --test-seed 2 --users 80
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (sets sys.path and the offline flags)
from citeulike import load_users  # noqa: E402

from digest import evaluation, rank  # noqa: E402

CHANNELS = ["z", "knn", "clf", "prf"]
ANCHORS = ["seed_max", "seed3", "liked_max", "liked3", "dis_max", "dis3"]
VOTED = ["v*clf", "v*knn", "v*prf", "v*dis3", "v*liked3"]


def run_days(setup: quality.Setup, titles: list[str], vecs: np.ndarray, seed: int, users: int) -> list[dict]:
    """One record per user and day: labels, the production channels, and the papers shown (top 10 by z)."""
    bg_vecs = vecs[setup.background]
    rows = []
    for u in setup.online_users[:users]:
        seeds, days = quality.online_days(setup, u, seed)
        feedback: list[tuple[int, int]] = []
        for d, (cands, labels) in enumerate(days):
            signals = evaluation.signals_for([titles[i] for i in seeds],
                                             [(titles[i], lab) for i, lab in feedback], vecs.shape[1])
            ch = rank.compute_channels(signals, vecs[cands], bg_vecs)
            kinds = np.array([a.kind for a in signals.anchors])
            row = {"u": u, "d": d, "labels": labels, "cands": list(cands), "nvotes": len(feedback),
                   "z": ch.z, "knn": ch.knn, "clf": _or0(ch.classifier), "prf": _or0(ch.prf),
                   "seeds": list(seeds), "feedback": list(feedback)}
            for kind in ("seed", "liked", "dis"):
                cols = np.where(kinds == ("disliked" if kind == "dis" else kind))[0]
                for k, name in ((1, f"{kind}_max"), (3, f"{kind}3")):
                    row[name] = (-np.sort(-ch.anchor_z[:, cols], axis=1)[:, :min(k, len(cols))].mean(axis=1)
                                 if len(cols) else np.zeros(len(cands)))
            for name in VOTED:
                row[name] = row[name[2:]] * len(feedback) / 50
            top = quality.shown(ch.z)
            row["top"] = top
            rows.append(row)
            feedback += [(cands[i], int(labels[i])) for i in top]
    return rows


def _or0(x):
    return np.zeros(0) if x is None else np.asarray(x, float)


def features(row: dict, names: list[str]) -> np.ndarray:
    n = len(row["labels"])
    return np.stack([row[name] if len(row[name]) == n else np.zeros(n) for name in names], axis=1)


def p10(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(labels[quality.shown(scores)].mean())


def per_user(rows: list[dict], values: list[float]) -> np.ndarray:
    by: dict[int, list[float]] = defaultdict(list)
    for row, v in zip(rows, values, strict=True):
        by[row["u"]].append(v)
    return np.array([np.mean(v) for v in by.values()])


def line(name: str, rows: list[dict], values: list[float], base: list[float]) -> str:
    gap = per_user(rows, values) - per_user(rows, base)
    lo, hi = quality.bootstrap(gap, 1000)
    return f"  {name:44s} P@10 {np.mean(values):.4f}  gap {gap.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=quality.ROOT / "../shared/data/citeulike-a")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=2)
    parser.add_argument("--users", type=int, default=80, help="online users per seed")
    parser.add_argument("--model", default=quality.DEFAULT_MODEL)
    args = parser.parse_args()

    titles, vecs, _ = quality.load_for_ours(args.data, args.model, quality.ROOT / ".cache")
    users = load_users(args.data)
    t = time.perf_counter()
    train = run_days(quality.Setup(users, len(titles), args.users, args.train_seed), titles, vecs,
                     args.train_seed, args.users)
    test_setup = quality.Setup(users, len(titles), args.users, args.test_seed)
    test = run_days(test_setup, titles, vecs, args.test_seed, args.users)
    base = [p10(r["z"], r["labels"]) for r in test]
    print(f"online, seed {args.test_seed}, {len(test) // 10} users: production channels, P@10 {np.mean(base):.4f}"
          f"  ({time.perf_counter() - t:.0f}s)")

    print(f"global re-weighting, fitted on seed {args.train_seed} ({len(train) // 10} users):")
    for name, names in (("channels", CHANNELS), ("channels + anchors", CHANNELS + ANCHORS),
                        ("channels + anchors + x votes", CHANNELS + ANCHORS + VOTED)):
        model = LogisticRegression(C=1.0, max_iter=2000).fit(
            np.vstack([features(r, names) for r in train]), np.concatenate([r["labels"] for r in train]))
        print(line(name, test, [p10(model.decision_function(features(r, names)), r["labels"]) for r in test], base))

    print("per-user stacking on the user's own votes so far (channels z, knn, clf, prf):")
    for mix in (0.25, 0.5, 1.0):
        values = []
        hist: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
        for r in test:
            xs, ys = hist[r["u"]]
            s = r["z"]
            if len(ys) >= 10 and len(set(ys)) == 2:
                adj = LogisticRegression(C=0.1, max_iter=1000).fit(np.vstack(xs), ys).decision_function(
                    features(r, CHANNELS))
                s = (s - s.mean()) / s.std() + mix * (adj - adj.mean()) / max(adj.std(), 1e-9)
            values.append(p10(s, r["labels"]))
            xs.append(features(r, CHANNELS)[r["top"]])
            ys.extend(r["labels"][r["top"]].tolist())
        print(line(f"mixed in at {mix}", test, values, base))

    print("lexical channels (TF-IDF logistic regression, seeds + 👍 vs background + 👎), added at a weight:")
    bg = test_setup.background
    for kind, vectorizer in (("words", TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=(1, 2))),
                             ("char 3-5", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(3, 5),
                                                          min_df=2))):
        matrix = vectorizer.fit_transform(titles)
        out: dict[float, list[float]] = defaultdict(list)
        for r in test:
            pos = r["seeds"] + [c for c, lab in r["feedback"] if lab]
            neg = bg + [c for c, lab in r["feedback"] if not lab]
            weight = np.r_[np.full(len(pos), len(neg) / len(pos)), np.ones(len(neg))]
            model = LogisticRegression(C=10, max_iter=1000).fit(
                matrix[pos + neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))], sample_weight=weight)
            lex = model.decision_function(matrix[r["cands"]])
            lex = (lex - lex.mean()) / max(lex.std(), 1e-9)
            z = (r["z"] - r["z"].mean()) / r["z"].std()
            for w in (0.1, 0.2, 0.4):
                out[w].append(p10(z + w * lex, r["labels"]))
        for w, values in out.items():
            print(line(f"{kind} at {w}", test, values, base))


if __name__ == "__main__":
    main()
