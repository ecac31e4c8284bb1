"""What the digest page's word index (schema 6, ``papers_fts``) costs at ingest and how fast a search answers.

    .venv/bin/python benchmarks/search.py [N]      # N papers (default 30000), two stores in a temp dir

The papers are made of the real titles and abstracts in the repository's sample inbox, recombined: each
paper a title of 10 words and an abstract of 150 drawn from that text. One store keeps the index, the other
has it dropped (its triggers too), and both take the same papers in the same order, in turn, so the ratio
compares like with like on a shared machine. Then merges that change an abstract (the update trigger),
searches of common and rare words, each timed as the median of 5, and the digest page's search as it was
(every match joined to its paper) against ``Store._fts_search``, on the same store in turn.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
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
                store.add_papers(papers[start:start + 1000], first_seen=f"{day(start // 1000)}T08:00:00+00:00")
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
                seconds = median_seconds(lambda s=store, q=query: s.search_papers(q))
                total = store.search_papers(query)[1]
                print(f"search {label} ({query!r}), {name}: {total} match, {seconds * 1000:.0f} ms")
        # the digest page's search (only papers that had arrived by the digest): the best 20 as before (every
        # match joined to its paper, counted and ordered) against Store._fts_search, same store, in turn
        days = sorted(r[0] for r in indexed.db.execute("SELECT DISTINCT first_seen FROM papers"))
        for label, arrived in (("any time", None), ("by the latest digest", days[-1]),
                               ("by an old digest (mid-store)", days[len(days) // 2])):
            for word in (common, rare):
                match = f'"{word.lower()}"'
                before = median_seconds(lambda m=match, a=arrived: whole_join(indexed, m, a))
                now = median_seconds(lambda m=match, a=arrived: indexed._fts_search(m, a, 20))
                same = whole_join(indexed, match, arrived) == indexed._fts_search(match, arrived, 20)
                print(f"page search {word!r}, arrived {label}: whole join {before * 1000:.0f} ms, now "
                      f"{now * 1000:.0f} ms (x{before / now:.1f}), same answer: {same}")
        indexed.close()
        bare.close()


def day(n: int) -> str:
    """The date of the ``n``-th day's alerts."""
    return (date(2025, 1, 1) + timedelta(days=n)).isoformat()


def median_seconds(fn, times: int = 5) -> float:
    spent = []
    for _ in range(times):
        t = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - t)
    return statistics.median(spent)


def whole_join(store: Store, match: str, arrived_by: str | None, limit: int = 20) -> tuple[int, list[str]]:
    """The search as it was before Store._fts_search: every match joined to its paper, counted, then ordered."""
    arrived, args = ("AND p.first_seen <= ?", [arrived_by]) if arrived_by else ("", [])
    base = f"FROM papers_fts f JOIN papers p ON p.id = f.paper_id WHERE papers_fts MATCH ? {arrived}"
    total = store.db.execute(f"SELECT count(*) {base}", [match, *args]).fetchone()[0]
    return total, [r[0] for r in store.db.execute(
        f"SELECT p.id {base} ORDER BY bm25(papers_fts, 0, 10, 3, 1, 1), p.first_seen DESC, p.id LIMIT ?",
        [match, *args, limit])]


if __name__ == "__main__":
    main()
