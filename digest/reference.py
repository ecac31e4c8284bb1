"""The yardstick for "a real match": random paper titles from all fields, and how close two of them get.

Scores are calibrated against the store's own papers (``rank``'s background), so a floor lets through about the
same share of every store, whatever it holds. In a store that holds nothing of a reader's field (a new reader
whose alerts have not arrived yet, a lab mailbox of other fields) that share is still filled, with the least
unrelated papers of other fields. A digest of those is worse than none, so a pick must also be close, in plain
cosine, to something the reader named (an interest, a seed, a liked paper): at least as close as one pair in
ten of random papers are to each other (``similarity_bar``; 0.26 with the shipped models). The pairs are those
of the 1,000 titles in ``digest/data/reference_titles.txt`` (see the README there), so the bar follows the
model's own scale: any model configured gets its own.

The titles are embedded once per model and kept in a file under the model cache (``embed.model_dir()``, shared
by every store and run on the machine), and in the store as well, where any vector goes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .embed import Embedder, cached_vectors, content_hash, model_dir

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

TITLES_FILE = Path(__file__).parent / "data" / "reference_titles.txt"
_MEMO: dict[tuple[str, str], np.ndarray] = {}
_BARS: dict[tuple[str, str], float] = {}
PAIR_QUANTILE = 0.9  # the bar: the cosine that this share of random pairs of titles stays below
MIN_TITLES = 100     # fewer make no yardstick (a damaged install): then no bar


@cache
def reference_titles() -> tuple[str, ...]:
    """The reference titles, one per line of ``TITLES_FILE``."""
    return tuple(line.strip() for line in TITLES_FILE.read_text(encoding="utf-8").splitlines() if line.strip())


@cache
def _key(model: str) -> str:
    """The titles' and the model's fingerprint: a new list or another model never reads an old file (once per
    process and model: every ranking asks for it)."""
    digest = hashlib.sha256("\n".join([model, *reference_titles()]).encode("utf-8")).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:80]
    return f"{slug}-{digest}"


def cache_file(model: str) -> Path:
    return model_dir() / "reference" / f"{_key(model)}.npy"


def _read(path: Path, rows: int) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # cut short, or not an array: made again below
        log.warning("%s: unreadable (%s); embedding the reference titles again", path, exc)
        return None
    if vectors.ndim != 2 or vectors.shape[0] != rows or not np.isfinite(vectors).all():
        log.warning("%s: %s rows where %d were expected; embedding the reference titles again",
                    path, vectors.shape[0] if vectors.ndim else "no", rows)
        return None
    return vectors.astype(np.float32)


def _write(path: Path, vectors: np.ndarray) -> None:
    """Atomically (a reader never sees half a file); a cache that cannot be written is only slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vectors)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("could not keep the reference vectors in %s (%s): each run reads them from its store instead; "
                    "set DIGEST_MODEL_DIR to a writable directory to share them", path.parent, exc)


def reference_vectors(store: Store, embedder: Embedder,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The reference titles' vectors by ``embedder``: from memory, the machine's file, the store, or embedded
    now (~5 s with all-MiniLM-L6-v2, ~40 s with the default ensemble on two cores; once per machine)."""
    titles = reference_titles()
    key = (embedder.name, _key(embedder.name))
    if key in _MEMO:
        return _MEMO[key]
    path = cache_file(embedder.name)
    vectors = _read(path, len(titles))
    if vectors is None:
        hashes = {content_hash(t) for t in titles}
        if store.vector_hashes(embedder.name, hashes) != hashes:  # say why a thousand texts are embedded
            log.info("embedding %d reference titles of all fields with %s, once for this machine: the yardstick "
                     "that tells a real match from a store's least unrelated paper (see digest/reference.py)",
                     len(titles), embedder.name)
        vectors, _ = cached_vectors(store, embedder, list(titles), progress)
        _write(path, vectors)
    _MEMO[key] = vectors
    return vectors


def similarity_bar(store: Store, embedder: Embedder,
                   progress: Callable[[int, int], None] | None = None) -> float | None:
    """The cosine that 90% of random pairs of reference titles stay below, for ``embedder``'s model; None (no
    bar: nothing is held back) when the titles file is missing or holds too few titles (a broken install)."""
    try:
        enough = len(reference_titles()) >= MIN_TITLES
    except OSError as exc:
        enough = False
        log.warning("%s: cannot be read (%s); no paper is held back as a loose match (reinstall digest)",
                    TITLES_FILE, exc.strerror or exc)
    if not enough:
        return None
    key = (embedder.name, _key(embedder.name))
    if key not in _BARS:  # once per process and model: every user's ranking asks for it
        vectors = reference_vectors(store, embedder, progress)
        sims = vectors @ vectors.T
        _BARS[key] = float(np.quantile(sims[np.triu_indices(len(vectors), 1)], PAIR_QUANTILE))
    return _BARS[key]
