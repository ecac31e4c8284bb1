"""Ranking quality on CiteULike-a: the production ranking (digest.evaluation.score) next to baselines.

Protocols (see benchmarks/README.md): static (random negatives), hard (negatives from overlapping users),
online (ten days of thumbs). Every method is measured in the same run on the same users, and the gap to each
baseline comes with a paired bootstrap CI over users.

Example:
    .venv/bin/python benchmarks/quality.py --seed 2 --users 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from citeulike import load_titles, load_users, title_vectors  # noqa: E402

from digest import evaluation  # noqa: E402
from digest.embed import DEFAULT_MODEL  # noqa: E402


def load_for_ours(data: Path, model: str, cache_dir: Path) -> tuple[list[str], np.ndarray, float]:
    """The titles and their vectors by ``model`` (from the file cache, else embedded: ``speed`` texts/s, 0 when
    cached), with ``digest.evaluation`` (the production path, ``ours``) on that model and fed those vectors."""
    titles = load_titles(data)
    vecs, speed = title_vectors(titles, model, cache_dir)
    evaluation.use_model(model)
    evaluation.preload(titles, vecs)
    return titles, vecs, speed


BASELINE_MODEL = "all-MiniLM-L6-v2"
BACKGROUND = 1000
NEGATIVES = 500
MIN_ITEMS = 25
ONLINE_ITEMS = 105
ONLINE_DAYS, ONLINE_BATCH, ONLINE_POS, SHOWN = 10, 100, 10, 10


# ---------------------------------------------------------------- metrics
def metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    # ties broken by a fixed random order so a constant scorer is "random", not "first listed"
    order = np.lexsort((np.random.default_rng(0).random(len(scores)), -scores))
    rel = labels[order]
    n_pos = int(labels.sum())
    gains = rel[:10] / np.log2(np.arange(2, 12))[: len(rel[:10])]
    ideal = (1 / np.log2(np.arange(2, 2 + min(n_pos, 10)))).sum()
    first = np.flatnonzero(rel)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(len(scores))
    pos_r, neg_r = ranks[labels == 1], ranks[labels == 0]
    auc = float((neg_r[None, :] > pos_r[:, None]).mean()) if len(pos_r) and len(neg_r) else float("nan")
    return {"nDCG@10": float(gains.sum() / ideal) if ideal else 0.0, "P@10": float(rel[:10].mean()),
            "R@50": float(rel[:50].sum() / max(n_pos, 1)), "MRR": float(1 / (first[0] + 1)) if len(first) else 0.0,
            "AUC": auc}


def bootstrap(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(reps, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ---------------------------------------------------------------- methods
# A method gets (seed ids, feedback [(id, label)], candidate ids, background ids) and returns scores.
Method = Callable[[list[int], list[tuple[int, int]], list[int], list[int]], np.ndarray]


def make_methods(titles: list[str], vecs: np.ndarray, which: list[str],
                 model_vecs: np.ndarray | None = None) -> dict[str, Method]:
    """``vecs``: the baselines' MiniLM vectors; ``model_vecs``: ours' model's, for ``logreg-same-model``
    (the Scholar Inbox baseline on our model's vectors, so a model change is not mistaken for a method gain)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, ngram_range=(1, 2))
    tf = tfidf.fit_transform(titles)

    def positives(seeds, feedback):
        return list(seeds) + [i for i, y in feedback if y == 1], [i for i, y in feedback if y == 0]

    def training_set(matrix, seeds, feedback, bg):
        """Rows and labels for a per-user classifier: seeds + thumbs-up against background + thumbs-down."""
        pos, neg = positives(seeds, feedback)
        return matrix[pos + list(bg) + neg], np.r_[np.ones(len(pos)), np.zeros(len(bg) + len(neg))]

    def ours(seeds, feedback, cands, bg):
        return np.array(evaluation.score([titles[i] for i in seeds], [(titles[i], y) for i, y in feedback],
                                         [titles[i] for i in cands], [titles[i] for i in bg]))

    def rand(seeds, feedback, cands, bg):
        return np.random.default_rng(len(seeds) * 7919 + len(feedback) * 31 + cands[0]).random(len(cands))

    def tfidf_cos(seeds, feedback, cands, bg):
        pos, _ = positives(seeds, feedback)
        centroid = np.asarray(tf[pos].mean(axis=0)).ravel()
        return np.asarray(tf[cands] @ centroid).ravel()

    def tfidf_svm(seeds, feedback, cands, bg):
        x, y = training_set(tf, seeds, feedback, bg)
        clf = LinearSVC(C=0.1, class_weight="balanced", max_iter=5000).fit(x, y)
        return clf.decision_function(tf[cands])

    def mean_seeds(seeds, feedback, cands, bg):
        pos, _ = positives(seeds, feedback)
        return vecs[cands] @ vecs[pos].mean(axis=0)

    def top3(seeds, feedback, cands, bg):
        pos, _ = positives(seeds, feedback)
        s = vecs[cands] @ vecs[pos].T
        k = min(3, s.shape[1])
        return -np.sort(-s, axis=1)[:, :k].mean(axis=1)

    def logreg_on(matrix):
        def logreg(seeds, feedback, cands, bg):
            x, y = training_set(matrix, seeds, feedback, bg)
            clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=300).fit(x, y)
            return clf.decision_function(matrix[cands])
        return logreg

    all_methods = {"ours": ours, "random": rand, "tfidf-cosine": tfidf_cos, "tfidf-svm": tfidf_svm,
                   "minilm-mean": mean_seeds, "minilm-top3": top3, "minilm-logreg": logreg_on(vecs),
                   "logreg-same-model": logreg_on(vecs if model_vecs is None else model_vecs)}
    return {name: all_methods[name] for name in which}


# ---------------------------------------------------------------- protocols
class Setup:
    def __init__(self, users: list[list[int]], n_papers: int, n_users: int, seed: int):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.n_papers = n_papers
        self.background = sorted(rng.choice(n_papers, BACKGROUND, replace=False).tolist())
        bg = set(self.background)
        self.libraries = [[i for i in lib if i not in bg] for lib in users]
        eligible = [u for u, lib in enumerate(self.libraries) if len(lib) >= MIN_ITEMS]
        self.users = sorted(rng.choice(eligible, min(n_users, len(eligible)), replace=False).tolist())
        # the online protocol draws its own users among all with enough items for ten days of batches
        heavy = [u for u, lib in enumerate(self.libraries) if len(lib) >= ONLINE_ITEMS]
        self.online_users = sorted(rng.choice(heavy, min(n_users, len(heavy)), replace=False).tolist())
        self.readers: dict[int, list[int]] = {}
        for u, lib in enumerate(self.libraries):
            for i in lib:
                self.readers.setdefault(i, []).append(u)
        self.outside = np.array([i for i in range(n_papers) if i not in bg])

    def random_negatives(self, lib: set[int], n: int, rng: np.random.Generator, exclude=()) -> list[int]:
        out: list[int] = []
        skip = lib | set(exclude)
        while len(out) < n:
            for i in rng.choice(self.outside, n * 2).tolist():
                if i not in skip and len(out) < n:
                    out.append(i)
                    skip.add(i)
        return out

    def neighbour_pool(self, u: int, lib: set[int]) -> list[int]:
        """Papers saved by users who share >= 2 papers with ``u``, outside u's library: u's field."""
        overlap: dict[int, int] = {}
        for i in lib:
            for v in self.readers.get(i, ()):
                if v != u:
                    overlap[v] = overlap.get(v, 0) + 1
        return sorted({i for v, c in overlap.items() if c >= 2 for i in self.libraries[v]} - lib)

    def hard_negatives(self, u: int, lib: set[int], n: int, rng: np.random.Generator) -> list[int]:
        pool = self.neighbour_pool(u, lib)
        if len(pool) >= n:
            return rng.choice(pool, n, replace=False).tolist()
        return pool + self.random_negatives(lib, n - len(pool), rng, exclude=pool)


def field_background(setup: Setup, u: int, lib: set[int], used: list[int], seed: int) -> list[int]:
    """A background like a real user's store, whose alerts are mostly their own field: up to half of it from u's
    neighbour pool (papers not among the candidates), the rest from the fixed random pool."""
    rng = np.random.default_rng([seed, u, 3])
    pool = sorted(set(setup.neighbour_pool(u, lib)) - set(used))
    field = rng.choice(pool, min(len(pool), BACKGROUND // 2), replace=False).tolist() if pool else []
    return field + setup.background[: BACKGROUND - len(field)]


def run_static(setup: Setup, methods: dict[str, Method], k: int, hard: bool, seed: int,
               field: bool = False) -> dict[str, dict]:
    """``field``: a diagnostic, not a protocol of the issue: hard negatives and a field-heavy background (see
    field_background), i.e. the situation of a real store, where the candidates and the rest of the store are
    mostly the user's own field."""
    results: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    hard = hard or field
    for u in setup.users:
        rng = np.random.default_rng([seed, u])  # the same split for every method and both k
        lib = list(setup.libraries[u])
        rng.shuffle(lib)
        seeds, pos = lib[:k], lib[k:]
        neg_rng = np.random.default_rng([seed, u, 1])
        neg = setup.hard_negatives(u, set(lib), NEGATIVES, neg_rng) if hard else \
            setup.random_negatives(set(lib), NEGATIVES, neg_rng)
        cands = pos + neg
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        background = field_background(setup, u, set(lib), neg, seed) if field else setup.background
        for name, method in methods.items():
            for metric, value in metrics(np.asarray(method(seeds, [], cands, background), float),
                                         labels).items():
                results[name].setdefault(metric, []).append(value)
    return {m: {k_: np.array(v) for k_, v in r.items()} for m, r in results.items()}


def online_days(setup: Setup, u: int, seed: int) -> tuple[list[int], list[tuple[list[int], np.ndarray]]]:
    """User ``u``'s five seeds and ten fixed daily batches (candidates, labels), the same for every method."""
    rng = np.random.default_rng([seed, u, 2])
    lib = list(setup.libraries[u])
    rng.shuffle(lib)
    seeds, pool = lib[:5], lib[5:]
    negs = setup.random_negatives(set(lib), ONLINE_DAYS * (ONLINE_BATCH - ONLINE_POS), rng)
    days = []
    for d in range(ONLINE_DAYS):
        p = pool[d * ONLINE_POS:(d + 1) * ONLINE_POS]
        n = negs[d * (ONLINE_BATCH - ONLINE_POS):(d + 1) * (ONLINE_BATCH - ONLINE_POS)]
        batch = p + n
        order = rng.permutation(len(batch))
        days.append(([batch[i] for i in order], np.r_[np.ones(len(p)), np.zeros(len(n))][order]))
    return seeds, days


def shown(scores) -> np.ndarray:
    """The SHOWN best candidates' positions (ties go to the earlier one): what a day's digest shows."""
    scores = np.asarray(scores, float)
    return np.lexsort((np.arange(len(scores)), -scores))[:SHOWN]


def run_online(setup: Setup, methods: dict[str, Method], seed: int, max_users: int | None) -> dict[str, dict]:
    users = setup.online_users[:max_users]
    results: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for u in users:
        seeds, days = online_days(setup, u, seed)
        for name, method in methods.items():
            feedback: list[tuple[int, int]] = []
            per_day = []
            for cands, labels in days:
                top = shown(method(seeds, feedback, cands, setup.background))
                per_day.append(float(labels[top].mean()))
                feedback += [(cands[i], int(labels[i])) for i in top]
            results[name]["P@10/day"] = results[name].get("P@10/day", []) + [per_day]
    return {m: {"P@10/day": np.array(r["P@10/day"]), "P@10": np.array(r["P@10/day"]).mean(axis=1)}
            for m, r in results.items()}


# ---------------------------------------------------------------- report
def report(title: str, res: dict[str, dict], keys: list[str], reps: int) -> None:
    print(f"\n### {title} (n={len(next(iter(res.values()))[keys[0]])} users)")
    print("| method | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, r in res.items():
        cells = []
        for key in keys:
            lo, hi = bootstrap(r[key], reps)
            cells.append(f"{np.nanmean(r[key]):.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if "ours" in res:
        key = keys[0]
        for name, r in res.items():
            if name == "ours":
                continue
            gap = res["ours"][key] - r[key]
            lo, hi = bootstrap(gap, reps)
            print(f"  gap ours - {name} on {key}: {gap.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "../shared/data/citeulike-a")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2, help="user sample seed (1 was used for tuning)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ours' embedding model (default: the product's)")
    parser.add_argument("--baseline-model", default=BASELINE_MODEL,
                        help="the baselines' model (the issue defines them on all-MiniLM-L6-v2)")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--protocols", default="static5,static20,hard5,hard20,online")
    parser.add_argument("--methods", default="ours,random,tfidf-cosine,tfidf-svm,minilm-mean,minilm-top3,minilm-logreg")
    parser.add_argument("--online-users", type=int, default=None, help="cap on online users (default: all)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    titles, vecs, speed = load_for_ours(args.data, args.model, args.cache_dir)
    users = load_users(args.data)
    print(f"ours: model {args.model}: {len(titles)} titles, dim {vecs.shape[1]}, "
          + (f"embedded at {speed:.0f} texts/s" if speed else "vectors from the cache")
          + f" ({time.perf_counter() - t0:.1f}s)")
    base_vecs = vecs
    if args.baseline_model != args.model:
        base_vecs, speed = title_vectors(titles, args.baseline_model, args.cache_dir)
        print(f"baselines: model {args.baseline_model}, dim {base_vecs.shape[1]}, "
              + (f"embedded at {speed:.0f} texts/s" if speed else "vectors from the cache"))
    methods = make_methods(titles, base_vecs, args.methods.split(","), model_vecs=vecs)
    setup = Setup(users, len(titles), args.users, args.seed)
    print(f"seed {args.seed}: {len(setup.users)} users with >= {MIN_ITEMS} items, background {BACKGROUND}")
    keys = ["nDCG@10", "P@10", "R@50", "MRR", "AUC"]
    for proto in args.protocols.split(","):
        t = time.perf_counter()
        if proto == "online":
            res = run_online(setup, methods, args.seed, args.online_users)
            report("online, 5 seeds, 10 days", res, ["P@10"], args.bootstrap)
            for name, r in res.items():
                print(f"  {name} P@10 per day: " + " ".join(f"{v:.2f}" for v in r["P@10/day"].mean(axis=0)))
        else:
            hard, field = proto.startswith("hard"), proto.startswith("field")
            k = int(proto.removeprefix("hard").removeprefix("static").removeprefix("field"))
            res = run_static(setup, methods, k, hard, args.seed, field=field)
            name = "field (diagnostic: hard negatives, a field-heavy background)" if field else \
                "hard" if hard else "static"
            report(f"{name}, k={k}", res, keys, args.bootstrap)
        print(f"  ({proto}: {time.perf_counter() - t:.0f}s)")
        sys.stdout.flush()
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
