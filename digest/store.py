"""The store: the only module that speaks SQL. One SQLite file (WAL), sqlite-utils, versioned migrations.

Tables
  papers           one row per paper, keyed by its stable id; merged across emails, richest metadata kept
  paper_aliases    old id -> current id, when a paper known by title hash later shows its arXiv id or DOI
  paper_messages   which ingested message brought which paper (and as what source/section)
  messages         every message seen: mailbox, UIDVALIDITY, UID, Message-ID, status, error
  poll_state       per mailbox: UIDVALIDITY and the highest UID processed
  embeddings       (model, content hash) -> vector
  votes            the current vote of a user on a paper (+1/-1); vote_events keeps every change
  digests          one row per (user, period): claimed before anything goes out; status and error
  digest_items     the papers of a digest with score, reason and facet
  digest_more      the runners-up of a digest (cleared the floor, no room in the email) and the best papers below
                   its floor (``below``); shown on its web page
  papers_fts       word index (FTS5, stemmed) of the papers' titles, authors and abstracts, kept by triggers
  sent_papers      the ledger: a paper is never sent to the same user twice
  profile_texts    the last good text of each profile file
  events           recent errors and notable events, for `digest status`
  pauses           users whose digests are paused by an unsubscribe link (until `digest resume USER`)
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlite_utils

from .config import READ_ONLY_MOUNT, read_only_mount
from .errors import StoreError
from .models import CUT_MARK, Paper, ScoredPaper, Vote, legacy_doi, matches_query, normalise_title, query_ids

SCHEMA_VERSION = 11
BUSY_SECONDS = 30.0  # how long a write waits for another process's write lock before it fails (SQLite's busy timeout)
SEARCH_WORDS = 12  # a search uses at most this many words of its query
SEARCH_PREFETCH = 200  # a word search reads the papers of its best this many matches (see Store._fts_search)


def damaged_message(path: Path | None, exc: sqlite3.DatabaseError) -> str:
    """What to say when SQLite finds the store's file is no database, or a damaged one (from a disk fault, a copy
    taken while it was written, a -wal file removed without its database): the file, SQLite's words, the fix."""
    return (f"{path}: not a usable database ({exc}). digest changes nothing in it. If it is digest's store, stop "
            f"digest and restore your latest `digest backup` copy over it (delete {path.name}-wal and "
            f"{path.name}-shm beside it first), or salvage what SQLite can read: `sqlite3 {path} .recover | "
            f"sqlite3 recovered.db`, then use recovered.db; else point data_dir (config.toml or --data-dir) "
            f"elsewhere" if path else f"the database is damaged ({exc})")


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's word that the file is no database or a damaged one, not an error of the statement (an
    IntegrityError or ProgrammingError is a fault in digest: restoring a backup would only lose data)."""
    return type(exc) is sqlite3.DatabaseError or bool(re.search(r"malformed|not a database|corrupt", str(exc)))


def is_lock(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's word that another connection holds the lock ("database is locked", SQLITE_BUSY): it clears."""
    return bool(re.search(r"locked|busy", str(exc)))


def _wait_for_locks(conn: sqlite3.Connection, seconds: float | None = None) -> None:
    """Make the connection's writes wait ``seconds`` (BUSY_SECONDS when None) for another process's write lock."""
    conn.execute(f"PRAGMA busy_timeout={int((BUSY_SECONDS if seconds is None else seconds) * 1000)}")


def database_problem(path: Path | None, exc: sqlite3.DatabaseError, waited: float | None = None) -> str:
    """One line for an SQLite error met in the middle of a command: what it means and what to do. Every write is
    one transaction, so the one that failed left nothing half-done. ``waited``: how long the write waited for a
    lock (its connection's busy timeout)."""
    where = str(path) if path else "the database"
    text = str(exc)
    if is_damage(exc):
        return damaged_message(path, exc)
    if not isinstance(exc, sqlite3.OperationalError):
        return (f"{where}: {type(exc).__name__}: {text}: a fault in digest, not in the database file (leave the file "
                "as it is); please report it with the command that met it")
    if is_lock(exc):
        waited = BUSY_SECONDS if waited is None else waited
        return (f"{where}: another process held the database's write lock for {waited:g} s ({text}); the write that "
                "waited was not made (nothing is left half-written). A `digest run` daemon or another command may "
                "be busy: try again, or find the process keeping it (e.g. an sqlite3 shell with an open "
                "transaction)")
    if "full" in text or ("disk I/O" in text and path is not None and _free_bytes(path.parent) < 1_000_000):
        folder, wal = (path.parent, f"{path.name}-wal") if path else ("data_dir", "digest.db-wal")
        return (f"{where}: the disk is full ({text}); the write that failed was not made (nothing is left "
                f"half-written). Free space where {folder} is (`df -h {folder}`; not by deleting {wal}: it holds "
                "the latest writes), then run it again")
    if "disk I/O" in text or "readonly" in text or "read-only" in text or "unable to open" in text:
        return (f"{where}: SQLite cannot write the database ({text}); the write that failed was not made. Check "
                "that the disk is mounted and writable by this user, then run it again")
    return f"{where}: {text}"


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a new file's name) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sources(stored: str | None) -> list[str]:
    """A paper's ``sources`` column: the JSON list of the alert kinds that brought it."""
    return json.loads(stored or "[]")


def _migration_1(db: sqlite_utils.Database) -> None:
    db["papers"].create({
        "id": str, "title": str, "title_key": str, "authors": str, "abstract": str, "snippet": str,
        "url": str, "arxiv_id": str, "doi": str, "sources": str, "section": str, "published": str,
        "venue": str, "categories": str, "comments": str, "first_seen": str, "updated_at": str,
    }, pk="id", not_null={"title", "title_key", "first_seen"})
    db["papers"].create_index(["title_key"])
    db["papers"].create_index(["first_seen"])
    db["papers"].create_index(["arxiv_id"])
    db["papers"].create_index(["doi"])
    db["paper_aliases"].create({"alias": str, "paper_id": str}, pk="alias")
    db["messages"].create({
        "id": int, "mailbox": str, "uidvalidity": int, "uid": int, "message_id": str, "subject": str,
        "sender": str, "kind": str, "status": str, "error": str, "n_papers": int, "received_at": str,
        "processed_at": str,
    }, pk="id", not_null={"mailbox", "status"})
    db["messages"].create_index(["mailbox", "uidvalidity", "uid"], unique=True)
    db["messages"].create_index(["message_id"])
    db["paper_messages"].create({"paper_id": str, "message": int, "source": str, "section": str},
                                pk=("paper_id", "message"))
    db["poll_state"].create({"mailbox": str, "uidvalidity": int, "last_uid": int, "last_poll_at": str,
                             "last_result": str}, pk="mailbox")
    db["embeddings"].create({"model": str, "content_hash": str, "dim": int, "vector": bytes},
                            pk=("model", "content_hash"))
    db["votes"].create({"user": str, "paper_id": str, "value": int, "via": str, "created_at": str,
                        "updated_at": str}, pk=("user", "paper_id"))
    db["vote_events"].create({"id": int, "user": str, "paper_id": str, "value": int, "via": str, "at": str},
                             pk="id")
    db["digests"].create({
        "id": int, "user": str, "period": str, "status": str, "claimed_by": str, "claimed_at": str,
        "attempts": int, "message_id": str, "subject": str, "n_candidates": int, "n_items": int,
        "error": str, "sent_at": str, "path": str,
    }, pk="id", not_null={"user", "period", "status"})
    db["digests"].create_index(["user", "period"], unique=True)
    db["digest_items"].create({"digest_id": int, "rank": int, "paper_id": str, "score": float, "reason": str,
                               "facet": str, "details": str}, pk=("digest_id", "paper_id"))
    db["sent_papers"].create({"user": str, "paper_id": str, "digest_id": int, "sent_at": str},
                             pk=("user", "paper_id"))
    db["profile_texts"].create({"user": str, "text": str, "saved_at": str}, pk="user")
    db["events"].create({"id": int, "at": str, "level": str, "component": str, "user": str, "message": str},
                        pk="id")
    db["events"].create_index(["at"])


def _migration_2(db: sqlite_utils.Database) -> None:
    # owner: feedback. An unsubscribe link pauses a user here, not in their hand-edited profile file;
    # the profile's own `paused` key stays the user's switch. `digest resume USER` deletes the row.
    db["pauses"].create({"user": str, "paused_at": str, "via": str, "reason": str}, pk="user")


def _migration_3(db: sqlite_utils.Database) -> None:
    # owner: ingest. The number of authors when an alert names only some of them (arXiv's
    # "et al. (97 additional authors not shown)"); NULL when the named authors are all we know of.
    db["papers"].add_column("author_count", int)


def _migration_4(db: sqlite_utils.Database) -> None:
    # owner: delivery. The address a digest was refused for: a profile that names another address since
    # gets that day's digest after all.
    db["digests"].add_column("address", str)


def _migration_5(db: sqlite_utils.Database) -> None:
    # owner: delivery. The papers that cleared a digest's floor but found no room in it, saved with it so its
    # web page can show them (numbered after the digest's own). They are not sent: not in the ledger.
    db["digest_more"].create({"digest_id": int, "rank": int, "paper_id": str, "score": float, "reason": str,
                              "facet": str, "details": str}, pk=("digest_id", "paper_id"))


# the columns papers_fts indexes (title words count most in a search; see Store.search_papers)
_FTS_COLUMNS = ("title", "authors", "abstract", "snippet")


def _migration_6(db: sqlite_utils.Database) -> None:
    # owner: feedback. A word index of the papers for the digest page's search ("find a paper and vote on it").
    # Its rows hold the paper id; papers_fts_keys maps a paper to its index row, because the rowids of papers
    # (a table keyed by text) may be renumbered by VACUUM. Triggers keep both in step with every write to papers,
    # whichever code makes it. An SQLite built without FTS5 gets no index: the search then scans the table.
    cols = ", ".join(_FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in _FTS_COLUMNS)
    try:
        db.execute(f"CREATE VIRTUAL TABLE papers_fts USING fts5(paper_id UNINDEXED, {cols}, "
                   "tokenize = 'porter unicode61 remove_diacritics 2')")
    except sqlite3.OperationalError as e:
        if "fts5" in str(e).lower():
            return
        raise
    db["papers_fts_keys"].create({"paper_id": str, "fts_rowid": int}, pk="paper_id")
    db.execute(f"INSERT INTO papers_fts (paper_id, {cols}) SELECT id, {cols} FROM papers")
    db.execute("INSERT INTO papers_fts_keys (paper_id, fts_rowid) SELECT paper_id, rowid FROM papers_fts")
    add = (f"INSERT INTO papers_fts (paper_id, {cols}) VALUES (new.id, {new}); "
           "INSERT OR REPLACE INTO papers_fts_keys (paper_id, fts_rowid) VALUES (new.id, last_insert_rowid());")
    drop = ("DELETE FROM papers_fts WHERE rowid = (SELECT fts_rowid FROM papers_fts_keys WHERE paper_id = old.id); "
            "DELETE FROM papers_fts_keys WHERE paper_id = old.id;")
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in ("id", *_FTS_COLUMNS))
    db.execute(f"CREATE TRIGGER papers_fts_insert AFTER INSERT ON papers BEGIN {add} END")
    db.execute(f"CREATE TRIGGER papers_fts_update AFTER UPDATE ON papers WHEN {changed} BEGIN {drop} {add} END")
    db.execute(f"CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN {drop} END")


def _migration_7(db: sqlite_utils.Database) -> None:
    # owner: delivery. The best papers below a digest's floor, saved with it (below = 1, numbered after its
    # runners-up) so its web page can show what the reader would get with a lower floor, to vote on.
    db["digest_more"].add_column("below", int, not_null_default=0)
    db["digests"].add_column("floor", float)  # the relevance floor the digest was composed with


def _migration_8(db: sqlite_utils.Database) -> None:
    # owner: delivery. How often a digest was handed over (SMTP DATA) without the server's confirmation: the
    # connection broke before its reply, or a run died while sending. It may have arrived each time, so such
    # handovers are bounded (MAX_UNCONFIRMED).
    db["digests"].add_column("unconfirmed", int, not_null_default=0)


def _migration_9(db: sqlite_utils.Database) -> None:
    # owner: delivery. A digest recorded 'sent' without its ledger rows (mark_sent_only, a full disk) is found
    # by its id at every claim, whoever's and however old, so its papers are never offered again.
    db["sent_papers"].create_index(["digest_id"])


def _migration_10(db: sqlite_utils.Database) -> None:
    # owner: feedback. vote_events had no index but its id: every vote of a reply read later (as_of: was a later
    # choice made on this paper?), every rekeyed paper and `digest votes --history` read the whole log, which
    # grows by every vote and undo, for ever.
    db["vote_events"].create_index(["paper_id", "user"], if_not_exists=True)
    db["vote_events"].create_index(["user"], if_not_exists=True)


def _migration_11(db: sqlite_utils.Database) -> None:
    # owner: feedback. A search (the digest page's, `rank --find`) looks its words up as ids too, case aside:
    # lower(column) cannot use the plain indexes, so every search read the whole papers table.
    for column in ("id", "arxiv_id", "doi"):
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_papers_lower_{column} ON papers (lower({column}))")


MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6, _migration_7,
              _migration_8, _migration_9, _migration_10, _migration_11]


DIGEST_DONE = ("sent", "skipped", "failed", "superseded")  # a digest in one of these is never sent again
# a digest is handed over without the server's confirmation at most this often: the first such handover gets one
# resend (the server may not have it); after the second the server most likely has it, so it is recorded as sent
MAX_UNCONFIRMED = 2


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot), '' where /proc is missing, None if it is
    gone or a zombie. Comparing it tells a live claimer from a new process that happens to reuse its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc (macOS): existence only
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return None if fields[0] in ("Z", "X") else fields[19]


def claim_owner() -> str:
    """Who holds a claim: ``host:boot:pid:start:nonce`` (nonce: two claims by one process differ)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_process_start(pid) or ''}:{uuid.uuid4().hex[:8]}"


# the claims this process is working on (every Store of it): a claim of this process that is not among them was
# left behind by a delivery whose last write failed (a full disk): the process lives on (the daemon), so without
# this its own claim would read as another live run's, and the digest as 'busy' until a restart
_HELD: set[str] = set()


def _left_here(owner: str) -> bool:
    """Whether ``owner`` is a claim of this very process that no delivery of it is working on any more."""
    parts = owner.split(":")
    return (len(parts) == 5 and parts[0] == socket.gethostname() and parts[2] == str(os.getpid())
            and parts[3] == (_process_start(os.getpid()) or "") and owner not in _HELD)


def _owner_parts(owner: str) -> list[str] | None:
    """A claim's owner as [host, boot id, pid, process start, nonce] (pid all digits), or None if unreadable."""
    parts = owner.split(":")
    if len(parts) == 3:  # the first format: host:pid:nonce
        parts = [parts[0], "", parts[1], "", parts[2]]
    return parts if len(parts) == 5 and parts[2].isdigit() else None


def owner_state(owner: str) -> str:
    """'alive', 'dead' (provably: same host, process gone, pid reused, or host rebooted) or 'unknown'
    (another host, or an unreadable owner)."""
    parts = _owner_parts(owner)
    if parts is None or parts[0] != socket.gethostname():
        return "unknown"
    host_boot, pid, start = parts[1], int(parts[2]), parts[3]
    if host_boot and _boot_id() and host_boot != _boot_id():
        return "dead"  # the machine restarted since the claim
    current = _process_start(pid)
    if current is None or (start and current and current != start):
        return "dead"
    return "alive"


def describe_owner(owner: str, since: str | None = None) -> str:
    """A claim's owner as whoever reads the message can look it up (``ps``): 'process 22473 on this machine since
    2026-12-07 18:25:02 UTC', not the stored ``host:boot:pid:start:nonce``."""
    parts = _owner_parts(owner)
    if parts is not None:
        where = "this machine" if parts[0] == socket.gethostname() else f"host {parts[0]}"
        who = f"process {parts[2]} on {where}"
    else:
        who = f"another run ({owner})" if owner else "another run"
    if since:
        when = f"{since[:10]} {since[11:19]} UTC" if since.endswith("+00:00") and len(since) >= 19 else since
        who += f" since {when}"
    return who


@dataclass(frozen=True)
class IngestOutcome:
    new: int
    merged: int
    paper_ids: tuple[str, ...]


def _richer(old: str | None, new: str | None) -> str | None:
    """The fuller of two texts of a paper; one that a cut-short alert marked " …" loses to a whole one as long."""
    if not old:
        return new
    if not new:
        return old
    if old.endswith(CUT_MARK) != new.endswith(CUT_MARK):
        whole, cut = (new, old) if old.endswith(CUT_MARK) else (old, new)
        return whole if len(whole) >= len(cut) - len(CUT_MARK) else cut
    return new if len(new) > len(old) else old


def _merged_section(old: str | None, new: str | None) -> str | None:
    """A paper is a replacement (not a digest candidate) only while every sighting of it is one: a Scholar alert
    or an arXiv new/cross entry for it outweighs an arXiv "replaced" entry, whichever came first."""
    if old == "replaced":
        return new
    if old is None:
        return None if new == "replaced" else new
    return old


def _not_replaced(replacements: bool) -> str:
    """The SQL that leaves arXiv replacements out of a user's candidates (unless ``replacements``)."""
    return "" if replacements else "AND (section IS NULL OR section != 'replaced') "


def _id_is(query: str) -> tuple[str, list]:
    """The SQL condition (and its arguments) of the papers whose id, arXiv id or DOI a query is (``query_ids``)."""
    ids = sorted(query_ids(query))
    marks = ",".join("?" * len(ids)) or "NULL"
    # each term answered by an index of schema 11 (an id "arxiv:X" whatever the case of its prefix is
    # lower(id) = 'arxiv:' || lower X), so a word search does not read every paper to rule out ids
    both = ",".join("?" * 2 * len(ids)) or "NULL"
    return (f"(lower(id) IN ({both}) OR lower(arxiv_id) IN ({marks}) OR lower(doi) IN ({marks}))",
            [*ids, *(f"arxiv:{i}" for i in ids), *ids, *ids])


def _judged(users: Sequence[str]) -> tuple[str, list]:
    """The subquery (and its arguments) of the papers a reader (``users``: their names) has seen and judged: sent
    to them, or voted on (a runner-up on a digest's page). Such a paper is no candidate again."""
    marks = ",".join("?" * len(users))
    return (f"(SELECT paper_id FROM sent_papers WHERE user IN ({marks}) UNION "
            f"SELECT paper_id FROM votes WHERE user IN ({marks}))", [*users, *users])


def _candidates(user: str, since: str, replacements: bool, also_sent_to: Sequence[str]) -> tuple[str, list]:
    """The WHERE clause (and its arguments) of a user's candidates: one place, so what `digest rank` ranks and
    what `digest status` counts cannot drift apart."""
    judged, args = _judged([user, *also_sent_to])
    return f"first_seen >= ? {_not_replaced(replacements)}AND id NOT IN {judged}", [since, *args]


def unwritable_files(db: Path) -> str | None:
    """Which of the database's files (it, its -wal, its -shm) this user may not write, by their permissions,
    without opening it; None if none (root may write any)."""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists() and not os.access(path, os.W_OK):
            if read_only_mount(path):  # no user may write it: the permissions are not the cause
                return f"{path.name} is {READ_ONLY_MOUNT} ({path.parent})"
            return f"{path.name} is not writable by this user ({_user_name()}; it belongs to {_owner(path)})"
    return None


def schema_without_opening(db: Path) -> int:
    """The database's schema number, read without the -wal and -shm files that opening it makes (immutable)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def another_users_database(db: Path) -> str | None:
    """The error for a database whose files this user may not write (digest run as the wrong user), said before
    opening it: SQLite would fail at the first write (a read too, where it cannot make its -shm file), and where
    the folder lets anyone write, it would leave -wal and -shm files of this user that lock the owner out."""
    problem = unwritable_files(db)
    if problem is not None and READ_ONLY_MOUNT in problem:
        return (f"{db}: {problem}, so nothing can be recorded (polls, digests sent, votes); remount it read-write "
                "(or point data_dir at a writable disk), then run it again")
    return None if problem is None else (
        f"{db}: {problem}, so nothing can be recorded (polls, digests sent, votes); run digest as the user that "
        "owns the data folder, or give this user write access to the database's files")


def _user_name(uid: int | None = None) -> str:
    import pwd

    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _owner(path: Path) -> str:
    try:
        return _user_name(path.stat().st_uid)
    except OSError:
        return "another user"


class Store:
    """All persistent state. Open one per process (or per thread); every write is one transaction."""

    def __init__(self, path: str | Path | None, *, create: bool = True):
        """``create=False``: a database file that is not there is an error, never a new empty one (a server
        whose database was deleted under it must not start another in its place)."""
        if path is None:
            self.db = sqlite_utils.Database(memory=True)
            self.path = None
        else:
            self.path = Path(path)
            if self.path.is_dir():
                raise StoreError(f"{self.path}: a folder where the database file belongs; data_dir must hold a "
                                 f"file named {self.path.name}: move the folder away, or change data_dir in "
                                 "config.toml (or --data-dir)")
            conn = None
            try:
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(str(self.path), timeout=BUSY_SECONDS, check_same_thread=False)
                else:  # SQLite's read-write mode without create: atomic, where an exists() check is not
                    try:
                        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_SECONDS,
                                               check_same_thread=False)
                    except sqlite3.OperationalError:
                        if self.path.exists():
                            raise
                        raise StoreError(f"{self.path}: the database file is gone (deleted or moved); restore it "
                                         "(`digest backup` copies) and restart") from None
                self.db = sqlite_utils.Database(conn)
                self._refuse_foreign()  # before anything is written, even the journal mode
                self.db.execute("PRAGMA journal_mode=WAL")
            except (OSError, sqlite3.OperationalError) as exc:
                if isinstance(exc, sqlite3.OperationalError) and not re.search(r"unable to open|readonly|read-only",
                                                                                 str(exc)):
                    raise  # e.g. busy: not a problem of the folder
                why = "it is a file, not a folder" if self.path.parent.is_file() else \
                    getattr(exc, "strerror", None) or str(exc)
                raise StoreError(f"{self.path.parent}: cannot keep the database there ({why}); data_dir must be a "
                                 "folder this user can write: create it, or change data_dir in config.toml (or "
                                 "--data-dir)") from None
            except sqlite3.DatabaseError as exc:  # not a database at all, or a damaged one
                if conn is not None:
                    conn.close()
                raise StoreError(damaged_message(self.path, exc)) from None
            except StoreError:
                if conn is not None:
                    conn.close()
                raise
        try:
            if self.path is not None:
                self.db.execute("PRAGMA synchronous=NORMAL")
            # digest id -> the owner string of the claims this Store made (to check it still holds them)
            self._claim_owners: dict[int, str] = {}
            _wait_for_locks(self.db.conn)
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            self.db.conn.close()
            raise StoreError(damaged_message(self.path, exc)) from None
        except StoreError:
            self.db.conn.close()
            raise

    # -- schema -----------------------------------------------------------------------------------------
    def _refuse_foreign(self) -> None:
        """A database at schema 0 is new and empty: one with tables is another program's file, which the first
        migration would write digest's tables into; one at a later schema has digest's tables."""
        tables = [r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        version = self.schema_version
        # digest's own file has these from schema 1 on (and another program may set user_version too)
        ours = {"papers", "digests", "messages"} <= set(tables)
        if (tables and not version) or (version and not ours):
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            shown = shown or "none"
            raise StoreError(f"{self.path}: an SQLite database of another program (tables {shown}), not digest's; "
                             "digest leaves it as it is: point data_dir (config.toml or --data-dir) at a folder of "
                             "its own")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer digest (schema {version} > {SCHEMA_VERSION}); "
                             "upgrade digest or point data_dir elsewhere")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():  # all of a migration or none of it, even if the process dies half-way
                if self.schema_version >= number:
                    continue  # another process migrated while this one waited for the write lock
                MIGRATIONS[number - 1](self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: it waits for the write lock at once, so it never fails half-way
        on a lock). Needed because sqlite-utils' ``Database.execute`` commits every write it runs outside an
        open transaction (sqlite-utils 4), and Python's sqlite3 opens none before the first write: without this,
        ``with conn:`` around several writes would commit each on its own. Nested use joins the outer one."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @contextlib.contextmanager
    def lock_wait(self, seconds: float) -> Iterator[None]:
        """Writes inside wait at most ``seconds`` for another process's write lock (BUSY_SECONDS otherwise), for a caller
        that tries again soon anyway (the daemon's profile watcher)."""
        _wait_for_locks(self.db.conn, seconds)
        try:
            yield
        finally:
            _wait_for_locks(self.db.conn)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def write_problem(self) -> str | None:
        """None if this process can write the database, else SQLite's reason. SQLite opens a file it may not
        write (another user's, a read-only mount) read-only without a word, and every read works: only a write
        tells. This one writes the schema number it has, in a transaction rolled back, so nothing changes."""
        if self.path is None:
            return None
        conn = self.db.conn
        version = self.schema_version
        _wait_for_locks(conn, 2)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_lock(exc):
                return None  # another connection is writing it right now
            return str(exc)
        finally:
            _wait_for_locks(conn)
        try:
            conn.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.OperationalError as exc:
            return str(exc)
        finally:
            conn.rollback()
        return None

    def close(self) -> None:
        self.let_go()
        self.db.conn.close()

    def backup(self, dest: Path) -> dict[str, int]:
        """A consistent copy of the whole store at ``dest`` (SQLite's online backup: safe while other processes
        read and write), checked by SQLite before it takes the name, so a half-written or damaged copy never looks
        like a backup. Returns the copy's row counts of what cannot be had again (votes, digests) and papers."""
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            try:
                target = sqlite3.connect(str(tmp))
            except sqlite3.OperationalError as exc:
                raise StoreError(f"{dest}: cannot write the copy there ({exc}): choose a folder this user can "
                                 "write") from None
            try:
                self.db.conn.backup(target, pages=1024)
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                check = target.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise StoreError(f"{self.path}: the copy fails SQLite's check ({check}): the database is "
                                     f"damaged; {dest} was not written")
                counts = {t: target.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                          for t in ("papers", "votes", "vote_events", "digests")}
            except sqlite3.OperationalError as exc:  # e.g. the disk is full: the store itself is untouched
                raise StoreError(f"{dest}: the copy could not be written ({exc}); the store is unchanged, and no "
                                 "file was left at that name") from None
            except sqlite3.DatabaseError as exc:  # reading a damaged page of the store
                raise StoreError(damaged_message(self.path, exc)) from None
            finally:
                target.close()
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return counts


    # -- raw writes: sqlite-utils' write helpers commit on their own, which would split our transactions ----
    def _insert(self, table: str, record: dict, *, replace: bool = False, ignore: bool = False) -> int:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE" if ignore else "INSERT"
        cols = ", ".join(f"[{c}]" for c in record)
        marks = ", ".join("?" * len(record))
        return self.db.execute(f"{verb} INTO [{table}] ({cols}) VALUES ({marks})", list(record.values())).lastrowid

    def _update(self, table: str, where: str, args: Sequence, changes: dict) -> None:
        sets = ", ".join(f"[{c}] = ?" for c in changes)
        self.db.execute(f"UPDATE [{table}] SET {sets} WHERE {where}", [*changes.values(), *args])

    # -- papers -----------------------------------------------------------------------------------------
    def _row_to_paper(self, row: dict) -> Paper:
        return Paper(title=row["title"], authors=tuple(json.loads(row["authors"] or "[]")),
                     abstract=row["abstract"], snippet=row["snippet"], url=row["url"], arxiv_id=row["arxiv_id"],
                     doi=row["doi"], source=(_sources(row["sources"]) or ["generic"])[0],
                     section=row["section"], published=row["published"], venue=row["venue"],
                     categories=tuple(json.loads(row["categories"] or "[]")), comments=row["comments"],
                     author_count=row["author_count"])

    def resolve_id(self, pid: str) -> str:
        row = self.db.execute("SELECT paper_id FROM paper_aliases WHERE alias = ?", [pid]).fetchone()
        return row[0] if row else pid

    def _find_existing(self, paper: Paper) -> dict | None:
        """The stored paper this one is a copy of: same id, same arXiv id or DOI, or the same title."""
        table = self.db["papers"]
        pid = self.resolve_id(paper.id)
        rows = list(table.rows_where("id = ?", [pid], limit=1))
        if not rows and paper.arxiv_id:
            rows = list(table.rows_where("arxiv_id = ?", [paper.arxiv_id], limit=1))
        if not rows and paper.doi:
            rows = list(table.rows_where("doi IN (?, ?)", [paper.doi, legacy_doi(paper.doi)], limit=1))
        key = normalise_title(paper.title)
        if not rows and len(key) >= 12:
            rows = list(table.rows_where("title_key = ?", [key], limit=1))
            if not rows and paper.title.rstrip().endswith(("…", "...")) and len(key) >= 30:
                # Scholar truncates long titles: a truncated title matches the full one it begins. A range of
                # the title_key index, not LIKE (case-insensitive, so SQLite scans every paper for it): the keys
                # that begin with ``key`` sort from it to before ``key`` + U+10FFFF (the last code point, never
                # in a normalised title: not a word character)
                rows = list(table.rows_where("title_key >= ? AND title_key < ?", [key, key + "\U0010ffff"],
                                             limit=1))
        if rows and (paper.arxiv_id and rows[0]["arxiv_id"] and paper.arxiv_id != rows[0]["arxiv_id"]
                     or paper.doi and rows[0]["doi"] and legacy_doi(paper.doi) != legacy_doi(rows[0]["doi"])):
            return None  # same title, different ids: two papers
        return rows[0] if rows else None

    def _merge(self, row: dict, paper: Paper) -> dict:
        """Keep the richest metadata of both copies (an abstract beats a snippet, full titles beat truncated)."""
        merged = dict(row)
        old_title_truncated = row["title"].rstrip().endswith(("…", "..."))
        new_title_truncated = paper.title.rstrip().endswith(("…", "..."))
        if (old_title_truncated and not new_title_truncated) or (paper.source == "arxiv" and not new_title_truncated):
            merged["title"] = paper.title
        old_authors = json.loads(row["authors"] or "[]")
        if len(paper.authors) > len(old_authors) or (paper.source == "arxiv" and paper.authors):
            merged["authors"] = json.dumps(list(paper.authors), ensure_ascii=False)
        # the largest count any copy gave (a journal's 12 names do not undo arXiv's "+97 not shown")
        merged["author_count"] = max(row["author_count"] or 0, paper.author_count or 0) or None
        merged["abstract"] = _richer(row["abstract"], paper.abstract)
        merged["snippet"] = _richer(row["snippet"], paper.snippet)
        merged["arxiv_id"] = row["arxiv_id"] or paper.arxiv_id
        merged["doi"] = row["doi"] or paper.doi
        if not row["url"] or "scholar.google" in (row["url"] or "") and paper.url:
            merged["url"] = paper.url or row["url"]
        sources = _sources(row["sources"])
        if paper.source not in sources:
            sources.append(paper.source)
        merged["sources"] = json.dumps(sources)
        for key in ("published", "venue", "comments"):
            merged[key] = row[key] or getattr(paper, key)
        merged["section"] = _merged_section(row["section"], paper.section)
        if not json.loads(row["categories"] or "[]") and paper.categories:
            merged["categories"] = json.dumps(list(paper.categories))
        merged["title_key"] = normalise_title(merged["title"])
        return merged

    def _rekey(self, old: str, new: str) -> None:
        """A paper known by a weaker id (title hash) now has a stronger one: move every reference."""
        for table, column in (("paper_messages", "paper_id"), ("votes", "paper_id"), ("vote_events", "paper_id"),
                              ("digest_items", "paper_id"), ("digest_more", "paper_id"), ("sent_papers", "paper_id")):
            self.db.execute(f"UPDATE OR IGNORE {table} SET {column} = ? WHERE {column} = ?", [new, old])
            self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [old])
        self.db.execute("UPDATE papers SET id = ? WHERE id = ?", [new, old])
        self._insert("paper_aliases", {"alias": old, "paper_id": new}, replace=True)
        self.db.execute("UPDATE paper_aliases SET paper_id = ? WHERE paper_id = ?", [new, old])

    def add_papers(self, papers: Iterable[Paper], message: int | None = None,
                   first_seen: str | None = None) -> IngestOutcome:
        """Insert or merge papers (one transaction). Returns how many were new and how many merged."""
        new = merged = 0
        ids = []
        now = utcnow()
        with self._transaction():
            for paper in papers:
                row = self._find_existing(paper)
                if row is None:
                    record = {
                        "id": paper.id, "title": paper.title, "title_key": normalise_title(paper.title),
                        "authors": json.dumps(list(paper.authors), ensure_ascii=False), "abstract": paper.abstract,
                        "snippet": paper.snippet, "url": paper.url, "arxiv_id": paper.arxiv_id, "doi": paper.doi,
                        "sources": json.dumps([paper.source]), "section": paper.section,
                        "published": paper.published, "venue": paper.venue,
                        "categories": json.dumps(list(paper.categories)), "comments": paper.comments,
                        "author_count": paper.author_count,
                        "first_seen": first_seen or now, "updated_at": now,
                    }
                    self._insert("papers", record)
                    pid = paper.id
                    new += 1
                else:
                    record = self._merge(row, paper)
                    pid = row["id"]
                    stronger = Paper(record["title"], arxiv_id=record["arxiv_id"], doi=record["doi"]).id
                    if stronger != pid and not pid.startswith("arxiv:"):
                        if not self.db.execute("SELECT 1 FROM papers WHERE id = ?", [stronger]).fetchone():
                            self._rekey(pid, stronger)
                            pid = stronger
                    record["id"] = pid
                    if record != {**row, "id": pid}:
                        record["updated_at"] = now
                    self._update("papers", "id = ?", [pid], {k: v for k, v in record.items() if k != "id"})
                    merged += 1
                ids.append(pid)
                if message is not None:
                    self._insert("paper_messages", {"paper_id": pid, "message": message, "source": paper.source,
                                                    "section": paper.section}, replace=True)
        return IngestOutcome(new, merged, tuple(ids))

    def get_papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        ids = [self.resolve_id(i) for i in ids]
        out = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.query(f"SELECT * FROM papers WHERE id IN ({marks})", part):
                out[row["id"]] = self._row_to_paper(row)
        return out

    def first_seen(self, pid: str) -> str | None:
        """When a paper first arrived (ISO time), None if the store does not have it."""
        row = self.db.execute("SELECT first_seen FROM papers WHERE id = ?", [self.resolve_id(pid)]).fetchone()
        return row[0] if row else None

    def paper_sources(self, pid: str) -> list[str]:
        row = self.db.execute("SELECT sources FROM papers WHERE id = ?", [self.resolve_id(pid)]).fetchone()
        return _sources(row[0]) if row else []

    def find_paper(self, *, arxiv_id: str | None = None, doi: str | None = None,
                   title: str | None = None) -> Paper | None:
        probe = Paper(title or "", arxiv_id=arxiv_id, doi=doi)
        row = self._find_existing(probe) if (arxiv_id or doi or title) else None
        return self._row_to_paper(row) if row else None

    def papers_since(self, since: str) -> list[tuple[str, Paper]]:
        rows = self.db.query("SELECT * FROM papers WHERE first_seen >= ? ORDER BY first_seen, id", [since])
        return [(r["id"], self._row_to_paper(r)) for r in rows]

    def candidate_papers(self, user: str, since: str, *, replacements: bool = False,
                         also_sent_to: Sequence[str] = ()) -> list[tuple[str, Paper]]:
        """Papers first seen since ``since`` that were never sent to ``user`` (nor to the users in
        ``also_sent_to``: earlier names of the same reader). A paper first seen in an arXiv listing's
        replacements section (a revised version of an older paper) is left out unless ``replacements``: it is
        not news, and the listing carries no abstract for it."""
        where, args = _candidates(user, since, replacements, also_sent_to)
        rows = self.db.query(f"SELECT * FROM papers WHERE {where} ORDER BY first_seen, id", args)
        return [(r["id"], self._row_to_paper(r)) for r in rows]

    def papers_matching(self, query: str, limit: int = 20) -> list[dict]:
        """Stored papers that ``models.matches_query`` finds for ``query`` (title words, arXiv id or DOI), most
        recent first: the rows (``first_seen``, ``section``...) with the Paper under "paper"."""
        # SQL narrows (the stored title_key is the normalised title); matches_query decides
        words = normalise_title(query)
        by_id, id_args = _id_is(query)
        narrowed = self.db.execute(
            f"SELECT id, title, arxiv_id, doi FROM papers WHERE (? != '' AND instr(title_key, ?) > 0) OR {by_id} "
            f"ORDER BY first_seen DESC, id", [words, words, *id_args])
        return self._rows_with_papers([r[0] for r in narrowed if matches_query(r[1], r[0:1] + r[2:4], query)][:limit])

    def _rows_with_papers(self, ids: Sequence[str]) -> list[dict]:
        """The rows of papers ``ids`` (current ids, all stored), in that order, with the Paper under "paper" and
        the list of the alerts' kinds that brought it under "sources"."""
        rows = {r["id"]: r for r in self.db.query(
            f"SELECT * FROM papers WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else {}
        return [{**rows[pid], "paper": self._row_to_paper(rows[pid]), "sources": _sources(rows[pid]["sources"])}
                for pid in ids]

    def search_papers(self, query: str, *, arrived_by: str | None = None, limit: int = 20) -> tuple[list[dict], int]:
        """Stored papers whose title, authors or abstract hold every word of ``query`` (stemmed: "transformers"
        finds "transformer"; case and accents aside), title matches first; a query that is a paper's arXiv id
        or DOI finds that paper first. Only papers first seen by ``arrived_by`` (ISO time), when given.
        Returns (up to ``limit`` rows with the Paper under "paper", the number of papers that match)."""
        words = re.findall(r"\w+", query.lower())[:SEARCH_WORDS]
        arrived, arrived_args = ("AND p.first_seen <= ?", [arrived_by]) if arrived_by else ("", [])
        id_where, id_args = _id_is(query)
        by_id = [r[0] for r in self.db.execute(f"SELECT id FROM papers p WHERE {id_where} {arrived}",
                                               [*id_args, *arrived_args])]
        if not words:
            found, total = [], 0
        elif self.db["papers_fts"].exists():
            match = " ".join(f'"{w}"' for w in words)  # each word quoted: no FTS operators from a query
            total, found = self._fts_search(match, arrived_by, limit)
        else:  # no FTS5 in this SQLite: every word as a substring of the text (lower() folds ASCII only), newest first
            text = "lower(" + " || ' ' || ".join(f"coalesce(p.{c}, '')" for c in _FTS_COLUMNS) + ")"
            where = " AND ".join(f"instr({text}, ?) > 0" for _ in words)
            total = self.db.execute(f"SELECT count(*) FROM papers p WHERE {where} {arrived}",
                                    [*words, *arrived_args]).fetchone()[0]
            found = [r[0] for r in self.db.execute(
                f"SELECT p.id FROM papers p WHERE {where} {arrived} ORDER BY p.first_seen DESC, p.id LIMIT ?",
                [*words, *arrived_args, limit])]
        total += sum(1 for pid in by_id if pid not in found)
        return self._rows_with_papers(list(dict.fromkeys([*by_id, *found]))[:limit]), total

    def _fts_search(self, match: str, arrived_by: str | None, limit: int) -> tuple[int, list[str]]:
        """(how many papers match, the ids of the best ``limit``): bm25 with the title weighted 10, authors 3 (so a
        surname finds its papers before ones citing it), then the newest, then the id; only papers first seen by
        ``arrived_by`` when given.

        Joining every match to its paper cost ~2 s for a word most of 150,000 papers hold; the index alone counts
        them in milliseconds, so the papers are read only for the best SEARCH_PREFETCH matches, and the whole
        join runs only when those cannot be shown to hold the answer (too many arrived later, or a tie at the
        cut)."""
        score = "bm25(papers_fts, 0, 10, 3, 1, 1)"
        arrived, arrived_args = ("AND p.first_seen <= ?", [arrived_by]) if arrived_by else ("", [])
        join = f"FROM papers_fts f JOIN papers p ON p.id = f.paper_id WHERE papers_fts MATCH ? {arrived}"

        def joined_count() -> int:  # every match joined to its paper: exact, and slow for a common word
            return self.db.execute(f"SELECT count(*) {join}", [match, *arrived_args]).fetchone()[0]

        def joined_best() -> list[str]:
            return [r[0] for r in self.db.execute(f"SELECT p.id {join} ORDER BY {score}, p.first_seen DESC, p.id "
                                                  "LIMIT ?", [match, *arrived_args, limit])]

        total = self.db.execute("SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?", [match]).fetchone()[0]
        if total <= SEARCH_PREFETCH:  # few matches: the whole join is cheap
            return joined_count(), joined_best()
        later = self.db.execute("SELECT count(*) FROM papers WHERE first_seen > ?",
                                [arrived_by]).fetchone()[0] if arrived_by else 0
        if later >= total:  # an old digest: count the matches that had arrived by then
            total = joined_count()
        elif later:  # a recent one: every match less the later papers among them (each index row is a paper's)
            total -= self.db.execute(
                "SELECT count(*) FROM papers p JOIN papers_fts_keys k ON k.paper_id = p.id WHERE p.first_seen > ? "
                "AND k.fts_rowid IN (SELECT rowid FROM papers_fts WHERE papers_fts MATCH ?)",
                [arrived_by, match]).fetchone()[0]
        best = self.db.execute(f"SELECT f.paper_id, {score} AS s FROM papers_fts f WHERE papers_fts MATCH ? "
                               "ORDER BY s LIMIT ?", [match, SEARCH_PREFETCH]).fetchall()
        seen = {r[0]: r[1] for r in self.db.execute(
            f"SELECT id, first_seen FROM papers p WHERE id IN (SELECT value FROM json_each(?)) {arrived}",
            [json.dumps([pid for pid, _ in best]), *arrived_args])}
        shown = sorted(sp for sp in best if sp[0] in seen)  # the SQL's order: id, then the newest first, then
        shown.sort(key=lambda sp: seen[sp[0]], reverse=True)  # the score (stable sorts, the last key first)
        shown = sorted(shown, key=lambda sp: sp[1])[:limit]
        # exact when the last shown scores better than the best match left unread (no tie at the cut), or when
        # every match that had arrived is among those read (an old digest's few)
        if (len(shown) == limit and (not shown or shown[-1][1] < best[-1][1])) or len(shown) == total:
            return total, [pid for pid, _ in shown]
        return total, joined_best()

    def sent_record(self, users: Sequence[str], paper_id: str) -> dict | None:
        """When and in which digest ``paper_id`` went to one of ``users`` (a reader's current and earlier names)."""
        marks = ",".join("?" * len(users))
        row = self.db.execute(
            f"SELECT s.user, d.period, s.sent_at FROM sent_papers s LEFT JOIN digests d ON d.id = s.digest_id "
            f"WHERE s.user IN ({marks}) AND s.paper_id = ? ORDER BY s.sent_at LIMIT 1",
            [*users, paper_id]).fetchone()
        return dict(zip(("user", "period", "sent_at"), row, strict=True)) if row else None

    def random_papers(self, n: int, exclude: Iterable[str] = (), *, seed: int = 0) -> list[tuple[str, Paper]]:
        """A sample of the store, the 'rest of the world' for calibrating a user's scores.

        The sample is a fixed function of ``seed`` and the store's contents, so ranking the same store twice
        (a preview, then the send) gives the same scores and picks.
        """
        excluded = set(exclude)
        ids = [r[0] for r in self.db.execute("SELECT id FROM papers ORDER BY id") if r[0] not in excluded]
        if len(ids) > n:
            chosen = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
            ids = [ids[i] for i in sorted(chosen)]
        papers = self.get_papers(ids)
        return [(pid, papers[pid]) for pid in ids if pid in papers]

    def count_papers(self) -> int:
        return self.db["papers"].count

    # -- messages ---------------------------------------------------------------------------------------
    def message_seen(self, mailbox: str, uidvalidity: int, uid: int) -> dict | None:
        rows = list(self.db["messages"].rows_where("mailbox = ? AND uidvalidity = ? AND uid = ?",
                                                   [mailbox, uidvalidity, uid], limit=1))
        return rows[0] if rows else None

    def message_by_message_id(self, message_id: str) -> dict | None:
        if not message_id:
            return None
        # of several copies (one read cut short, then a full one), the fullest
        rows = list(self.db["messages"].rows_where("message_id = ? AND status IN ('ingested', 'feedback')",
                                                   [message_id], order_by="n_papers DESC, error IS NOT NULL, id",
                                                   limit=1))  # of as many papers, a whole copy before a cut one
        return rows[0] if rows else None

    def record_message(self, *, mailbox: str, uidvalidity: int = 0, uid: int = 0, message_id: str | None,
                       subject: str = "", sender: str = "", kind: str | None = None, status: str,
                       error: str | None = None, papers: Sequence[Paper] = (),
                       first_seen: str | None = None) -> tuple[int, IngestOutcome]:
        """Record a message and (in the same transaction) its papers. Idempotent per (mailbox, uidvalidity, uid).
        ``first_seen``: when the message first arrived, for the papers new here (a fuller copy of an old mail)."""
        with self._transaction():
            existing = self.message_seen(mailbox, uidvalidity, uid) if uid else None
            record = {"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid, "message_id": message_id,
                      "subject": subject, "sender": sender, "kind": kind, "status": status, "error": error,
                      "n_papers": len(papers), "processed_at": utcnow()}
            if existing:
                self._update("messages", "id = ?", [existing["id"]], record)
                row_id = existing["id"]
            else:
                if not uid:
                    # local files have no UID: key them by a negative running number
                    record["uid"] = -(self.db.execute(
                        "SELECT COUNT(*) FROM messages WHERE mailbox = ?", [mailbox]).fetchone()[0] + 1)
                row_id = self._insert("messages", {**record, "received_at": utcnow()})
            outcome = self.add_papers(papers, message=row_id, first_seen=first_seen) if papers \
                else IngestOutcome(0, 0, ())
        return row_id, outcome

    def partial_messages(self, since: str) -> list[dict]:
        """The messages read in part (a cut-short warning in ``error``), newest first, that no whole copy (the
        same Message-ID) has completed since; those without a Message-ID only when processed after ``since`` and
        not followed by a whole one from the same sender with the same subject."""
        return list(self.db.query(
            "SELECT * FROM messages m WHERE status = 'ingested' AND error IS NOT NULL AND ("
            "  (message_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages w WHERE w.message_id = m.message_id"
            "   AND w.status IN ('ingested', 'duplicate') AND w.error IS NULL))"
            "  OR (message_id IS NULL AND processed_at >= ? AND NOT EXISTS (SELECT 1 FROM messages w WHERE"
            "   w.id > m.id AND w.sender = m.sender AND w.subject = m.subject AND w.status = 'ingested'"
            "   AND w.error IS NULL))) ORDER BY id DESC", [since]))

    def messages(self, status: str | None = None) -> list[dict]:
        where = "status = ?" if status else None
        return list(self.db["messages"].rows_where(where, [status] if status else [], order_by="id"))

    def poll_state(self, mailbox: str) -> dict | None:
        rows = list(self.db["poll_state"].rows_where("mailbox = ?", [mailbox]))
        return rows[0] if rows else None

    def set_poll_state(self, mailbox: str, *, uidvalidity: int | None = None, last_uid: int | None = None,
                       result: str | None = None) -> None:
        current = self.poll_state(mailbox) or {"mailbox": mailbox, "uidvalidity": None, "last_uid": 0}
        if uidvalidity is not None:
            current["uidvalidity"] = uidvalidity
        if last_uid is not None:
            current["last_uid"] = last_uid
        current["last_poll_at"] = utcnow()
        if result is not None:
            current["last_result"] = result
        with self._transaction():
            self._insert("poll_state", current, replace=True)

    # -- embeddings -------------------------------------------------------------------------------------
    def _embedding_rows(self, columns: str, model: str, hashes: set[str]):
        """``columns`` of the embeddings of ``model`` whose hash is in ``hashes``, 500 hashes per query."""
        items = list(hashes)
        for chunk in range(0, len(items), 500):
            part = items[chunk:chunk + 500]
            marks = ",".join("?" * len(part))
            yield from self.db.execute(
                f"SELECT {columns} FROM embeddings WHERE model = ? AND content_hash IN ({marks})", [model, *part])

    def get_vectors(self, model: str, hashes: set[str]) -> dict[str, np.ndarray]:
        return {h: np.frombuffer(blob, dtype=np.float32)
                for h, blob in self._embedding_rows("content_hash, vector", model, hashes)}

    def vector_hashes(self, model: str, hashes: set[str]) -> set[str]:
        """Which of ``hashes`` have a vector for ``model`` (without reading the vectors)."""
        return {h for (h,) in self._embedding_rows("content_hash", model, hashes)}

    def put_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        with self._transaction():
            for h, v in vectors.items():
                self._insert("embeddings", {"model": model, "content_hash": h, "dim": int(v.shape[0]),
                                            "vector": np.asarray(v, dtype=np.float32).tobytes()}, replace=True)

    def count_vectors(self, model: str | None = None) -> int:
        return self.db["embeddings"].count_where("model = ?", [model]) if model else self.db["embeddings"].count

    # -- votes ------------------------------------------------------------------------------------------
    def record_vote(self, user: str, paper_id: str, value: int, via: str = "web", *, also: Sequence[str] = (),
                    as_of: str | None = None) -> bool:
        """Set the user's vote on a paper (the last choice wins). Returns False if nothing changed.

        ``also``: the reader's other names (a renamed profile's earlier file name, or its new one): their votes on
        the paper are removed, so the reader has one vote on it, the last given, whichever name a link carried.
        ``as_of``: when the vote was given, if earlier than now (an email read later): a vote or undo on the paper
        recorded after that time stands, and this one is not applied."""
        with self._transaction():
            return self._set_vote(user, paper_id, value, via, also, as_of)

    def _set_vote(self, user: str, paper_id: str, value: int, via: str, also: Sequence[str] = (),
                  as_of: str | None = None) -> bool:
        """One vote inside the caller's transaction; logs the change. False if it was already so, or a later
        choice of the reader stands (see ``record_vote``)."""
        if value not in (1, -1):
            raise ValueError("vote must be +1 or -1")
        pid = self.resolve_id(paper_id)
        now = utcnow()
        if as_of is not None:
            names = list(dict.fromkeys([user, *also]))
            if self.db.execute(f"SELECT 1 FROM vote_events WHERE paper_id = ? AND user IN ({', '.join('?' * len(names))}) "
                               "AND at > ? LIMIT 1", [pid, *names, as_of]).fetchone():
                return False
            now = min(now, as_of)
        replaced = False
        for name in dict.fromkeys(also):
            if name != user and self.db.execute("DELETE FROM votes WHERE user = ? AND paper_id = ?",
                                                [name, pid]).rowcount:
                self._insert("vote_events", {"user": name, "paper_id": pid, "value": 0, "via": via, "at": now})
                replaced = True
        row = self.db.execute("SELECT value FROM votes WHERE user = ? AND paper_id = ?", [user, pid]).fetchone()
        if row and row[0] == value:
            return replaced
        if row:
            self._update("votes", "user = ? AND paper_id = ?", [user, pid],
                         {"value": value, "via": via, "updated_at": now})
        else:
            self._insert("votes", {"user": user, "paper_id": pid, "value": value, "via": via,
                                   "created_at": now, "updated_at": now})
        self._insert("vote_events", {"user": user, "paper_id": pid, "value": value, "via": via, "at": now})
        return True

    def undo_vote(self, user: str, paper_id: str, via: str = "web", value: int | None = None) -> bool:
        """Remove the user's vote on a paper (only if it is ``value``, when given). False if there was none."""
        pid = self.resolve_id(paper_id)
        with self._transaction():
            cursor = self.db.execute("DELETE FROM votes WHERE user = ? AND paper_id = ? AND value = coalesce(?, value)",
                                     [user, pid, value])
            if cursor.rowcount:
                self._insert("vote_events", {"user": user, "paper_id": pid, "value": 0, "via": via, "at": utcnow()})
        return bool(cursor.rowcount)

    def get_vote(self, user: str, paper_id: str) -> int:
        row = self.db.execute("SELECT value FROM votes WHERE user = ? AND paper_id = ?",
                              [user, self.resolve_id(paper_id)]).fetchone()
        return row[0] if row else 0

    def votes_on(self, users: Sequence[str], paper_ids: Sequence[str]) -> dict[str, int]:
        """{paper id: +1/-1} of a reader's current votes among ``paper_ids`` (current ids); ``users``: their
        names, the current one first, whose vote wins over an earlier name's."""
        marks = ", ".join("?" * len(paper_ids))
        votes: dict[str, int] = {}
        for user in reversed(users):
            rows = self.db.execute(f"SELECT paper_id, value FROM votes WHERE user = ? AND paper_id IN ({marks})",
                                   [user, *paper_ids]).fetchall() if paper_ids else []
            votes.update(rows)
        return votes

    def votes(self, user: str) -> list[Vote]:
        rows = self.db.query("SELECT * FROM votes WHERE user = ? ORDER BY updated_at, paper_id", [user])
        return [Vote(r["user"], r["paper_id"], r["value"], r["via"], r["updated_at"]) for r in rows]

    # -- digests and the sent ledger ---------------------------------------------------------------------
    # -- deliveries the database could not record ---------------------------------------------------------
    @property
    def delivered_path(self) -> Path | None:
        """A digest the server accepted whose 'sent' could not be written (a full disk, a lock held for minutes)
        is written here instead, one JSON line each, and entered by the next claim: else the next run would take
        the digest, left 'sending', for one the server may not have, and send it again."""
        return self.path.with_name(self.path.name + ".delivered") if self.path is not None else None

    def note_delivered(self, digest_id: int, address: str, note: str | None) -> bool:
        """Append a delivery to ``delivered_path`` (flushed to disk); False when even that cannot be written."""
        if self.delivered_path is None:
            return False
        line = json.dumps({"digest_id": digest_id, "address": address, "note": note, "at": utcnow()})
        try:
            for _ in range(10):
                with open(self.delivered_path, "a", encoding="utf-8") as fh:
                    # locked, and still the file of that name: a run entering the kept deliveries (enter_delivered)
                    # renames the file, then locks it before reading, so a line is either read by it or goes to a
                    # new file, never into one being removed
                    fcntl.flock(fh, fcntl.LOCK_EX)
                    with contextlib.suppress(FileNotFoundError):
                        if os.stat(self.delivered_path).st_ino != os.fstat(fh.fileno()).st_ino:
                            continue
                        fh.write(line + "\n")
                        fh.flush()
                        os.fsync(fh.fileno())
                        _sync_folder(self.delivered_path.parent)  # the file's name too, when it is new
                        return True
            return False
        except OSError:
            return False

    def mark_sent_only(self, digest_id: int, address: str, note: str | None) -> None:
        """'sent' on the row alone, for a disk too full for the sent ledger's rows (an UPDATE in place needs no
        new page); the next claim_digest fills the ledger from the digest's items."""
        with self._transaction():
            self.db.execute("UPDATE digests SET status = 'sent', sent_at = ?, address = ?, error = ? WHERE id = ?",
                            [utcnow(), address, note, digest_id])
        _HELD.discard(self._claim_owners.pop(digest_id, None))

    def enter_delivered(self) -> int:
        """Record as 'sent' the deliveries ``note_delivered`` kept, then remove the file; how many were entered.
        A line cut short (the disk filled while it was written) is passed over: that digest is then treated as
        one handed over without the server's confirmation (docs/delivery.md).

        The file is first renamed to a name of this call's own, so a line another process appends meanwhile
        goes to a new file (read by the next call) instead of being removed unread; a renamed file left by a
        call that failed half-way (the disk still full) is read again by the next. Entering a line twice is
        harmless: a row already 'sent' is left alone."""
        path = self.delivered_path
        if path is None:
            return 0
        with contextlib.suppress(FileNotFoundError):  # absent, or another process took it first
            os.replace(path, path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"))
        entered = 0
        for taken in sorted(path.parent.glob(glob.escape(path.name) + ".*")):
            try:
                with open(taken, encoding="utf-8", errors="replace") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX)  # a writer that opened it before the rename finishes its line
                    lines = fh.read().splitlines()
            except OSError:  # another process entered and removed it meanwhile
                continue
            for line in lines:
                try:
                    record = json.loads(line)
                    digest_id, address = int(record["digest_id"]), str(record["address"])
                except (ValueError, KeyError, TypeError):
                    continue
                row = self.find_digest(digest_id)
                if row is not None and row["status"] != "sent":
                    self.mark_digest(digest_id, "sent", address=address, error=record.get("note"))
                    entered += 1
            taken.unlink(missing_ok=True)
        return entered

    def claim_digest(self, user: str, period: str, *, stale_after: timedelta = timedelta(minutes=30)) -> int | None:
        """Claim the (user, period) digest before anything goes out. Returns the digest id, or None when it is
        done (sent, skipped, refused permanently, superseded) or being sent by a live run.

        A claim ('claimed' or 'sending') is taken over at once when its owner is provably dead: same host and
        its process is gone (or the host rebooted since); never while that process lives, however long it
        takes, unless it is this process and no delivery of it holds the claim any more (``let_go``). A claim
        from another host cannot be checked, so it is taken over only after ``stale_after``. A digest left in
        'retry' by a transient failure is taken over by the next run.
        """
        self.enter_delivered()  # a delivery an earlier run could not record, before its row is judged
        owner = claim_owner()
        now = datetime.now(UTC)
        with self._transaction():  # immediate: two processes claiming at once: one waits, then sees the row
            # the ledger of any digest recorded as sent without it (mark_sent_only), before anyone is ranked again
            # (also one under a profile's earlier name, or weeks old: its papers may still be candidates)
            self.db.execute(
                "INSERT OR IGNORE INTO sent_papers (user, paper_id, digest_id, sent_at) SELECT d.user, i.paper_id, "
                "d.id, d.sent_at FROM digests d JOIN digest_items i ON i.digest_id = d.id WHERE d.status = 'sent' "
                "AND NOT EXISTS (SELECT 1 FROM sent_papers s WHERE s.digest_id = d.id)")
            row = self.db.execute("SELECT id, status, claimed_by, claimed_at FROM digests WHERE user = ? AND "
                                  "period = ?", [user, period]).fetchone()
            if row is None:
                digest_id = self._insert("digests", {"user": user, "period": period, "status": "claimed",
                                                     "claimed_by": owner,
                                                     "claimed_at": now.isoformat(timespec="seconds"), "attempts": 1})
                self._claim_owners[digest_id] = owner
                _HELD.add(owner)
                return digest_id
            digest_id, status, claimed_by, claimed_at = row
            if status in DIGEST_DONE:
                return None
            if status in ("claimed", "sending"):
                state = owner_state(claimed_by or "")
                if state == "alive" and not _left_here(claimed_by or ""):
                    return None
                if state == "unknown" and claimed_at and now - datetime.fromisoformat(claimed_at) < stale_after:
                    return None
            changes = {"status": "claimed", "claimed_by": owner, "claimed_at": now.isoformat(timespec="seconds")}
            if status == "sending":
                # the previous owner died between 'sending' and 'sent': the server may or may not have the message
                handovers = self._count_handover(digest_id)
                note = (f"run {claimed_by} died while sending; resending with the same Message-ID (a copy may "
                        "already have arrived)") if handovers < MAX_UNCONFIRMED else \
                    (f"handed over {handovers} times without the server's confirmation (run {claimed_by} died "
                     "while sending)")
                changes["error"] = note
                self._insert("events", {"at": utcnow(), "level": "WARNING", "component": "send", "user": user,
                                        "message": f"digest {period}: {note}"})
            self._update("digests", "id = ?", [digest_id], changes)
            self.db.execute("UPDATE digests SET attempts = attempts + 1 WHERE id = ?", [digest_id])
            self._claim_owners[digest_id] = owner
            _HELD.add(owner)
            return digest_id

    def save_digest_items(self, digest_id: int, items: Sequence[ScoredPaper], paper_ids: Sequence[str], *,
                          n_candidates: int, subject: str = "", message_id: str = "",
                          more: Sequence[tuple[ScoredPaper, str]] = (),
                          below: Sequence[tuple[ScoredPaper, str]] = (), floor: float | None = None) -> None:
        """Freeze a digest's papers, then ``more`` ((runner-up, its id)) and ``below`` ((paper below the floor,
        its id)), numbered in that order after them; ``floor``: the relevance floor it was composed with."""
        with self._transaction():
            self.db.execute("DELETE FROM digest_items WHERE digest_id = ?", [digest_id])
            self.db.execute("DELETE FROM digest_more WHERE digest_id = ?", [digest_id])
            rows = [("digest_items", item, pid, {}) for item, pid in zip(items, paper_ids, strict=True)]
            rows += [("digest_more", item, pid, {"below": 0}) for item, pid in more]
            rows += [("digest_more", item, pid, {"below": 1}) for item, pid in below]
            for i, (table, item, pid, extra) in enumerate(rows):
                self._insert(table, {"digest_id": digest_id, "rank": i + 1, "paper_id": pid, "score": item.score,
                                     "reason": item.reason, "facet": item.facet,
                                     "details": json.dumps(item.details, ensure_ascii=False), **extra})
            self._update("digests", "id = ?", [digest_id], {"n_candidates": n_candidates, "n_items": len(items),
                                                            "subject": subject, "message_id": message_id,
                                                            "floor": floor})

    def digest_items(self, digest_id: int, *, more: bool = False, below: bool = False) -> list[dict]:
        """A digest's saved papers in order (``more``: its runners-up instead; ``below``: the papers below its
        floor saved with it)."""
        if not (more or below):
            return list(self.db.query("SELECT * FROM digest_items WHERE digest_id = ? ORDER BY rank", [digest_id]))
        return list(self.db.query("SELECT * FROM digest_more WHERE digest_id = ? AND below = ? ORDER BY rank",
                                  [digest_id, int(below)]))

    def digest_numbers(self, digest_id: int) -> dict[int, str]:
        """{number: current paper id} of a digest's papers, then its runners-up and the papers below its floor
        saved with it (as its page numbers them; a reply "+N" to the digest means the same paper)."""
        rows = self.db.execute("SELECT rank, paper_id FROM digest_items WHERE digest_id = ? UNION ALL "
                               "SELECT rank, paper_id FROM digest_more WHERE digest_id = ?", [digest_id, digest_id])
        return {number: self.resolve_id(pid) for number, pid in rows.fetchall()}

    def digest_papers(self, digest_id: int, *, more: bool = False,
                      below: bool = False) -> list[tuple[int, str, ScoredPaper]]:
        """A digest's papers as it was composed (``more``: its runners-up; ``below``: the best below its floor):
        (its number on the digest's page, current paper id, the paper with the score and reason it was ranked
        with), in order."""
        rows = self.digest_items(digest_id, more=more, below=below)
        ids = [self.resolve_id(r["paper_id"]) for r in rows]
        papers = self.get_papers(ids)
        # a paper missing cannot happen while papers are never deleted; it is left out rather than failing
        return [(r["rank"], pid, ScoredPaper(papers[pid], r["score"], r["reason"] or "", r["facet"],
                                             json.loads(r["details"] or "{}")))
                for r, pid in zip(rows, ids, strict=True) if pid in papers]

    def latest_digest_with(self, users: Sequence[str], paper_id: str) -> dict | None:
        """The latest digest that went out to one of ``users`` (a reader's names) listing ``paper_id``."""
        marks = ",".join("?" * len(users))
        rows = list(self.db.query(
            f"SELECT d.* FROM digests d JOIN digest_items i ON i.digest_id = d.id WHERE d.user IN ({marks}) AND "
            "i.paper_id = ? AND d.status = 'sent' ORDER BY d.period DESC, d.id DESC LIMIT 1",
            [*users, self.resolve_id(paper_id)]))
        return rows[0] if rows else None

    def sent_digests(self, users: Sequence[str]) -> list[dict]:
        """The digests that went out to one of ``users`` (a reader's names) with papers in them (also on their page
        only: a quiet day's papers below the bar), oldest first."""
        marks = ",".join("?" * len(users))
        return list(self.db["digests"].rows_where(
            f"user IN ({marks}) AND status = 'sent' AND (n_items > 0 OR EXISTS (SELECT 1 FROM digest_more m "
            "WHERE m.digest_id = digests.id))", users, order_by="period, id"))

    def mark_digest(self, digest_id: int, status: str, *, error: str | None = None, path: str | None = None,
                    address: str | None = None) -> bool:
        """Finish a digest. On 'sent', its papers enter the ledger in the same transaction.

        'sent' is always recorded (it is the truth). Any other status is recorded only while this store still
        holds the claim, so a run whose claim was taken over cannot overwrite the new owner's state.
        Returns whether the row changed.
        """
        now = utcnow()
        with self._transaction():
            changes = {"status": status, "error": error}
            if path:
                changes["path"] = path
            if address:
                changes["address"] = address
            where, args = "id = ?", [digest_id]
            if status == "sent":
                changes["sent_at"] = now
                user = self.db.execute("SELECT user FROM digests WHERE id = ?", [digest_id]).fetchone()[0]
                self.db.execute(
                    "INSERT OR IGNORE INTO sent_papers (user, paper_id, digest_id, sent_at) "
                    "SELECT ?, paper_id, digest_id, ? FROM digest_items WHERE digest_id = ?", [user, now, digest_id])
            elif digest_id in self._claim_owners:
                # (never over 'sent': the truth, e.g. recorded by mark_sent_only while the claim was still ours)
                where, args = "id = ? AND claimed_by = ? AND status != 'sent'", [digest_id, self._claim_owners[digest_id]]
            else:
                # not our claim (any more): never overwrite a finished digest or another run's live claim
                live_or_done = ", ".join("?" * (len(DIGEST_DONE) + 2))
                where = f"id = ? AND status NOT IN ({live_or_done})"
                args = [digest_id, *DIGEST_DONE, "claimed", "sending"]
            sets = ", ".join(f"[{c}] = ?" for c in changes)
            cursor = self.db.execute(f"UPDATE digests SET {sets} WHERE {where}", [*changes.values(), *args])
        if status in DIGEST_DONE or status == "retry":
            _HELD.discard(self._claim_owners.pop(digest_id, None))
        return cursor.rowcount == 1

    def let_go(self) -> None:
        """The delivery that took this store's claims is over: a claim it could not finish (its last write
        failed) is left to the next delivery, of this process too, which takes it over."""
        for owner in self._claim_owners.values():
            _HELD.discard(owner)
        self._claim_owners.clear()

    def digest(self, digest_id: int) -> dict:
        return self.db["digests"].get(digest_id)

    def find_digest(self, digest_id: int) -> dict | None:
        rows = list(self.db["digests"].rows_where("id = ?", [digest_id]))
        return rows[0] if rows else None

    def digest_for(self, user: str, period: str) -> dict | None:
        rows = list(self.db["digests"].rows_where("user = ? AND period = ?", [user, period]))
        return rows[0] if rows else None

    def digests(self, user: str | None = None, status: str | None = None) -> list[dict]:
        clauses, args = [], []
        if user:
            clauses.append("user = ?")
            args.append(user)
        if status:
            clauses.append("status = ?")
            args.append(status)
        return list(self.db["digests"].rows_where(" AND ".join(clauses) or None, args, order_by="id"))

    def sent_paper_ids(self, user: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT paper_id FROM sent_papers WHERE user = ?", [user])}

    # -- delivery: claim owners and the 'sending' state (owner: delivery) -----------------------------------

    def reopen_failed(self, user: str, period: str, note: str, *, unconfirmed: bool = False) -> bool:
        """Let a digest refused permanently be tried again (its address was corrected, or the server fixed):
        'failed' becomes 'retry', so the next delivery claims it and sends the same papers (or ranks afresh, if
        ``unfreeze`` let it go). With ``unconfirmed``, also a digest recorded as sent without the server's
        confirmation (the reader says it did not arrive): it may then be handed over once more, unchanged (a copy
        may exist). Returns whether there was one."""
        with self._transaction():
            row = self.db.execute("SELECT id, status, unconfirmed FROM digests WHERE user = ? AND period = ?",
                                  [user, period]).fetchone()
            if row is None or not (row[1] == "failed" or (unconfirmed and row[1] == "sent"
                                                          and (row[2] or 0) >= MAX_UNCONFIRMED)):
                return False
            self._update("digests", "id = ?", [row[0]], {"status": "retry", "error": note,
                                                         "unconfirmed": min(row[2] or 0, MAX_UNCONFIRMED - 1)})
        return True

    def unfreeze(self, digest_id: int) -> None:
        """A digest refused as it is (too large for the server), of which no copy can exist: its papers are let
        go, so a retry ranks the day again with the profile as it is then (a lower max_items)."""
        with self._transaction():
            self.db.execute("UPDATE digests SET message_id = NULL WHERE id = ? AND status = 'failed' AND "
                            "unconfirmed = 0", [digest_id])

    def mark_sending(self, digest_id: int) -> bool:
        """Record 'sending' right before SMTP DATA: from here until 'sent' the outcome is unknown if we crash.
        Returns False (and changes nothing) if this store no longer holds the claim: then do not send."""
        owner = self._claim_owners.get(digest_id)
        if owner is None:
            return False
        with self._transaction():
            # the claim is renewed too: a run on another host takes a claim over when it is 30 minutes old, and
            # a send may take long (retries, and up to 10 minutes for the reply to each DATA)
            cursor = self.db.execute(
                "UPDATE digests SET status = 'sending', claimed_at = ? WHERE id = ? AND claimed_by = ? AND status IN "
                "('claimed', 'sending')", [datetime.now(UTC).isoformat(timespec="seconds"), digest_id, owner])
        return cursor.rowcount == 1

    def note_unconfirmed(self, digest_id: int, reason: str) -> int:
        """An attempt handed the digest over (DATA) and the connection broke before the server's reply: it may
        have arrived. Counted, with a WARNING event; returns how many such handovers the digest has had."""
        with self._transaction():
            # counted now, so no longer in the blind spot: back to 'claimed' until the next DATA (a run that dies
            # while waiting to retry must not have this handover counted again when its claim is taken over)
            handovers = self._count_handover(digest_id)
            self.db.execute("UPDATE digests SET status = 'claimed' WHERE id = ? AND status = 'sending'", [digest_id])
            user, period = self.db.execute("SELECT user, period FROM digests WHERE id = ?", [digest_id]).fetchone()
            again = "sent once more" if handovers < MAX_UNCONFIRMED else "not sent again"
            self._insert("events", {"at": utcnow(), "level": "WARNING", "component": "send", "user": user,
                                    "message": f"digest {period}: handed over, then {reason}, before the server "
                                               f"confirmed it: it may have arrived; {again} (same Message-ID)"})
        return handovers

    def _count_handover(self, digest_id: int) -> int:
        """One more handover without the server's confirmation (inside a transaction); returns how many now."""
        self.db.execute("UPDATE digests SET unconfirmed = unconfirmed + 1 WHERE id = ?", [digest_id])
        return self.db.execute("SELECT unconfirmed FROM digests WHERE id = ?", [digest_id]).fetchone()[0]

    def unmark_sending(self, digest_id: int) -> None:
        """An attempt after 'sending' certainly failed (the server refused it): back to 'claimed', so a crash
        before the next attempt is not taken for one that may have delivered."""
        owner = self._claim_owners.get(digest_id)
        if owner is None:
            return
        with self._transaction():
            self.db.execute("UPDATE digests SET status = 'claimed' WHERE id = ? AND claimed_by = ? AND "
                            "status = 'sending'", [digest_id, owner])

    def supersede_unsent(self, user: str, period: str) -> list[str]:
        """Close the user's unfinished digests of periods before ``period`` ('retry', or a claim whose owner is
        dead): their papers were never recorded as sent, so they stay candidates for the current digest.
        Returns the periods closed."""
        closed = []
        with self._transaction():
            rows = self.db.execute("SELECT id, period, status, claimed_by FROM digests WHERE user = ? AND period < ? "
                                   "AND status IN ('retry', 'claimed', 'sending')", [user, period]).fetchall()
            for digest_id, old_period, status, claimed_by in rows:
                if status != "retry" and owner_state(claimed_by or "") != "dead":
                    continue
                note = f"superseded by the digest of {period} (was {status})"
                self._update("digests", "id = ?", [digest_id], {"status": "superseded", "error": note})
                closed.append(old_period)
        return closed

    # -- profiles and events ----------------------------------------------------------------------------
    def save_profile_texts(self, texts: dict[str, str]) -> None:
        with self._transaction():
            for user, text in texts.items():
                self._insert("profile_texts", {"user": user, "text": text, "saved_at": utcnow()}, replace=True)

    def profile_texts(self) -> dict[str, str]:
        """Each user's last good profile text, the least recently loaded first (``load_profiles`` gives a
        contested address to the user who held it last)."""
        return {r["user"]: r["text"] for r in self.db["profile_texts"].rows_where(order_by="saved_at, user")}

    def log_event(self, level: str, component: str, message: str, user: str | None = None) -> None:
        """Record an event for `digest status`; the same event again (a broken profile seen by every command,
        two of them in turn) only moves its time, when it is among its component's last 100."""
        with self._transaction():
            same = self.db.execute(
                "SELECT id FROM (SELECT id, level, user, message FROM events WHERE component = ? ORDER BY id DESC "
                "LIMIT 100) WHERE level = ? AND user IS ? AND message = ? LIMIT 1",
                [component, level, user, message]).fetchone()
            if same is not None:
                self.db.execute("UPDATE events SET at = ? WHERE id = ?", [utcnow(), same[0]])
                return
            self._insert("events", {"at": utcnow(), "level": level, "component": component, "user": user,
                                    "message": message})

    def recent_events(self, limit: int = 10, levels: tuple[str, ...] = ()) -> list[dict]:
        """The latest `limit` events, latest first; only those of `levels` when given (INFO lines between
        errors do not push them out of the list)."""
        where = f"level IN ({', '.join('?' * len(levels))})" if levels else None
        return list(self.db["events"].rows_where(where, list(levels), order_by="at desc, id desc", limit=limit))

    # -- feedback (owner: feedback): pauses, batched votes, digests by Message-ID --------------------------
    def pause_user(self, user: str, *, via: str = "web", reason: str = "") -> bool:
        """Pause a user's digests (an unsubscribe). Returns False if they were paused already."""
        with self._transaction():
            if self.db.execute("SELECT 1 FROM pauses WHERE user = ?", [user]).fetchone():
                return False
            self._insert("pauses", {"user": user, "paused_at": utcnow(), "via": via, "reason": reason})
            self._insert("events", {"at": utcnow(), "level": "INFO", "component": "feedback", "user": user,
                                    "message": f"digests paused ({via})"})
        return True

    def resume_user(self, user: str, *, via: str = "cli") -> bool:
        """Lift a pause set by an unsubscribe. Returns False if the user was not paused here."""
        with self._transaction():
            cursor = self.db.execute("DELETE FROM pauses WHERE user = ?", [user])
            if cursor.rowcount:
                self._insert("events", {"at": utcnow(), "level": "INFO", "component": "feedback", "user": user,
                                        "message": f"digests resumed ({via})"})
        return bool(cursor.rowcount)

    def pause_of(self, user: str) -> dict | None:
        rows = list(self.db["pauses"].rows_where("user = ?", [user], limit=1))
        return rows[0] if rows else None

    def paused_users(self) -> dict[str, dict]:
        return {r["user"]: r for r in self.db["pauses"].rows}

    def record_votes(self, user: str, votes: Sequence[tuple[str, int]], via: str, *, also: Sequence[str] = (),
                     as_of: str | None = None) -> int:
        """Set several votes of one user in one transaction (the last choice wins). Returns how many changed.
        ``also``, ``as_of``: as for ``record_vote``."""
        changed = 0
        with self._transaction():
            for paper_id, value in votes:
                changed += self._set_vote(user, paper_id, value, via, also, as_of)
        return changed

    def vote_events(self, user: str) -> list[dict]:
        """Every vote change of a user, oldest first (value 0 = undone)."""
        return list(self.db["vote_events"].rows_where("user = ?", [user], order_by="id"))

    def digest_by_message_id(self, message_ids: Iterable[str]) -> dict | None:
        """The digest sent under one of these Message-IDs (a reply's In-Reply-To / References), newest first."""
        ids = [m.strip() for m in message_ids if m and m.strip()]
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        rows = list(self.db.query(f"SELECT * FROM digests WHERE message_id IN ({marks}) ORDER BY id DESC LIMIT 1",
                                  ids))
        return rows[0] if rows else None

    # == scheduler: `digest run` catch-up and `digest status` (owner: scheduler; reads only) ===============
    def poll_states(self) -> list[dict]:
        """Every mailbox's poll state (last poll time and result), most recent first."""
        return list(self.db["poll_state"].rows_where(order_by="last_poll_at desc, mailbox"))

    def last_done_period(self, user: str, email: str | None = None, earlier: Sequence[str] = ()) -> str | None:
        """The latest period whose digest is finished (DIGEST_DONE: never sent again). With ``email``, a digest
        refused for another address is not finished: the corrected address gets it (``deliver_user``).
        ``earlier``: the reader's earlier names (a renamed profile), whose sent or skipped digests count too."""
        marks = ",".join("?" * len(DIGEST_DONE))
        readdressed = "AND NOT (status = 'failed' AND address IS NOT NULL AND lower(address) != lower(?))" \
            if email else ""
        periods = [self.db.execute(f"SELECT MAX(period) FROM digests WHERE user = ? AND status IN ({marks}) "
                                   f"{readdressed}", [user, *DIGEST_DONE, *([email] if email else [])]).fetchone()[0]]
        if earlier:
            periods.append(self.db.execute(
                f"SELECT MAX(period) FROM digests WHERE user IN ({','.join('?' * len(earlier))}) AND status IN "
                "('sent', 'skipped')", list(earlier)).fetchone()[0])
        return max((p for p in periods if p), default=None)

    def first_sent_since(self, user: str, at: str) -> dict | None:
        """The first digest of ``user`` delivered at or after ``at`` (an ISO time, as events have)."""
        rows = list(self.db["digests"].rows_where("user = ? AND status = 'sent' AND sent_at >= ?", [user, at],
                                                  order_by="sent_at, id", limit=1))
        return rows[0] if rows else None

    def last_digest(self, user: str) -> dict | None:
        rows = list(self.db["digests"].rows_where("user = ?", [user], order_by="period desc, id desc", limit=1))
        return rows[0] if rows else None

    def last_address(self, user: str) -> tuple[str, str] | None:
        """(address, period) of the latest digest delivered to ``user`` (sent, or written to the outbox)."""
        row = self.db.execute("SELECT address, period FROM digests WHERE user = ? AND address IS NOT NULL AND "
                              "address != '' AND status = 'sent' ORDER BY period DESC, id DESC LIMIT 1",
                              [user]).fetchone()
        return (row[0], row[1]) if row else None

    def unfinished_digests(self) -> list[dict]:
        """Digests claimed, being sent, or waiting for a retry (with their claim owner)."""
        return list(self.db["digests"].rows_where("status IN ('claimed', 'sending', 'retry')",
                                                  order_by="period, user"))

    def count_by_status(self, table: str) -> dict[str, int]:
        """{status: count} of ``messages`` or ``digests`` (for digests, "written" are those delivered to the outbox)."""
        if table not in ("messages", "digests"):
            raise ValueError(table)
        # a digest delivered to the outbox (its file's path kept) is "written", not "sent"
        status = "CASE WHEN status = 'sent' AND path IS NOT NULL THEN 'written' ELSE status END" \
            if table == "digests" else "status"
        return {status: n for status, n in self.db.execute(
            f"SELECT {status} AS s, COUNT(*) FROM [{table}] GROUP BY s ORDER BY s")}

    def count_sent_since(self, user: str, since: str, also_sent_to: Sequence[str] = ()) -> int:
        """How many papers first seen since ``since`` already went out to ``user`` or got their vote (also under
        its earlier names in ``also_sent_to``), so are no candidates."""
        judged, args = _judged([user, *also_sent_to])
        return self.db.execute(f"SELECT COUNT(*) FROM papers WHERE first_seen >= ? AND id IN {judged}",
                               [since, *args]).fetchone()[0]

    def count_candidates(self, user: str, since: str, *, replacements: bool = False,
                         also_sent_to: Sequence[str] = (),
                         leave_out: Callable[[str | None, str | None, str | None], object] | None = None) -> int:
        """How many papers wait for the user's next digest (as ``candidate_papers``, counted); without those
        ``leave_out(arxiv_id, doi, title)`` names (the reader's own seed papers: ``pipeline.own_seed``)."""
        where, args = _candidates(user, since, replacements, also_sent_to)
        if leave_out is None:
            return self.db.execute(f"SELECT COUNT(*) FROM papers WHERE {where}", args).fetchone()[0]
        rows = self.db.execute(f"SELECT arxiv_id, doi, title FROM papers WHERE {where}", args)
        return sum(1 for arxiv_id, doi, title in rows if not leave_out(arxiv_id, doi, title))
