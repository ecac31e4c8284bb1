"""Throughput of each stage of the main job, measured in one run and printed (no assertions).

    .venv/bin/python benchmarks/speed.py [--repeat 3]

Figures: CLI start-up (as a ratio to a bare interpreter start), parsing (messages/s and papers/s over the
sample inbox), storing (papers/s into a fresh SQLite file), embedding (texts/s cold, a cached pass as a ratio,
and how the chunks are cut as a ratio), ranking (ms per user for the demo's candidates), a 300-entry reference
library (parse, then ranking with it as a ratio to the same profile without it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    bare = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)
    helps = timed(lambda: subprocess.run([sys.executable, "-m", "digest", "--help"], check=True,
                                         capture_output=True), args.repeat)
    print(f"cli start-up: digest --help {helps * 1000:.0f} ms = {helps / bare:.1f}x a bare python start "
          f"({bare * 1000:.0f} ms)")

    from digest.parse import iter_raw_messages, parse_message

    raws = [raw for _, raw in iter_raw_messages(REPO / "sample_inbox")]
    papers = []

    def parse_all():
        papers.clear()
        for raw in raws:
            papers.extend(parse_message(raw).papers)

    t = timed(parse_all, args.repeat)
    print(f"parse: {len(raws)} messages, {len(papers)} papers in {t * 1000:.0f} ms "
          f"({len(raws) / t:.0f} messages/s, {len(papers) / t:.0f} papers/s)")

    from digest.parse import parse_text

    # a huge reading list in one paragraph ("Title (<a>doi</a>)<br>" lines): grows linearly, not quadratically
    def reading_list(n: int) -> str:
        return "<p>" + "".join(f"A study of topic number {i} in depth (<a href=\"https://doi.org/10.1000/x{i}\">doi</a>)"
                               "<br>" for i in range(n)) + "</p>"

    small, large = (timed(lambda n=n: parse_text(reading_list(n), content_type="text/html"), 1) for n in (1000, 4000))
    print(f"parse: a 1,000-line reading list {small:.2f} s, 4,000 lines {large:.2f} s: x{large / small:.1f} for x4 "
          "the lines")

    from digest.store import Store

    def store_all():
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "d.db")
            store.add_papers(papers)
            store.close()

    t = timed(store_all, args.repeat)
    print(f"store: {len(papers)} papers into a fresh SQLite file in {t * 1000:.0f} ms ({len(papers) / t:.0f} papers/s)")

    from digest.config import load_settings
    from digest.embed import Embedder, cached_vectors
    from digest.pipeline import load_user_profiles, rank_user

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings("/dev/null", data_dir=tmp, profiles_dir=str(REPO / "profiles"))
        store = Store(settings.db_path)
        store.add_papers(papers)
        embedder = Embedder(settings.model.name)
        started = time.perf_counter()
        embedder.encode(["warm-up"])
        load = time.perf_counter() - started
        texts = [p.text for _, p in store.papers_since("2000-01-01")]
        started = time.perf_counter()
        _, n = cached_vectors(store, embedder, texts)
        cold = time.perf_counter() - started
        cached = timed(lambda: cached_vectors(store, embedder, texts), args.repeat)
        print(f"embed: model load {load:.1f} s; {n} texts cold in {cold:.1f} s ({n / cold:.1f} texts/s); "
              f"cached pass {cached * 1000:.0f} ms = {cold / cached:.0f}x faster")
        # how the chunks are cut: a third of the texts, encoded in arrival order 64 at a time (as before) and
        # shortest first 16 at a time (embed.CHUNK: each batch pads to a similar length)
        from digest.embed import CHUNK

        sample = texts[::3]

        def chunked(order, size):
            for start in range(0, len(order), size):
                embedder.encode(order[start: start + size])

        arrival = timed(lambda: chunked(sample, 64), 1)
        shortest = timed(lambda: chunked(sorted(sample, key=len), CHUNK), 1)
        print(f"embed chunks ({len(sample)} texts): arrival order by 64 {len(sample) / arrival:.1f} texts/s, "
              f"shortest first by {CHUNK} {len(sample) / shortest:.1f} texts/s = {arrival / shortest:.2f}x faster")
        profiles = load_user_profiles(store, settings).profiles
        for user, profile in profiles.items():
            t = timed(lambda p=profile: rank_user(store, embedder, settings, p), args.repeat)
            result = rank_user(store, embedder, settings, profile)
            print(f"rank {user}: {result.n_candidates} candidates in {t * 1000:.0f} ms")

        # a profile with a reference library: 300 entries written as a BibTeX export, from the store's own papers
        # with the first half of each abstract (so each entry is a new text for the model, as a real one is)
        from dataclasses import replace

        from digest import library

        def braceless(text):
            return (text or "").replace("{", "").replace("}", "").replace("\\", "")

        def zotero(title):  # Zotero protects capitalised words from restyling: {AlphaFold}, {Transformers}
            return " ".join(f"{{{w}}}" if any(c.isupper() for c in w) else w for w in braceless(title).split())

        bib = Path(tmp) / "library.bib"
        bib.write_text("\n".join(f"@article{{e{i},\n  title = {{{zotero(p.title)}}},\n  abstract = "
                                 f"{{{braceless(p.abstract)[: len(p.abstract or '') // 2]}}}\n}}\n" for i, p in enumerate(papers[:300])))

        def parse_library():
            library._cache.clear()
            return library.read_library(bib)

        t = timed(parse_library, args.repeat)
        read = parse_library()
        print(f"library: {len(read.seeds)} BibTeX entries parsed in {t * 1000:.0f} ms "
              f"({len(read.seeds) / t:.0f} entries/s)")
        user, plain = next(iter(profiles.items()))
        with_lib = replace(plain, library=(str(bib),), library_seeds=read.seeds)
        started = time.perf_counter()
        rank_user(store, embedder, settings, with_lib)
        first = time.perf_counter() - started
        base = timed(lambda: rank_user(store, embedder, settings, plain), args.repeat)
        again = timed(lambda: rank_user(store, embedder, settings, with_lib), args.repeat)
        print(f"rank {user} + a {len(read.seeds)}-paper library: first ranking {first:.1f} s (embeds the library, "
              f"once), then {again * 1000:.0f} ms = {again / base:.1f}x the same profile without it "
              f"({base * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
