import re
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digest.errors import StoreError
from digest.models import Paper, ScoredPaper, paper_id
from digest.store import SCHEMA_VERSION, Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "digest.db")
    yield s
    s.close()


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path):
    store = Store(tmp_path / "d.db")
    assert store.schema_version == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "d.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer digest"):
        Store(path)


def test_a_file_that_is_no_database_is_refused_with_the_fix_and_left_as_it_was(tmp_path):
    path = tmp_path / "digest.db"
    path.write_bytes(b"notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"digest\.db: not a usable database \(file is not a database\).*"
                                         r"digest backup.*\.recover"):
        Store(path)
    assert path.read_bytes() == b"notes, not a database\n" * 100


def test_a_damaged_database_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "digest.db"
    store = Store(path)
    store.add_papers([Paper(f"Paper number {i} on a topic", abstract="x" * 2000) for i in range(50)])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # cut short, as by a copy taken while it was written
    with pytest.raises(StoreError, match="not a usable database .*malformed"):
        Store(path)


@pytest.mark.parametrize("user_version", [0, 3])
def test_another_programs_sqlite_file_is_refused_and_left_byte_for_byte_as_it_was(tmp_path, user_version):
    path = tmp_path / "digest.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute(f"PRAGMA user_version = {user_version}")  # some programs number their schema too
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"another program \(tables notes\)"):
        Store(path)
    assert path.read_bytes() == before  # not even switched to WAL


def test_a_folder_named_like_the_database_is_refused(tmp_path):
    (tmp_path / "digest.db").mkdir()
    with pytest.raises(StoreError, match="a folder where the database file belongs"):
        Store(tmp_path / "digest.db")


def test_a_backup_is_a_whole_checked_copy_taken_while_another_connection_writes(tmp_path):
    store = Store(tmp_path / "digest.db")
    store.add_papers([Paper("First paper on sparse attention")])
    other = Store(tmp_path / "digest.db")  # a second process's connection, its writes in the WAL
    other.add_papers([Paper("Second paper on protein folding")])
    counts = store.backup(tmp_path / "copy.db")
    assert counts["papers"] == 2
    assert not list(tmp_path.glob(".copy.db*"))  # no temporary file left beside it
    copy = Store(tmp_path / "copy.db")
    assert copy.count_papers() == 2 and copy.schema_version == SCHEMA_VERSION
    for s in (copy, other, store):
        s.close()


def test_a_backup_that_cannot_be_written_leaves_no_file_at_its_name(tmp_path):
    store = Store(tmp_path / "digest.db")
    store.add_papers([Paper("A paper")])
    with pytest.raises(StoreError, match="cannot write the copy there"):
        store.backup(tmp_path / "missing-folder" / "copy.db")
    assert not (tmp_path / "missing-folder").exists()
    store.close()


def test_stable_ids_prefer_arxiv_then_doi_then_title():
    assert paper_id("arXiv:2401.01234v3", "10.1/X", "T") == "arxiv:2401.01234"
    assert paper_id(None, "https://doi.org/10.1038/ABC", "T") == "doi:10.1038/abc"
    assert paper_id(None, None, "Deep  Learning!") == paper_id(None, None, "deep learning")


def test_the_same_paper_from_three_senders_is_one_richer_paper(store):
    scholar = Paper("Gated Sparse Attention: Combining…", authors=("A Shen",), snippet="The computational …",
                    url="https://arxiv.org/pdf/2601.15305", arxiv_id="2601.15305", source="google_scholar")
    arxiv = Paper("Gated Sparse Attention: Combining Efficiency with Training Stability",
                  authors=("Alfred Shen", "Aaron Shen"), abstract="The computational burden of attention ...",
                  arxiv_id="2601.15305v2", source="arxiv", section="new")
    hf = Paper("Gated Sparse Attention: Combining Efficiency with Training Stability", arxiv_id="2601.15305",
               source="hf")
    first = store.add_papers([scholar])
    second = store.add_papers([arxiv, hf])
    assert (first.new, second.new, second.merged) == (1, 0, 2)
    assert store.count_papers() == 1
    paper = store.get_papers(["arxiv:2601.15305"])["arxiv:2601.15305"]
    assert paper.abstract.startswith("The computational burden")
    assert paper.title.endswith("Training Stability")
    assert paper.authors == ("Alfred Shen", "Aaron Shen")
    assert store.paper_sources("arxiv:2601.15305") == ["google_scholar", "arxiv", "hf"]


def test_a_doi_stored_without_its_own_closing_bracket_still_matches_the_whole_doi(store):
    """Before 2026-12-06 a DOI's own ")" was taken off with the sentence's punctuation: such rows still match."""
    old = "10.1061/(asce)0733-9399(2006)132:5(466"
    store.add_papers([Paper("Wave loads on piles", doi="10.1234/placeholder", source="generic")])
    with store.db.conn:  # the row as an older version wrote it
        store.db.execute("UPDATE papers SET doi = ?, id = ? WHERE doi = ?", [old, f"doi:{old}", "10.1234/placeholder"])
    again = store.add_papers([Paper("Loads of waves on piles, revisited", doi=old + ")", source="nature")])
    assert (again.new, again.merged) == (0, 1) and store.count_papers() == 1
    assert store.paper_sources(f"doi:{old}") == ["generic", "nature"]


def test_the_number_of_authors_an_alert_did_not_name_survives_merging(store):
    arxiv = Paper("A Census of Transients", authors=tuple(f"Author {i}" for i in range(40)), author_count=124,
                  arxiv_id="2303.00001", source="arxiv")
    journal = Paper("A census of transients", authors=tuple(f"Author {i}" for i in range(60)),
                    doi="10.1/census", source="journal")
    store.add_papers([arxiv])
    store.add_papers([journal])  # more names, no count: the names grow, the count stays
    paper = store.get_papers(["arxiv:2303.00001"])["arxiv:2303.00001"]
    assert len(paper.authors) == 60
    assert paper.author_count == 124
    store.add_papers([Paper("Small", authors=("A", "B"), arxiv_id="2303.00002", source="arxiv")])
    assert store.get_papers(["arxiv:2303.00002"])["arxiv:2303.00002"].author_count is None


def database_at_schema(path, version: int):
    """A database file as a digest of schema ``version`` left it (its first migrations only), open."""
    import sqlite_utils

    from digest.store import MIGRATIONS

    db = sqlite_utils.Database(sqlite3.connect(path))
    for migration in MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version = {version}")
    return db


def test_a_version_2_database_gains_the_author_count_and_keeps_its_papers(tmp_path):
    path = tmp_path / "v2.db"
    db = database_at_schema(path, 2)
    db["papers"].insert({"id": "arxiv:1", "title": "Old paper", "title_key": "old paper", "authors": '["A"]',
                         "sources": '["arxiv"]', "first_seen": "2026-01-01T00:00:00+00:00"})
    db.conn.commit()
    db.conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION == 11
    old = store.get_papers(["arxiv:1"])["arxiv:1"]
    assert old.authors == ("A",) and old.author_count is None
    # the word index of schema 6 holds the papers stored before it
    assert [r["id"] for r in store.search_papers("old")[0]] == ["arxiv:1"]
    store.close()


def test_a_batch_of_papers_that_fails_half_way_stores_none_of_them(store):
    # sqlite-utils 4 commits each write made outside an open transaction: the store must open its own
    def batch():
        yield Paper("First paper of the batch", arxiv_id="2401.00021")
        raise RuntimeError("a parse error half-way")

    with pytest.raises(RuntimeError):
        store.add_papers(batch())
    assert store.count_papers() == 0 and not store.db.conn.in_transaction
    assert store.search_papers("batch") == ([], 0)


def test_a_migration_cut_short_leaves_the_old_schema_and_the_next_open_finishes_it(tmp_path, monkeypatch):
    import digest.store as store_module

    path = tmp_path / "cut.db"
    first = Store(path)
    first.add_papers([Paper(f"Paper {i} about transformers", arxiv_id=f"2401.{i:05d}", abstract="words " * 50)
                      for i in range(500)])
    for name in ("TRIGGER papers_fts_insert", "TRIGGER papers_fts_update", "TRIGGER papers_fts_delete",
                 "TABLE papers_fts", "TABLE papers_fts_keys"):
        first.db.execute(f"DROP {name}")
    first.db.execute("ALTER TABLE digest_more DROP COLUMN below")  # and schema 7's columns
    first.db.execute("ALTER TABLE digests DROP COLUMN floor")
    first.db.execute("ALTER TABLE digests DROP COLUMN unconfirmed")  # and schema 8's
    first.db.execute("DROP INDEX idx_sent_papers_digest_id")  # and schema 9's
    first.db.execute("DROP INDEX idx_vote_events_paper_id_user")  # and schema 10's
    first.db.execute("DROP INDEX idx_vote_events_user")
    for column in ("id", "arxiv_id", "doi"):  # and schema 11's
        first.db.execute(f"DROP INDEX idx_papers_lower_{column}")
    first.db.execute("PRAGMA user_version = 5")
    first.close()

    def interrupted(db):  # the real migration, stopped while it indexes (Ctrl-C, a kill, a full disk)
        calls = iter(range(10**9))
        db.conn.set_progress_handler(lambda: 1 if next(calls) > 20 else 0, 1000)
        try:
            store_module._migration_6(db)
        finally:
            db.conn.set_progress_handler(None, 0)

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS[:5], interrupted,
                                                     *store_module.MIGRATIONS[6:]])
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        Store(path)
    monkeypatch.undo()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 5
    assert not check.execute("SELECT name FROM sqlite_master WHERE name LIKE 'papers_fts%'").fetchall()
    check.close()
    again = Store(path)
    assert again.schema_version == SCHEMA_VERSION and again.search_papers("transformers")[1] == 500


# ---- search: the digest page's "find a paper in your alerts" -------------------------------------------------
def _ids(found: tuple[list[dict], int]) -> list[str]:
    return [r["id"] for r in found[0]]


def test_search_finds_papers_by_any_words_of_title_authors_or_abstract_stemmed_title_first(store):
    store.add_papers([
        Paper("Protein language models predict structure", authors=("Zoë Ångström",), arxiv_id="2501.00001",
              abstract="We scale transformers on sequences."),
        Paper("Graph neural networks for molecules", authors=("Bo Chen",), doi="10.1/gnn",
              abstract="A transformer baseline is compared with message passing on protein graphs."),
        Paper("Unrelated astronomy", authors=("C. D.",), arxiv_id="2501.00003", abstract="Stars."),
    ])
    assert _ids(store.search_papers("protein")) == ["arxiv:2501.00001", "doi:10.1/gnn"]  # the title's first
    assert _ids(store.search_papers("TRANSFORMER")) == ["arxiv:2501.00001", "doi:10.1/gnn"]  # stemmed, any case
    assert _ids(store.search_papers("angstrom")) == ["arxiv:2501.00001"]  # an author, accents aside
    assert _ids(store.search_papers("protein graphs")) == ["doi:10.1/gnn"]  # every word
    assert store.search_papers("protein", limit=1) == (store.search_papers("protein")[0][:1], 2)
    # an id finds its paper; FTS syntax in a query is words, not operators
    assert _ids(store.search_papers("arXiv:2501.00003v2")) == ["arxiv:2501.00003"]
    assert _ids(store.search_papers("https://doi.org/10.1/GNN")) == ["doi:10.1/gnn"]
    # links to a paper's arXiv page or PDF, as a reader copies them, find it too (here and in rank --find)
    for link in ("https://arxiv.org/abs/2501.00003v2", "arxiv.org/pdf/2501.00003.pdf", "https://arxiv.org/abs/2501.00003?context=cs"):
        assert _ids(store.search_papers(link)) == ["arxiv:2501.00003"], link
        assert [r["id"] for r in store.papers_matching(link)] == ["arxiv:2501.00003"], link
    assert store.search_papers('stars OR "protein" NEAR(x) *') == ([], 0)
    store.add_papers([Paper("To be or not to be near stars", arxiv_id="2501.00004")])
    assert _ids(store.search_papers('stars OR "be" NEAR')) == ["arxiv:2501.00004"]  # operators are words
    assert store.search_papers("  ,;  ") == ([], 0)
    assert store.search_papers("astronomy")[0][0]["paper"].title == "Unrelated astronomy"


def test_search_keeps_up_with_merges_renames_and_only_sees_papers_that_had_arrived(store):
    store.add_papers([Paper("Old news", source="generic")], first_seen="2026-01-01T00:00:00+00:00")
    bare = store.add_papers([Paper("Learning to represent programs with graphs", source="generic")]).paper_ids[0]
    assert _ids(store.search_papers("programs")) == [bare]
    # a richer copy merges: its abstract becomes searchable; the arXiv id re-keys the paper, the index follows
    store.add_papers([Paper("Learning to represent programs with graphs", arxiv_id="1711.00740",
                            abstract="Gated graph sequence networks for variable misuse.")])
    assert _ids(store.search_papers("misuse")) == _ids(store.search_papers("programs")) == ["arxiv:1711.00740"]
    assert store.db.execute("SELECT count(*) FROM papers_fts").fetchone()[0] == store.count_papers() == 2
    assert _ids(store.search_papers("news", arrived_by="2026-01-02T00:00:00+00:00")) == [
        _ids(store.search_papers("news"))[0]]
    assert store.search_papers("programs", arrived_by="2026-01-02T00:00:00+00:00") == ([], 0)
    assert store.search_papers("1711.00740", arrived_by="2026-01-02T00:00:00+00:00") == ([], 0)


@pytest.mark.parametrize("prefetch", [1, 3, 7, 200])
def test_a_word_search_gives_what_the_whole_join_gives_however_few_matches_it_reads_first(store, monkeypatch, prefetch):
    """A word most papers hold took ~2 s at 150,000 papers (every match joined to its paper before the best 20 were
    taken); the search now reads the papers of its best SEARCH_PREFETCH matches only, and must still give exactly
    the order and count of the whole join: ties in score broken by the newest, then the id; papers that arrived
    after the digest left out; the whole join when the best matches cannot be shown to hold the answer."""
    import random

    import digest.store as store_module

    rng = random.Random(7)
    words = ["graph", "protein", "model", "cell", "learning"]
    for day in range(1, 29):  # equal titles on a day: ties in bm25 broken by first_seen, then id
        papers = [Paper(f"{' '.join(rng.sample(words, rng.randint(1, 3)))} {rng.choice(['a', 'b', 'c'])} {i % 4}",
                        abstract=" ".join(rng.choices(words, k=rng.randint(0, 6))), doi=f"10.1/d{day}.{i}")
                  for i in range(rng.randint(1, 6))]
        store.add_papers(papers, first_seen=f"2026-02-{day:02d}T08:00:00+00:00")
    monkeypatch.setattr(store_module, "SEARCH_PREFETCH", prefetch)

    def whole_join(query, arrived_by, limit):
        arrived, args = ("AND p.first_seen <= ?", [arrived_by]) if arrived_by else ("", [])
        base = f"FROM papers_fts f JOIN papers p ON p.id = f.paper_id WHERE papers_fts MATCH ? {arrived}"
        match = " ".join(f'"{w}"' for w in query.split())
        total = store.db.execute(f"SELECT count(*) {base}", [match, *args]).fetchone()[0]
        ids = [r[0] for r in store.db.execute(
            f"SELECT p.id {base} ORDER BY bm25(papers_fts, 0, 10, 3, 1, 1), p.first_seen DESC, p.id LIMIT ?",
            [match, *args, limit])]
        return ids, total

    checked = 0
    for query in ["graph", "model", "protein cell", "learning graph model", "a", "0"]:
        for arrived_by in [None, "2026-02-03T09:00:00+00:00", "2026-02-20T07:00:00+00:00"]:
            for limit in [1, 2, 5, 20]:
                rows, total = store.search_papers(query, arrived_by=arrived_by, limit=limit)
                assert ([r["id"] for r in rows], total) == whole_join(query, arrived_by, limit), \
                    (query, arrived_by, limit)
                checked += total > limit
    assert checked > 20  # most cases had more matches than they showed


def test_an_old_digests_search_finds_its_few_matches_whether_or_not_they_score_among_the_best(store, monkeypatch):
    """The page of an old digest searches only the papers that had arrived by then: a few of many matches. When
    they are all among the best matches read they are the answer; when one scores below those read, it is still
    found (the whole join), and the count is right either way."""
    import digest.store as store_module

    monkeypatch.setattr(store_module, "SEARCH_PREFETCH", 3)
    early = "2026-01-05T08:00:00+00:00"
    store.add_papers([Paper("Kinase signalling", doi="10.1/strong"),
                      Paper("A survey of membranes", abstract="Notes on kinase assays and more words here.",
                            doi="10.1/weak")], first_seen=early)
    store.add_papers([Paper(f"Kinase {name}", doi=f"10.1/late.{i}") for i, name in
                      enumerate(["inhibitors", "structures", "families", "networks", "atlases", "motifs"])],
                     first_seen="2026-03-01T08:00:00+00:00")
    rows, total = store.search_papers("kinase", arrived_by="2026-01-31T00:00:00+00:00")
    assert [r["id"] for r in rows] == ["doi:10.1/strong", "doi:10.1/weak"] and total == 2
    rows, total = store.search_papers("kinase signalling", arrived_by="2026-01-31T00:00:00+00:00")
    assert [r["id"] for r in rows] == ["doi:10.1/strong"] and total == 1
    assert store.search_papers("kinase")[1] == 8


def test_search_without_the_word_index_scans_the_papers_for_every_word(store):
    store.add_papers([Paper("Protein language models", arxiv_id="2501.00001", abstract="Transformers."),
                      Paper("Graph networks", doi="10.1/gnn", abstract="On protein graphs.")])
    store.db.execute("DROP TABLE papers_fts")  # as in an SQLite built without FTS5
    assert set(_ids(store.search_papers("protein"))) == {"arxiv:2501.00001", "doi:10.1/gnn"}
    assert _ids(store.search_papers("protein graphs")) == ["doi:10.1/gnn"]
    assert store.search_papers("protein")[1] == 2 and store.search_papers("nothing") == ([], 0)


def test_a_search_looks_its_words_up_as_ids_through_indexes_without_reading_every_paper(store):
    # every search of the digest page also asks "is this an id?" with lower(column) IN (...), which no plain
    # index answers: each search read the whole papers table (~0.3 s at 150,000 papers) before the word index
    old_style = Paper("Hodge cycles on abelian varieties", arxiv_id="math.AG/0101001")
    store.add_papers([old_style, Paper("Protein language models", arxiv_id="2501.00001"),
                      Paper("Graph networks for proteins", doi="10.1/GNN"), Paper("Programs as graphs")])
    for query in ("protein", "2501.00001", "ARXIV:2501.00001", "https://doi.org/10.1/gnn", "math.ag/0101001v2"):
        seen = plans(store, lambda q=query: store.search_papers(q))
        # (the word index's own scan, "SCAN papers_fts VIRTUAL TABLE", is how FTS5 looks words up)
        assert [sql for sql, plan in seen.items() if re.search(r"\bSCAN (p|papers)\b", plan)] == [], query
    assert _ids(store.search_papers("2501.00001")) == ["arxiv:2501.00001"]
    assert _ids(store.search_papers("arXiv:2501.00001v3")) == ["arxiv:2501.00001"]
    assert _ids(store.search_papers("10.1/gnn")) == ["doi:10.1/gnn"]
    assert _ids(store.search_papers("MATH.AG/0101001")) == [old_style.id]
    assert [r["id"] for r in store.papers_matching("arxiv:2501.00001")] == ["arxiv:2501.00001"]


def test_a_title_only_paper_is_rekeyed_when_its_arxiv_id_shows_up_and_keeps_its_votes(store):
    bare = Paper("Learning to Represent Programs with Graphs", source="generic")
    old_id = store.add_papers([bare]).paper_ids[0]
    assert old_id.startswith("title:")
    store.record_vote("ada", old_id, 1)
    store.add_papers([Paper("Learning to represent programs with graphs", arxiv_id="1711.00740", source="arxiv")])
    assert store.count_papers() == 1
    assert store.resolve_id(old_id) == "arxiv:1711.00740"
    assert [v.paper_id for v in store.votes("ada")] == ["arxiv:1711.00740"]
    assert store.get_vote("ada", old_id) == 1


def test_a_truncated_scholar_title_matches_the_full_title(store):
    store.add_papers([Paper("Inference and analysis of cell-cell communication using CellChat", doi="10.1038/x")])
    out = store.add_papers([Paper("Inference and analysis of cell-cell communication …", source="google_scholar")])
    assert out.merged == 1 and store.count_papers() == 1


def plans(store, fn) -> dict[str, str]:
    """{statement: its query plan} of the statements ``fn()`` runs on ``store`` (as SQLite ran them, values bound;
    the triggers' own statements aside): a query that reads a whole table shows "SCAN table"."""
    statements = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        fn()
    finally:
        store.db.conn.set_trace_callback(None)
    return {sql: " | ".join(row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT"))}


def test_a_truncated_title_is_looked_up_in_the_title_index_not_by_reading_every_paper(store):
    # Scholar cuts long titles ("…"): each such title was matched with LIKE, which SQLite cannot answer from
    # the title_key index (LIKE ignores case), so every truncated title of an alert read the whole papers table
    full = "Inference and analysis of cell-cell communication using CellChat"
    store.add_papers([Paper(full, doi="10.1038/x"), Paper("Inference and analysis of cell-cell signalling in tissue"),
                      Paper("Inference and analysis of cell-cell communicatio"),  # a shorter key: no prefix match
                      Paper("A study of something else entirely, long enough")])
    cut = Paper("Inference and analysis of cell-cell communication …", source="google_scholar")
    seen = plans(store, lambda: store.add_papers([cut, Paper("Inference and analysis of nothing stored here at all …")]))
    assert any("title_key>?" in plan for plan in seen.values())
    assert [sql for sql, plan in seen.items() if "SCAN papers" in plan] == []
    assert store.find_paper(title=cut.title).title == full and store.count_papers() == 5


def test_the_vote_log_is_read_by_paper_and_by_user_through_indexes_not_whole(tmp_path):
    # vote_events grows by every vote and undo for ever; a reply's votes (as_of), a rekeyed paper and a user's
    # history each read all of it. A store of schema 9 gains the indexes when opened.
    path = tmp_path / "v9.db"
    db = database_at_schema(path, 9)
    db.conn.commit()
    db.conn.close()
    store = Store(path)
    store.add_papers([Paper("A paper on the vote log's indexes", arxiv_id="2401.00001"),
                      Paper("A paper known by its title only, for now")])
    for user in ("ada", "ben"):
        store.record_vote(user, "arxiv:2401.00001", 1)
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds")
    title_only = Paper("A paper known by its title only, for now").id
    seen = plans(store, lambda: (
        store.record_votes("ada", [("arxiv:2401.00001", -1), (title_only, 1)], "email", also=["ada-old"],
                           as_of=later),
        store.vote_events("ada"),
        store.add_papers([Paper("A paper known by its title only, for now", arxiv_id="2401.00002")])))  # rekeyed
    assert [sql for sql, plan in seen.items() if "SCAN vote_events" in plan] == []
    assert any("vote_events USING" in plan and "paper_id=?" in plan for plan in seen.values())
    # what they read is the same
    assert [(e["paper_id"], e["value"]) for e in store.vote_events("ada")] == [
        ("arxiv:2401.00001", 1), ("arxiv:2401.00001", -1), ("arxiv:2401.00002", 1)]
    assert store.get_vote("ben", "arxiv:2401.00001") == 1
    store.close()


def test_same_title_with_different_arxiv_ids_stays_two_papers(store):
    store.add_papers([Paper("Introduction", arxiv_id="2401.00001"), Paper("Introduction", arxiv_id="2401.00002")])
    assert store.count_papers() == 2


def test_vectors_round_trip_by_model_and_hash(store):
    vec = np.arange(4, dtype=np.float32)
    store.put_vectors("m", {"h1": vec})
    assert np.array_equal(store.get_vectors("m", {"h1", "h2"})["h1"], vec)
    assert store.get_vectors("other-model", {"h1"}) == {}


def test_votes_are_idempotent_last_choice_wins_and_undo_is_logged(store):
    assert store.record_vote("ada", "arxiv:1", 1) is True
    assert store.record_vote("ada", "arxiv:1", 1) is False
    assert store.record_vote("ada", "arxiv:1", -1) is True
    assert [v.value for v in store.votes("ada")] == [-1]
    assert store.undo_vote("ada", "arxiv:1") is True
    assert store.votes("ada") == []
    events = [r["value"] for r in store.db["vote_events"].rows]
    assert events == [1, -1, 0]


def test_a_digest_marked_sent_without_room_for_its_ledger_gets_it_at_the_next_claim(store):
    ids = store.add_papers([Paper("A paper", arxiv_id="2401.00001"), Paper("B paper", arxiv_id="2401.00002")])
    digest_id = store.claim_digest("ada", "2026-11-28")
    items = [ScoredPaper(Paper("A paper"), 0.9, "why"), ScoredPaper(Paper("B paper"), 0.8, "why")]
    store.save_digest_items(digest_id, items, ids.paper_ids, n_candidates=2)
    store.mark_sent_only(digest_id, "ada@example.org", None)  # a full disk: the row alone
    assert store.digest(digest_id)["status"] == "sent" and store.sent_paper_ids("ada") == set()
    assert store.claim_digest("ada", "2026-11-28") is None  # done: nothing goes out again
    assert store.sent_paper_ids("ada") == set(ids.paper_ids)  # and the claim filled the ledger
    assert store.candidate_papers("ada", "2000-01-01") == []


def test_a_delivery_kept_aside_is_entered_once_and_a_cut_line_is_passed_over(tmp_path):
    store = Store(tmp_path / "digest.db")
    first, second = store.claim_digest("ada", "2026-11-28"), store.claim_digest("bob", "2026-11-28")
    assert store.note_delivered(first, "ada@example.org", "a note")
    store.delivered_path.write_text(store.delivered_path.read_text() + '{"digest_id": ' + str(second))  # cut short
    other = Store(tmp_path / "digest.db")  # the next run
    assert other.claim_digest("ada", "2026-11-28") is None and not other.delivered_path.exists()
    row = other.digest(first)
    assert (row["status"], row["address"], row["error"]) == ("sent", "ada@example.org", "a note")
    assert other.digest(second)["status"] == "claimed"
    for s in (store, other):
        s.close()


def test_a_digest_is_claimed_once_and_its_papers_enter_the_ledger_only_when_sent(store):
    ids = store.add_papers([Paper("A paper", arxiv_id="2401.00001"), Paper("B paper", arxiv_id="2401.00002")])
    digest_id = store.claim_digest("ada", "2026-11-28")
    assert digest_id is not None
    assert store.claim_digest("ada", "2026-11-28") is None  # a live claim: an overlapping run skips it
    items = [ScoredPaper(Paper("A paper"), 0.9, "why"), ScoredPaper(Paper("B paper"), 0.8, "why")]
    store.save_digest_items(digest_id, items, ids.paper_ids, n_candidates=2)
    assert store.sent_paper_ids("ada") == set()
    store.mark_digest(digest_id, "sent")
    assert store.sent_paper_ids("ada") == set(ids.paper_ids)
    assert store.claim_digest("ada", "2026-11-28") is None
    assert store.candidate_papers("ada", "2000-01-01") == []
    assert len(store.candidate_papers("bob", "2000-01-01")) == 2


def test_a_stale_claim_or_a_transient_failure_is_retried_but_a_permanent_one_is_not(store):
    first = store.claim_digest("ada", "p1")
    # a claim from another host cannot be checked for life: it is taken over only once it is stale
    store.db.execute("UPDATE digests SET claimed_by = 'elsewhere:0b00:4242:1:nonce' WHERE id = ?", [first])
    assert store.claim_digest("ada", "p1") is None
    assert store.claim_digest("ada", "p1", stale_after=timedelta(seconds=-1)) == first
    store.mark_digest(first, "retry", error="451 try later")
    assert store.claim_digest("ada", "p1") == first
    store.mark_digest(first, "failed", error="550 no such user")
    assert store.claim_digest("ada", "p1") is None
    assert store.digest(first)["attempts"] == 3


def test_messages_are_recorded_once_per_uid(store):
    row, outcome = store.record_message(mailbox="INBOX", uidvalidity=7, uid=3, message_id="<m@x>", status="ingested",
                                        papers=[Paper("A paper", arxiv_id="2401.00001")])
    again, _ = store.record_message(mailbox="INBOX", uidvalidity=7, uid=3, message_id="<m@x>", status="ingested",
                                    papers=[Paper("A paper", arxiv_id="2401.00001")])
    assert row == again and outcome.new == 1
    assert store.message_by_message_id("<m@x>")["uid"] == 3
    assert store.db["paper_messages"].count == 1


def test_profile_texts_and_events_persist(tmp_path):
    store = Store(tmp_path / "d.db")
    store.save_profile_texts({"ada": "email = 'a@b.c'"})
    store.log_event("ERROR", "send", "boom", user="ada")
    store.close()
    again = Store(tmp_path / "d.db")
    assert again.profile_texts() == {"ada": "email = 'a@b.c'"}
    assert again.recent_events()[0]["message"] == "boom"


def test_the_background_sample_is_fixed_by_its_seed(store):
    store.add_papers([Paper(f"Paper number {i} about topic {i % 7}", arxiv_id=f"2401.{i:05d}") for i in range(50)])
    first = [pid for pid, _ in store.random_papers(10, seed=3)]
    assert first == [pid for pid, _ in store.random_papers(10, seed=3)]
    assert first != [pid for pid, _ in store.random_papers(10, seed=4)]
    assert len(set(first)) == 10
    everything = store.random_papers(100, exclude=["arxiv:2401.00000"])
    assert len(everything) == 49 and "arxiv:2401.00000" not in {pid for pid, _ in everything}


def test_a_store_that_does_not_hold_the_claim_cannot_overwrite_a_live_or_finished_digest(tmp_path):
    owner, other = Store(tmp_path / "d.db"), Store(tmp_path / "d.db")
    digest_id = owner.claim_digest("ada", "p1")
    assert other.mark_digest(digest_id, "retry", error="stale run") is False
    assert owner.digest(digest_id)["status"] == "claimed"
    assert owner.mark_digest(digest_id, "sent") is True
    assert other.mark_digest(digest_id, "failed", error="stale run") is False
    assert owner.digest(digest_id)["status"] == "sent"


def test_arxiv_replacements_are_not_candidates_unless_asked_for(store):
    store.add_papers([Paper("A new paper", arxiv_id="2411.00001", section="new"),
                      Paper("A cross-list", arxiv_id="2411.00002", section="cross"),
                      Paper("A revised old paper", arxiv_id="2406.00003", section="replaced"),
                      Paper("A Scholar alert item")])
    titles = [p.title for _, p in store.candidate_papers("ada", "2000-01-01")]
    assert titles == ["A new paper", "A cross-list", "A Scholar alert item"]
    assert len(store.candidate_papers("ada", "2000-01-01", replacements=True)) == 4
    # `digest status` counts what `digest rank` ranks
    assert store.count_candidates("ada", "2000-01-01") == 3
    assert store.count_candidates("ada", "2000-01-01", replacements=True) == 4
    # a paper first seen as new keeps counting as new when a later listing carries its replacement
    store.add_papers([Paper("A new paper", arxiv_id="2411.00001", section="replaced")])
    assert "A new paper" in [p.title for _, p in store.candidate_papers("ada", "2000-01-01")]
    # a paper from a Scholar alert stays a candidate when an arXiv listing then carries its replacement...
    store.add_papers([Paper("Cited in a Scholar alert", arxiv_id="2406.00004", source="google_scholar")])
    store.add_papers([Paper("Cited in a Scholar alert", arxiv_id="2406.00004", section="replaced")])
    # ...and a replacement becomes one when a Scholar alert brings it too
    store.add_papers([Paper("A revised old paper", arxiv_id="2406.00003", source="google_scholar")])
    titles = [p.title for _, p in store.candidate_papers("ada", "2000-01-01")]
    assert "Cited in a Scholar alert" in titles and "A revised old paper" in titles


def test_rank_find_tells_why_a_stored_paper_is_not_ranked_and_where_a_ranked_one_stands(tmp_path):
    from digest.config import load_settings
    from digest.pipeline import UserRanking, matches, verdict, why_not_candidate
    from digest.profiles import Profile
    from digest.rank import Ranking

    settings = load_settings("/dev/null", data_dir=str(tmp_path))
    store = Store(settings.db_path)
    old, replaced, sent, fresh = (Paper("Old news on 50% sparsity", arxiv_id="2001.00001"),
                                  Paper("A revised old preprint", arxiv_id="2001.00002", section="replaced"),
                                  Paper("Already in a digest", doi="10.1000/SENT"), Paper("Fresh and waiting"))
    store.add_papers([old, replaced, sent, fresh])
    store.db.execute("UPDATE papers SET first_seen = '2000-01-01T00:00:00+00:00' WHERE arxiv_id = '2001.00001'")
    digest_id = store.claim_digest("ada", "2026-11-28")
    store.save_digest_items(digest_id, [ScoredPaper(sent, 0.5, "r")], [sent.id], n_candidates=4)
    store.mark_digest(digest_id, "sent")
    ada = Profile(user="ada", name="Ada", email="ada@example.org", max_items=1)

    def why(query):
        [row] = store.papers_matching(query)
        return why_not_candidate(store, settings, ada, row)

    assert why("50% SPARSITY").startswith("arrived 2000-01-01, before the last 7 days")  # % is not a wildcard
    assert why("2001.00002").startswith("a revised version of an older arXiv paper")
    assert why("10.1000/sent") == "already sent in the digest of 2026-11-28: a paper is sent once"
    assert why("fresh") == "not a candidate" and store.papers_matching("100%") == []
    store.record_vote("ada", fresh.id, -1)  # judged on a digest's page (a runner-up): not ranked again
    assert why("fresh") == "you voted 👎 on it already (on a digest's page): a paper you judged is not ranked again"
    assert fresh.id not in {pid for pid, _ in store.candidate_papers("ada", "2000-01-01")}
    # a ranked candidate: picked, muted, below the floor, or above it without room
    items = [ScoredPaper(Paper(t), s, "r", details=d) for t, s, d in
             (("Top", 0.5, {}), ("Muted one", 0.4, {"muted": ["x"]}), ("Second", 0.3, {}), ("Low", 0.1, {}))]
    ranking = UserRanking(ada, Ranking(picked=items[:1], scored=items, floor=0.2), {}, 4)
    assert [verdict(ranking, i).split(":")[0] for i in items] == [
        "picked", "muted by the profile ([mute] keywords / authors)", "cleared the floor but not picked",
        "below the floor"]
    assert "2 papers did, for max_items = 1" in verdict(ranking, items[2])
    close = ScoredPaper(Paper("Just under"), 0.1996, "r")
    assert verdict(UserRanking(ada, Ranking(picked=[], scored=[close], floor=0.2), {}, 1), close) == \
        "below the floor: 0.1996 < 0.2000 (relevance_floor)"
    assert matches(items[0].paper, "x", " top ") and not matches(items[0].paper, "x", "to p")
    # case beyond ASCII, white space and punctuation as stored, an arXiv id with its version
    store.add_papers([Paper("Über  die Theorie\nder Graphen: eine Einführung", arxiv_id="2401.00001")])
    for query in ("über die theorie der graphen eine", "UBER DIE", "2401.00001v2", "arXiv:2401.00001"):
        assert [r["paper"].arxiv_id for r in store.papers_matching(query)] == ["2401.00001"], query


def test_a_digest_refused_for_another_address_is_not_done_for_the_corrected_one(store):
    digest_id = store.claim_digest("ada", "2026-11-28")
    store.mark_digest(digest_id, "failed", error="550 no such user", address="ada@old.example.org")
    assert store.last_done_period("ada") == "2026-11-28"  # as before: not tried again for that address
    assert store.last_done_period("ada", "ADA@old.example.org") == "2026-11-28"
    assert store.last_done_period("ada", "ada@new.example.org") is None  # the daemon's catch-up sends it


def test_an_event_repeated_by_every_command_is_kept_once_with_its_latest_time(store):
    for _ in range(3):  # a broken profile, seen by three commands in a row
        store.log_event("ERROR", "profiles", "profiles/ada.toml:3: max_items must be from 1 to 100", user="ada")
    store.log_event("ERROR", "send", "SMTP failed 1 time, last: 451 later", user="ada")
    # the same again after another component's event: still the last of its own component, so still one event
    store.log_event("ERROR", "profiles", "profiles/ada.toml:3: max_items must be from 1 to 100", user="ada")
    store.log_event("WARNING", "profiles", "profiles/ada.toml:3: max_items must be from 1 to 100", user="ada")
    events = store.recent_events()
    assert [(e["component"], e["level"]) for e in events] == [("profiles", "WARNING"), ("send", "ERROR"),
                                                               ("profiles", "ERROR")]
    for _ in range(3):  # two broken profiles, seen in turn by three commands: still two events
        store.log_event("ERROR", "profiles", "profiles/bo.toml:1: not valid TOML", user="bo")
        store.log_event("ERROR", "profiles", "profiles/cy.toml:2: unknown key", user="cy")
    assert len(store.recent_events(limit=50)) == 5


def test_errors_are_listed_past_any_number_of_info_events_logged_after_them(store):
    store.log_event("ERROR", "send", "SMTP failed 4 times, last: 451 later", user="ada")
    store.log_event("WARNING", "clock", "the clock went back 1 d")
    for n in range(12):  # a busy day of INFO lines after them
        store.log_event("INFO", "feedback", f"vote {n}", user="ada")
    assert all(e["level"] == "INFO" for e in store.recent_events(10))
    errors = store.recent_events(10, levels=("ERROR", "WARNING"))
    assert [(e["level"], e["component"]) for e in errors] == [("WARNING", "clock"), ("ERROR", "send")]


def test_a_text_an_alert_cut_short_loses_to_a_whole_one_even_when_the_mark_makes_it_longer(store):
    whole = "We study sparse attention. It scales."
    cut = "We study sparse attention. It scales …"  # cut just before the end, then marked: one character longer
    [pid] = store.add_papers([Paper("Sparse attention", arxiv_id="2501.00077", abstract=cut)]).paper_ids
    store.add_papers([Paper("Sparse attention", arxiv_id="2501.00077", abstract=whole)])
    assert store.get_papers([pid])[pid].abstract == whole
    store.add_papers([Paper("Sparse attention", arxiv_id="2501.00077", abstract=cut)])  # and it stays whole
    assert store.get_papers([pid])[pid].abstract == whole
    # a cut text that holds more than a short whole one (a teaser) still wins
    [other] = store.add_papers([Paper("Dense attention", arxiv_id="2501.00078", abstract="Short.")]).paper_ids
    store.add_papers([Paper("Dense attention", arxiv_id="2501.00078", abstract="A much longer abstract, cut …")])
    assert store.get_papers([other])[other].abstract == "A much longer abstract, cut …"


def test_each_handover_renews_the_claim_so_a_long_send_is_not_taken_for_a_stale_one(tmp_path):
    store = Store(tmp_path / "d.db")
    digest_id = store.claim_digest("ada", "2026-11-28")
    store.db.execute("UPDATE digests SET claimed_at = '2026-11-28T07:00:00+00:00' WHERE id = ?", [digest_id])
    store.db.conn.commit()
    assert store.mark_sending(digest_id)
    renewed = datetime.fromisoformat(store.digest(digest_id)["claimed_at"])
    assert datetime.now(UTC) - renewed < timedelta(minutes=1)


def test_a_delivery_noted_while_another_process_enters_the_kept_ones_is_not_lost(tmp_path):
    """Two processes on a disk that was full: one enters the kept deliveries while the other keeps a new one.
    The new line must not be removed unread with the old file; and a file taken but not finished (the disk
    still full) is read by the next call."""
    store = Store(tmp_path / "digest.db")
    ids = [store.claim_digest(user, "2026-12-07") for user in ("ada", "bob", "cy")]
    assert store.note_delivered(ids[0], "ada@example.org", None)
    # another process took the file (renamed it) and died before it entered anything ...
    taken = store.delivered_path.with_name(store.delivered_path.name + ".4242-deadbeef")
    store.delivered_path.rename(taken)
    # ... while this one kept two more deliveries (a new file)
    assert store.note_delivered(ids[1], "bob@example.org", None)
    assert store.note_delivered(ids[2], "cy@example.org", "unconfirmed: test")
    assert store.enter_delivered() == 3
    assert [store.find_digest(i)["status"] for i in ids] == ["sent"] * 3
    assert store.find_digest(ids[2])["error"] == "unconfirmed: test"
    assert not list(tmp_path.glob("digest.db.delivered*"))
    assert store.enter_delivered() == 0  # nothing left, nothing entered twice
    store.close()


def _sent_only(store: Store, user: str, period: str) -> tuple[int, set[str]]:
    """A digest of two papers recorded 'sent' on its row alone, as on a disk too full for the ledger's rows."""
    from digest.models import ScoredPaper

    digest_id = store.claim_digest(user, period)
    candidates = store.candidate_papers(user, "2000-01-01")[:2]
    store.save_digest_items(digest_id, [ScoredPaper(p, 0.5, "why", "facet") for _, p in candidates],
                            [pid for pid, _ in candidates], n_candidates=2, subject="s", message_id=f"<{user}@x>")
    assert store.mark_sending(digest_id)
    store.mark_sent_only(digest_id, f"{user}@example.org", None)
    return digest_id, {pid for pid, _ in candidates}


def test_a_digest_recorded_sent_on_its_row_alone_stays_sent_and_its_ledger_is_filled_whoever_claims_next(tmp_path):
    """mark_sent_only kept the claim, so a later 'retry' from the same run (its next write failing on the full
    disk) turned a delivered digest back to 'retry', resent by the next run; and only the same user's claims
    within 7 days filled its ledger (a renamed profile's digest, or a weekly reader's, was offered again)."""
    store = Store(tmp_path / "digest.db")
    store.add_papers([Paper(f"Paper {i}", arxiv_id=f"2401.0000{i}") for i in range(6)])
    digest_id, papers = _sent_only(store, "ada", "2026-11-21")
    assert not store.mark_digest(digest_id, "retry", error="OperationalError: database or disk is full")
    assert store.digest(digest_id)["status"] == "sent"
    store.db.execute("UPDATE digests SET sent_at = '2026-11-01T07:00:00+00:00' WHERE id = ?", [digest_id])
    assert store.sent_paper_ids("ada") == set()
    dan_id, dan_papers = _sent_only(store, "dan", "2026-11-28")  # weeks later, another user's claim fills it
    assert store.sent_paper_ids("ada") == papers and store.sent_paper_ids("dan") == set()
    store.claim_digest("eve", "2026-11-29")  # dan.toml, since renamed eve.toml: the earlier name's ledger too
    assert store.sent_paper_ids("dan") == dan_papers
    store.close()


def test_a_delivery_kept_by_a_writer_that_opened_the_file_before_another_run_took_it_is_not_lost(tmp_path):
    """note_delivered opened the file, then another process's enter_delivered renamed, read and removed it
    before the line was written: the line went into the removed file. Now the writer locks the file and
    checks it is still the one of that name before it writes."""
    import fcntl
    import threading
    import time

    writer, reader = Store(tmp_path / "digest.db"), Store(tmp_path / "digest.db")
    ids = [writer.claim_digest(user, "2026-12-07") for user in ("ada", "bob")]
    assert writer.note_delivered(ids[0], "ada@example.org", None)
    holder = open(writer.delivered_path, encoding="utf-8")  # a reader in the middle of reading it holds its lock
    fcntl.flock(holder, fcntl.LOCK_EX)
    noted = threading.Thread(target=writer.note_delivered, args=(ids[1], "bob@example.org", None))
    noted.start()  # opens the file, then waits for its lock
    time.sleep(0.3)
    entering = threading.Thread(target=reader.enter_delivered)
    entering.start()  # renames the file away, then waits for its lock too
    time.sleep(0.3)
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    noted.join(10)
    entering.join(10)
    reader.enter_delivered()  # whatever was left for the next call
    assert [reader.find_digest(i)["status"] for i in ids] == ["sent", "sent"]
    assert not list(tmp_path.glob("digest.db.delivered*"))
    writer.close()
    reader.close()


def test_a_statement_error_is_not_called_a_damaged_database(tmp_path):
    """An IntegrityError (a fault in digest) was answered with "not a usable database ... restore your latest
    backup", advice that would lose every vote and digest since that backup."""
    import sqlite3

    from digest.store import database_problem, is_damage

    path = tmp_path / "digest.db"
    fault = sqlite3.IntegrityError("UNIQUE constraint failed: digests.user, digests.period")
    assert not is_damage(fault)
    said = database_problem(path, fault)
    assert "a fault in digest, not in the database file" in said and "backup" not in said
    for damage in (sqlite3.DatabaseError("file is not a database"),
                   sqlite3.DatabaseError("database disk image is malformed")):
        assert is_damage(damage) and "not a usable database" in database_problem(path, damage)


def test_a_store_opened_without_create_never_makes_a_database(tmp_path):
    """The web server opens the database per request: between an exists() check and the open, a database
    deleted meanwhile was started again, empty. Without create, SQLite itself refuses (mode=rw)."""
    import pytest

    from digest.errors import StoreError

    path = tmp_path / "data" / "digest.db"
    with pytest.raises(StoreError, match="the database file is gone"):
        Store(path, create=False)
    assert not (tmp_path / "data").exists()
    Store(path).close()
    Store(path, create=False).close()  # there: opened as usual


def test_write_problem_is_none_for_a_writable_file_even_while_another_process_writes(tmp_path):
    store = Store(tmp_path / "digest.db")
    assert store.write_problem() is None and store.schema_version == SCHEMA_VERSION
    assert not store.db.conn.in_transaction  # the probe's transaction is rolled back
    writer = sqlite3.connect(tmp_path / "digest.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock: the probe must not wait 30 s, nor call it read-only
    try:
        assert store.write_problem() is None
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000  # the usual patience is back
    store.close()


def test_the_index_migrations_can_run_again_on_a_store_that_has_their_indexes(tmp_path):
    """A store whose schema number was set back by hand (or a copy restored over newer files) runs migrations 10
    and 11 again: every command failed with 'index idx_papers_lower_id already exists'."""
    path = tmp_path / "digest.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    indexes = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"idx_papers_lower_id", "idx_papers_lower_doi", "idx_vote_events_user"} <= indexes
    store.close()
