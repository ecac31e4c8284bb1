"""Offline evaluation hook: score candidates for a seed-paper profile through the production ranking path.

``score(seed_texts, feedback, candidate_texts, background_texts)`` builds the profile a user with those seed
papers would have, turns the feedback into thumbs-up/down anchors exactly as the pipeline does, and returns
``rank(...)``'s calibrated score for every candidate. Embeddings are cached in memory by text across calls
(benchmarks repeat texts a lot); ``preload`` lets a benchmark fill that cache from its own file cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .embed import DEFAULT_MODEL, Embedder
from .models import Paper
from .profiles import Profile, Seed
from .rank import Anchor, UserSignals, build_signals, rank

_EMBEDDER: Embedder | None = None
_CACHE: dict[str, np.ndarray] = {}


def use_model(name: str) -> None:
    """Switch the model (and drop the cache, whose vectors belong to the previous model)."""
    global _EMBEDDER
    if _EMBEDDER is None or _EMBEDDER.name != name:
        _EMBEDDER = Embedder(name)
        _CACHE.clear()


def preload(texts: Sequence[str], vectors: np.ndarray) -> None:
    """Seed the in-memory cache with vectors computed elsewhere by the same model."""
    for text, vec in zip(texts, np.asarray(vectors, dtype=np.float32), strict=True):
        _CACHE[text] = vec


def embed(texts: Sequence[str]) -> np.ndarray:
    """Vectors for ``texts`` (rows in order), embedding each distinct text at most once per process."""
    if _EMBEDDER is None:
        use_model(DEFAULT_MODEL)
    missing = list(dict.fromkeys(t for t in texts if t not in _CACHE))
    if missing:
        preload(missing, _EMBEDDER.encode(missing))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([_CACHE[t] for t in texts])


def signals_for(seed_texts: Sequence[str], feedback: Sequence[tuple[str, int]], dim: int) -> UserSignals:
    """The signals of a profile whose seeds are ``seed_texts``, with ``feedback`` as its thumbs (see score)."""
    profile = Profile(user="eval", name="eval", email="eval@example.org",
                      seeds=tuple(Seed(title=t) for t in seed_texts))
    anchors = [Anchor("seed", t) for t in seed_texts]
    anchors += [Anchor("liked" if label else "disliked", t) for t, label in feedback]
    texts = [a.label for a in anchors]
    vectors = embed(texts) if texts else np.zeros((0, dim), dtype=np.float32)
    return build_signals(profile, anchors, vectors)


def score(seed_texts: Sequence[str], feedback: Sequence[tuple[str, int]], candidate_texts: Sequence[str],
          background_texts: Sequence[str] | None = None) -> list[float]:
    """The production score of every candidate (same order) for a profile whose seeds are ``seed_texts``.

    ``feedback`` is ``(text, 1)`` for a thumbs-up and ``(text, 0)`` for a thumbs-down, oldest first;
    ``background_texts`` are random papers of the same collection (the rest of the world, as the store's other
    papers are in production). Higher is better.
    """
    if not candidate_texts:
        return []
    dim_probe = embed(list(candidate_texts))
    signals = signals_for(seed_texts, feedback, dim_probe.shape[1])
    background = embed(list(background_texts)) if background_texts else None
    papers = [Paper(title=t) for t in candidate_texts]
    ranking = rank(signals, dim_probe, papers, max_items=len(papers), background_vecs=background,
                   background_texts=list(background_texts) if background_texts else None)
    by_paper = {id(s.paper): s.score for s in ranking.scored}
    return [float(by_paper[id(p)]) for p in papers]
