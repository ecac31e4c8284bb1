"""CiteULike-a loading and the title-embedding file cache shared by the benchmarks."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

_RUN = re.compile(r"[^\x00-\x7f]+")


def _to_bytes(run: str) -> bytes:
    out = bytearray()
    for ch in run:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) >= 256:
                raise
            out.append(ord(ch))  # C1 control characters that cp1252 leaves undefined (0x81, 0x8d, 0x90, 0x9d)
    return bytes(out)


def _fix_run(match: re.Match) -> str:
    run = match.group(0)
    for _ in range(3):  # some titles were mis-decoded twice
        try:
            new = _to_bytes(run).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            break
        if new == run:
            break
        run = new
    return run


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as cp1252, run by run of non-ASCII characters, so one bad run cannot spoil the title."""
    return _RUN.sub(_fix_run, text)


def check_data(data: Path) -> None:
    """The data set is not in the repository (benchmarks only may read it from outside): say where it goes."""
    missing = [name for name in ("titles.txt", "users.dat") if not (data / name).is_file()]
    if missing:
        raise SystemExit(f"{data}: no {' or '.join(missing)}: the CiteULike-a data set is not part of the repository; "
                         "put it at ../shared/data/citeulike-a next to the clone (titles.txt, users.dat) or pass "
                         "--data PATH (make bench-quality BENCH_ARGS='--data PATH')")


def load_titles(data: Path) -> list[str]:
    check_data(data)
    with open(data / "titles.txt", encoding="utf-8") as fh:
        return [fix_mojibake(line.rstrip("\n")).strip() for line in fh]


def load_users(data: Path) -> list[list[int]]:
    users = []
    with open(data / "users.dat") as fh:
        for line in fh:
            parts = [int(x) for x in line.split()]
            users.append(sorted(set(parts[1:])))
    return users


def title_vectors(titles: list[str], model: str, cache_dir: Path, batch_size: int = 64) -> tuple[np.ndarray, float]:
    """All titles embedded once with ``model``; cached in ``cache_dir`` keyed by model and the titles' hash.

    Returns the matrix and the embedding speed in texts/s (0.0 when read from the cache)."""
    import hashlib

    from digest.embed import Embedder

    key = hashlib.sha1("\n".join(titles).encode()).hexdigest()[:12]
    path = cache_dir / f"titles-{model.replace('/', '_')}-{key}.npy"
    if path.exists():
        return np.load(path), 0.0
    embedder = Embedder(model, batch_size=batch_size)
    embedder.encode(titles[:8])  # load the model outside the timing
    start = time.perf_counter()
    vectors = embedder.encode(titles)
    speed = len(titles) / (time.perf_counter() - start)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    (cache_dir / f"{path.stem}.speed").write_text(f"{speed:.1f}\n")
    return vectors, speed
