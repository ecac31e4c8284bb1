"""What the digest page's word index (schema 6, ``papers_fts``) costs at ingest and how fast a search answers.

    .venv/bin/python benchmarks/search.py [N]      # N papers (default 30000), two stores in a temp dir

The papers are made of the real titles and abstracts in the repository's sample inbox, recombined: each
paper a title of 10 words and an abstract of 150 drawn from that text. One store keeps the index, the other
has it dropped (its triggers too), and both take the same papers in the same order, in turn, so the ratio
compares like with like on a shared machine. Then merges that change an abstract (the update trigger), and
searches of common and rare words, each timed as the median of 5.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.models import Paper  # noqa: E402
from digest.parse import iter_raw_messages, parse_message  # noqa: E402
from digest.store import Store  # noqa: E402


def corpus() -> list[str]:
    words = []
    for _, raw in iter_raw_messages(REPO / "sample_inbox"):
        for paper in parse_message(raw).papers:
            words += f"{paper.title} {paper.abstract or ''}".split()
    return words


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    words = corpus()
    rng = random.Random(0)
    papers = [Paper(" ".join(rng.choices(words, k=10)), authors=(f"Author {i % 997}", "B. Second"),
                    abstract=" ".join(rng.choices(words, k=150)), doi=f"10.9999/bench.{i}") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        indexed, bare = Store(Path(tmp) / "indexed.db"), Store(Path(tmp) / "bare.db")
        for name in ("papers_fts_insert", "papers_fts_update", "papers_fts_delete"):
            bare.db.execute(f"DROP TRIGGER {name}")
        bare.db.execute("DROP TABLE papers_fts")
        spent = {"indexed": 0.0, "bare": 0.0}
        for start in range(0, n, 1000):  # a day's alerts at a time, the two stores in turn
            for name, store in (("indexed", indexed), ("bare", bare)):
                t = time.perf_counter()
                store.add_papers(papers[start:start + 1000])
                spent[name] += time.perf_counter() - t
        print(f"{n} papers stored, in batches of 1000: with the index {spent['indexed']:.1f} s, without "
              f"{spent['bare']:.1f} s (x{spent['indexed'] / spent['bare']:.2f})")
        richer = [Paper(p.title, authors=p.authors, abstract=p.abstract + " with one more sentence", doi=p.doi)
                  for p in papers[:500]]
        for name, store in (("indexed", indexed), ("bare", bare)):
            t = time.perf_counter()
            store.add_papers(richer)
            spent[name] = time.perf_counter() - t
        print(f"500 merges that change the abstract: with the index {spent['indexed']:.2f} s, without "
              f"{spent['bare']:.2f} s")
        common = max(set(words), key=words.count)
        rare = min((w for w in set(words) if w.isalpha() and len(w) > 6), key=words.count)
        for label, query in (("the most common word", common), ("a rare word", rare),
                             ("two words", f"{common} {rare}"), ("a DOI", "https://doi.org/10.9999/bench.77")):
            for name, store in (("index", indexed), ("scan", bare)):
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    _, total = store.search_papers(query)
                    times.append(time.perf_counter() - t)
                print(f"search {label} ({query!r}), {name}: {total} match, {statistics.median(times) * 1000:.0f} ms")
        indexed.close()
        bare.close()


if __name__ == "__main__":
    main()
