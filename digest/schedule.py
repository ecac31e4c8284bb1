"""The scheduler: ``digest run`` polls the mailbox, sends every user's digest at their local time, serves the
feedback links, and survives restarts. ``digest status`` reads the same schedule without the daemon.

Pure core (no I/O; tested with frozen time):
    send_trigger(profile)                 APScheduler CronTrigger at send_at on send_days in the profile's zone
    next_send(profile, after)             the first send time strictly after ``after``
    next_undone_send(profile, after, d)   the same, passing over periods already done
    previous_send(profile, at)            the last send time at or before ``at``
    due_catch_up(profile, now, last, grace)  a missed digest: send it now (inside the grace window) or skip it

The daemon (``Daemon``) wires them into one asyncio loop:
    AsyncIOScheduler   poll job (every imap.poll_minutes), one send job per profile, a catch-up sweep,
                       a profile watcher (every WATCH_SECONDS)
    clock watcher      on the monotonic clock: when the wall clock is set back, moves the jobs back with it
    uvicorn Server     the feedback web app, in the same loop
    worker thread      every unit of blocking work (loading the model, one poll, one user's digest) runs in
                       a worker thread, one unit at a time (the work lock), so jobs never overlap and the
                       shared embedder is only ever used by one thread

Nothing goes out twice: ``pipeline.deliver_user`` claims (user, period) in the store before it sends, so an
overlapping job, a second process or a restart after ``kill -9`` finds the claim. A claim whose owner died on
this host is taken over at once by the next claim (``Store.claim_digest``), so the catch-up at the next start
sends that digest, once, with the Message-ID it already had.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from . import store as store_module
from .errors import ConfigError, DigestError, ProfileError, StoreError
from .pipeline import done_period
from .profiles import WEEKDAYS, Profile, load_profiles, local_period
from .reference import similarity_bar
from .store import DIGEST_DONE, another_users_database, database_problem, is_lock

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0        # how often the profiles directory is checked for changes
SWEEP_MINUTES = 10.0       # how often due-but-unsent digests (transient failures, dead claims) are retried
# the profile watcher waits this long for another process's write lock, then tries again at its next look (a
# 30-s wait every 2 s kept it running past each tick); a lock held store.BUSY_SECONDS (as a write elsewhere would
# wait) is said in the log
WATCH_LOCK_WAIT = 1.0
EMBED_LOG_SECONDS = 15.0   # while a large batch of new papers is embedded, a progress line at most this often
LOCK_NAME = "run.lock"     # in data_dir: one `digest run` per data directory
CLOCK_CHECK_SECONDS = 5.0  # how often the wall clock is compared with the monotonic clock
CLOCK_JUMP_SECONDS = 30.0  # a step of the wall clock larger than this is a jump (NTP only slews smaller errors)


# -- the pure core ------------------------------------------------------------------------------------------
class LocalTimeTrigger(CronTrigger):
    """A CronTrigger that fires once per local day across daylight-saving changes.

    APScheduler's CronTrigger fires twice when the wall-clock time happens twice (01:30 in New York on the
    first Sunday of November); it skips a day whose time does not exist when the clocks jump at midnight
    (00:30 in Santiago, Havana or Beirut on the day they go from 00:00 to 01:00); and, asked from the time
    it last fired (as the scheduler asks after each run), it skips the day after the clocks go forward for a
    time from 00:00 to 00:59 (Berlin 00:30: Sun 31 Mar 2024, then Tue 2 Apr). This one computes each local
    day's send time itself: a time that happens twice fires the first time; a time that does not exist
    (02:30 when the clocks jump from 02:00 to 03:00) fires just after the jump, at the same distance past it
    (03:30)."""

    def __init__(self, days: tuple[int, ...], hour: int, minute: int, timezone: zoneinfo.ZoneInfo):
        super().__init__(day_of_week=",".join(WEEKDAYS[d] for d in days), hour=hour, minute=minute, second=0,
                         timezone=timezone)
        self.days, self.at = frozenset(days), dt_time(hour, minute)

    def get_next_fire_time(self, previous_fire_time, now):
        # the first send time at or after `now`; after a fire, the first one after it (as CronTrigger counts:
        # a fire missed since comes back, and the scheduler coalesces)
        start = now
        if previous_fire_time is not None:
            start = min(now, previous_fire_time + timedelta(microseconds=1))
            if start == previous_fire_time:
                start += timedelta(microseconds=1)
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        for _ in range(9):  # every frequency has a day each week
            if day.weekday() in self.days:
                # fold=0: the first of a repeated wall time; in a gap, the offset before the jump, which is the
                # same distance past the jump; through UTC, to carry the real local time and offset
                fire = datetime.combine(day, self.at, tzinfo=self.timezone).astimezone(UTC).astimezone(self.timezone)
                if fire >= start:
                    return fire
            day += timedelta(days=1)
        return None


def send_trigger(profile: Profile) -> LocalTimeTrigger:
    """The trigger of a profile's send job: ``send_at`` local time on ``send_days`` (Mon=0) in its zone."""
    hour, minute = (int(x) for x in profile.send_at.split(":"))
    return LocalTimeTrigger(profile.send_days, hour, minute, zoneinfo.ZoneInfo(profile.timezone))


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got {when!r})")
    return when


def next_send(profile: Profile, after: datetime) -> datetime:
    """The first send time strictly after ``after``, in the profile's time zone."""
    _aware(after, "after")
    fire = send_trigger(profile).get_next_fire_time(None, after + timedelta(microseconds=1))
    assert fire is not None  # every frequency has at least one day a week
    return fire


def next_undone_send(profile: Profile, after: datetime, last_done: str | None) -> datetime:
    """The first send time after ``after`` whose period is not done yet (``last_done``: the latest period sent,
    skipped or refused): a day whose digest already went out (say, early by `digest send`) is passed over."""
    nxt = next_send(profile, after)
    while last_done is not None and period_of(profile, nxt) <= last_done:
        nxt = next_send(profile, nxt)
    return nxt


def previous_send(profile: Profile, at: datetime) -> datetime | None:
    """The last send time at or before ``at`` (within the past 8 days: every frequency sends weekly)."""
    _aware(at, "at")
    trigger = send_trigger(profile)
    fire = trigger.get_next_fire_time(None, at - timedelta(days=8))
    last = None
    while fire is not None and fire <= at:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return last


def period_of(profile: Profile, when: datetime) -> str:
    """The digest period of a send time: the user's local calendar date (``profiles.local_period``)."""
    return local_period(profile, _aware(when, "when"))


@dataclass(frozen=True)
class CatchUp:
    """A digest whose send time has passed without it being done."""

    user: str
    period: str
    due_at: datetime
    late: timedelta
    send: bool  # True: inside the grace window, send it now; False: too late, skip it (and say so)


def due_catch_up(profile: Profile, now: datetime, last_period: str | None, grace: timedelta) -> CatchUp | None:
    """The most recent digest that was due by ``now`` and is not done (``last_period`` is the latest period
    already sent, skipped or refused), or None. Older misses are not sent: one digest per period, and the
    most recent one already holds every paper not yet sent."""
    due = previous_send(profile, now)
    if due is None:
        return None
    period = period_of(profile, due)
    if last_period is not None and last_period >= period:
        return None
    late = now - due
    return CatchUp(profile.user, period, due, late, send=late <= grace)


def _period_rows(store: Store, c: CatchUp, profile: Profile, addresses: Mapping[str, str] | None) -> Iterator[dict]:
    """The digest rows of ``c``'s period, under the profile's file name, then under its earlier ones."""
    from .pipeline import earlier_names

    for user in [c.user, *earlier_names(store, profile, addresses)]:
        if (row := store.digest_for(user, c.period)) is not None:
            yield row


def started_status(store: Store, c: CatchUp, profile: Profile,
                   addresses: Mapping[str, str] | None = None) -> str | None:
    """The state of a missed digest that a run already started ('claimed', 'sending' or 'retry': a `digest send`
    stopped with Ctrl-C, a run that died, a server that answered "try later" for hours), also under an earlier
    file name of the profile (delivery finishes that one under the new name), or None. The catch-up finishes
    such a digest however late; one nobody started is skipped beyond the grace window."""
    return next((row["status"] for row in _period_rows(store, c, profile, addresses)
                 if row["status"] in ("claimed", "sending", "retry")), None)


def live_claim(store: Store, c: CatchUp, profile: Profile, addresses: Mapping[str, str] | None = None) -> str | None:
    """'claimed' (being ranked and rendered) or 'sending' when a live process holds the missed digest ``c`` right
    now (also under an earlier file name of the profile), else None: a run that died, or another host's claim, is
    not 'live'. A claim whose papers are frozen (it has its Message-ID) is 'sending': between two tries at the mail
    server (after a 4xx, waiting out the backoff) the row is back to 'claimed', but nothing is ranked any more."""
    from .store import owner_state

    return next(("sending" if row.get("message_id") else row["status"]
                 for row in _period_rows(store, c, profile, addresses)
                 if row["status"] in ("claimed", "sending") and owner_state(row.get("claimed_by") or "") == "alive"),
                None)


def schedule_key(profile: Profile) -> tuple:
    """What the send job depends on: a change here reschedules; any other edit is read at send time."""
    return (profile.timezone, profile.send_at, profile.frequency, profile.paused)


def describe_time(when: datetime, now: datetime | None = None) -> str:
    """``Tue 2024-03-05 07:30 CET (06:30 UTC)`` (the UTC time only when it differs, with its day when that differs
    too: ``Mon 2024-06-10 07:30 +14 (Sun 17:30 UTC)``), plus ``in 3 h 5 min`` when ``now`` is given."""
    text = f"{when:%a %Y-%m-%d %H:%M} {when.tzname()}"
    if when.utcoffset():
        in_utc = when.astimezone(UTC)
        text += f" ({in_utc:%a %H:%M} UTC)" if in_utc.date() != when.date() else f" ({in_utc:%H:%M} UTC)"
    if now is not None:
        text += f", {describe_delta(when - now)}"
    return text


def describe_delta(delta: timedelta) -> str:
    """"in 2 h 5 min", "1 d 38 min ago", "just now"."""
    seconds = round(delta.total_seconds())
    if seconds == 0:
        return "just now"
    length = describe_duration(delta)
    return f"{length} ago" if seconds < 0 else f"in {length}"


def describe_duration(delta: timedelta) -> str:
    """The length of ``delta`` (its sign ignored) in its two largest units that are not zero: "1 d 2 h",
    "1 d 38 min" (not a bare "1 d" for 24 h 38 min), "45 s"."""
    days, rest = divmod(abs(round(delta.total_seconds())), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n][:2]
    return " ".join(parts) or f"{secs} s"


# -- helpers with I/O ---------------------------------------------------------------------------------------
class RunLock:
    """``data_dir/run.lock``: one ``digest run`` per data directory (two daemons would poll and send twice as
    often for nothing). Held with flock, so a crashed daemon never leaves a stale lock."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_NAME
        self._handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the life of the daemon
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            info = json.loads(holder) if holder.startswith("{") else {}
            raise DigestError(f"{self.path}: another `digest run` (pid {info.get('pid', '?')}) already uses this "
                              "data directory; stop it first, or give this one its own --data-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started_at": datetime.now(UTC).isoformat(timespec="seconds")}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @staticmethod
    def holder(data_dir: Path) -> dict | None:
        """The running daemon's {pid, host, started_at}, or None when no daemon holds the lock."""
        path = data_dir / LOCK_NAME
        try:
            handle = open(path)  # noqa: SIM115
        except OSError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                try:
                    return json.loads(text)
                except ValueError:
                    return {"pid": "?"}
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None


def profiles_snapshot(directory: Path, also: Iterable[str | Path] = ()) -> tuple | None:
    """What changes when a profile is added, edited or removed: name, size and mtime of every ``*.toml``, and
    of the files in ``also`` (the profiles' ``library`` exports, wherever they are; a missing one counts too)."""
    try:
        entries = []
        for path in directory.glob("*.toml"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                entries.append((path.name, st.st_size, st.st_mtime_ns, st.st_ino))
        for path in sorted({str(p) for p in also}):
            try:
                st = Path(path).stat()
                entries.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                entries.append((path, -1, -1, -1))
        return tuple(sorted(entries))
    except OSError:
        return None


def describe_poll(report: Any) -> str:
    """One line for a poll report (``ingest.PollReport``: one summary per folder)."""
    summary = getattr(report, "summary", None)
    if callable(summary):
        return summary()
    folders = getattr(report, "folders", None)
    if folders is not None:
        parts = [f.summary() for f in folders]
        if getattr(report, "error", None) and not parts:
            parts.append(f"error: {report.error}")
        return "; ".join(parts) or "nothing to read"
    return str(report)


def _papers(n: int) -> str:
    return "a quiet-day note (no papers)" if n == 0 else "1 paper" if n == 1 else f"{n} papers"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, DigestError) else text


def _file_identity(path) -> tuple[int, int] | None:
    """The file's (device, inode), None if there is no file there; another OSError (ESTALE or EIO of a network
    file system, EACCES) is raised: it says nothing about whether the file is there."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_dev, st.st_ino


def _report_failure(store: Store, job: str | None, component: str, exc: Exception, user: str | None,
                    then: str = "") -> None:
    """A unit of work failed: one log line (the traceback at DEBUG) and an event `digest status` shows."""
    # the store's own trouble (a full disk, a lock held elsewhere, a damaged file) is said with its cause and fix
    text = database_problem(store.path, exc) if isinstance(exc, sqlite3.DatabaseError) else _one_line(exc)
    log.error("job=%s: failed: %s%s", job, text, then)
    log.debug("job=%s", job, exc_info=True)
    with contextlib.suppress(Exception):
        store.log_event("ERROR", component, text, user=user)


# -- the daemon ---------------------------------------------------------------------------------------------
def _bind(settings: Settings) -> socket.socket:
    return bind_port(settings.web.host, settings.web.port, "set web.port to a free port, or web.enabled = false to "
                                                           "run without the feedback server")


def bind_port(host: str, port: int, fix: str,
              host_fix: str = "set web.host to an address of this machine, such as 127.0.0.1") -> socket.socket:
    """A socket bound to host:port, or a ConfigError that says why not and how to fix it: ``fix`` when the port
    is taken, ``host_fix`` when the host is no address of this machine."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as exc:  # gaierror: a name that does not resolve
        why = getattr(exc, "strerror", None) or exc
        if getattr(exc, "errno", None) == socket.EAI_AGAIN:  # the name server did not answer: try again later
            raise ConfigError(f"web: cannot listen on {host}:{port}: the name could not be looked up now ({why}); "
                              f"try again, or {host_fix}") from None
        raise ConfigError(f"web: cannot listen on {host}:{port}: no such host ({why}); {host_fix}") from None
    try:
        # IPPROTO_TCP named, so asyncio sets TCP_NODELAY on each connection: without it Nagle and delayed ACKs
        # hold every later request on a kept-alive connection ~40 ms
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:  # a real host, not this machine's
            raise ConfigError(f"web: cannot listen on {host}:{port} ({exc.strerror}): {host} is not an address of "
                              f"this machine; {host_fix}") from None
        raise ConfigError(f"web: cannot listen on {host}:{port} ({exc.strerror or exc}); {fix}") from None
    return sock


def preflight(settings: Settings, *, port: bool = True, lock: bool = True) -> None:
    """What stops `digest run` before it starts, checked before anything is created (a data directory, its
    database, the link-signing key): another run on this data directory (exit 1: a supervisor may retry),
    nowhere to deliver, no profiles directory, another user's database, the feedback port in use (exit 2: fix the
    config)."""
    holder = RunLock.holder(settings.data_path) if lock else None
    if holder is not None:
        raise DigestError(f"{settings.data_path / LOCK_NAME}: another `digest run` (pid {holder.get('pid', '?')}) "
                          "already uses this data directory; stop it first, or give this one its own --data-dir")
    if not settings.outbox and not settings.smtp.host:
        raise ConfigError(f"smtp.host is not set in {settings.source_label}, so digests cannot be sent; set [smtp] host "
                          '(see config.example.toml), or outbox = "data/outbox" to write them to files')
    if not settings.profiles_path.is_dir():
        raise ConfigError(f"{settings.profiles_path}: profiles directory not found; create it or set "
                          f"profiles_dir in {settings.source} (an absolute path is safest for a service)")
    if problem := another_users_database(settings.db_path):  # run as the wrong user (systemd's User=)
        raise StoreError(problem)
    if port and settings.web.enabled:
        _bind(settings).close()


PollFn = Callable[..., Any]  # poll(store, settings, *, stop: threading.Event) -> report (ingest.poll_all)
WaitFn = Callable[..., Any]  # wait(settings, timeout, *, stop, since: last report) -> bool (ingest.idle_wait)


class Daemon:
    """One long-running process: polls, sends each digest on time, serves feedback links, stops cleanly.

    Its outside pieces are passed in: ``poll`` (the IMAP poller's ``poll_all``), ``wait_for_mail`` (IMAP
    IDLE, used when ``imap.idle`` is on), ``web`` (the feedback server: a ``uvicorn.Server`` that leaves the
    signals to us, ``feedback.build_server(settings, handle_signals=False)``, served on web.host:web.port when
    ``web.enabled``) and ``embedder`` (loaded once, shared by every digest). Any of them may be None: that
    part is off.
    """

    def __init__(self, settings: Settings, *, poll: PollFn | None = None, wait_for_mail: WaitFn | None = None,
                 web: Any = None, embedder: Any = None):
        from .store import Store

        self.settings = settings
        self.poll = poll if settings.imap.host else None
        self.wait_for_mail = wait_for_mail if settings.imap.idle else None
        self.web_server = web if settings.web.enabled else None
        if embedder is None:
            from .embed import Embedder

            embedder = Embedder(settings.model.name, batch_size=settings.model.batch_size,
                                offline=settings.model.offline)
        self.embedder = embedder
        self.outbox = Path(settings.outbox) if settings.outbox else None
        self.grace = timedelta(minutes=settings.schedule.grace_minutes)
        self.exit_code = 0
        self.profiles: dict[str, Profile] = {}
        self.stale: tuple[str, ...] = ()
        self.stopping = False
        self.stop_event = threading.Event()      # seen by the poller between messages
        self.last_poll_started: datetime | None = None
        self.last_poll_report: Any = None
        self.current: str | None = None          # the unit of work running now, for shutdown logs
        self._current_future: asyncio.Future | None = None
        self._reported_errors: set[str] = set()
        self._reported_warnings: set[str] = set()
        self._reported_skips: set[tuple[str, str]] = set()
        # when an edit last gave a user their send times (paused = false, a new send_at, timezone or frequency,
        # a profile added or back): a send time of theirs before it was never theirs to miss
        self._rescheduled_at: dict[str, datetime] = {}
        self._snapshot: tuple | None = None
        # since when (monotonic) the profile watcher could not record a change it saw, and what it said of it
        self._watch_unread: tuple[float, str] | None = None
        self._sends_waiting = 0                  # digests queued or running: background embedding gives way
        self._library_backlog: set[str] = set()  # users whose library (seeds, votes) is still to embed
        self._library_task: asyncio.Task | None = None
        self._sweep_task: asyncio.Task | None = None  # a catch-up asked for by a profile change
        self._sweep_again = False
        self._clock_task: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self.ready = asyncio.Event()             # set once the start-up catch-up has run
        self._lock = RunLock(settings.data_path)
        self._lock.acquire()
        try:
            # one connection per thread role: the worker (polls, digests), the profile watcher, the loop itself
            self.work_store: Store = Store(settings.db_path)
            self.watch_store: Store = Store(settings.db_path)
            self.loop_store: Store = Store(settings.db_path)
            self._db_identity = _file_identity(settings.db_path)
            # SQLite keeps the -wal file while a connection is open, in WAL mode; where WAL cannot be used (some
            # network file systems) the journal mode stays another and there is no -wal file to watch
            wal = settings.db_path.with_name(settings.db_path.name + "-wal")
            self._wal: Path | None = wal if wal.exists() else None
            self._load_profiles_initial()
            self._socket = self._bind_web() if self.web_server is not None else None
        except BaseException:
            for name in ("work_store", "watch_store", "loop_store"):
                if hasattr(self, name):
                    getattr(self, name).close()
            self._lock.release()
            raise
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="digest-work")
        self.scheduler = None

    # -- start ---------------------------------------------------------------------------------------------
    def _load_profiles_initial(self) -> None:
        preflight(self.settings, port=False, lock=False)  # the lock is ours already; the port is bound next
        # taken before the read, so a change during it is seen (the profiles' library files are not known yet:
        # the first watch reads the profiles once more, with the libraries from their cache)
        self._snapshot = profiles_snapshot(self.settings.profiles_path)
        loaded = self._read_profiles(self.watch_store)
        self.profiles, self.stale = loaded.profiles, loaded.stale

    def _bind_web(self) -> socket.socket:
        """Bind the feedback port now, so a port in use stops the start with a clear message."""
        return _bind(self.settings)

    def _report_unfinished(self) -> None:
        """Say which digests a dead run left half done; the catch-up takes their claims over and sends them."""
        from .store import owner_state

        for row in self.loop_store.unfinished_digests():
            if row["status"] != "retry" and owner_state(row["claimed_by"] or "") == "dead":
                log.warning("job=recover user=%s period=%s: the run that claimed this digest (%s) stopped while it "
                            "was %s; the catch-up sends it", row["user"], row["period"], row["claimed_by"],
                            "being sent" if row["status"] == "sending" else "not yet handed over")

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code (0 after a clean stop)."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        # one line per event: APScheduler's per-run lines would drown ours, and the poller's own summary line
        # repeats the one we log with the job's reason (its other warnings and errors still show)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("digest.ingest").setLevel(logging.WARNING)
            # the pass's summary, failed or not, is the job=poll line below; the poller's own copy would repeat it
            logging.getLogger("digest.ingest.summary").setLevel(logging.ERROR)
        s = self.settings
        log.info("job=start: data %s, profiles %s, config %s", s.db_path.resolve(), s.profiles_path.resolve(),
                 s.source)
        self._report_unfinished()
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": max(60, int(self.grace.total_seconds()))})
        # the model loads first (errors are fatal: nothing could be ranked), then the catch-up runs; every other
        # unit queues behind them on the work lock
        self._lock_work = asyncio.Lock()
        loop.create_task(self._start_up())
        now = datetime.now(UTC)
        if self.poll is not None:
            self.scheduler.add_job(self._poll_job, "interval", minutes=s.imap.poll_minutes, id="poll",
                                   name="poll", next_run_time=now)
            log.info("job=poll: every %g min%s", s.imap.poll_minutes,
                     " and on IMAP IDLE" if self.wait_for_mail else "")
        else:
            why = "imap.host is not set" if not s.imap.host else "no IMAP poller in this build"
            log.info("job=poll: off (%s); add papers with `digest ingest`", why)
        self.scheduler.add_job(self._sweep_job, "interval", minutes=SWEEP_MINUTES, id="sweep", name="catch-up",
                               next_run_time=now + timedelta(minutes=SWEEP_MINUTES))
        self.scheduler.add_job(self._watch_job, "interval", seconds=WATCH_SECONDS, id="watch", name="profiles")
        self._apply_profiles(self.profiles, initial=True)
        self.scheduler.start()
        self._clock_task = loop.create_task(self._watch_clock())
        if self.wait_for_mail is not None:
            loop.create_task(self._idle_loop())
        web_task = loop.create_task(self._serve_web()) if self.web_server is not None else None
        await self._stopped.wait()
        return await self._shutdown(web_task)

    async def _start_up(self) -> None:
        """Load the model, embed the papers stored meanwhile (every digest ranks them), run the start-up
        catch-up; then say what comes next, and embed the users' libraries behind any digest that falls due."""
        if not await self._unit("model", self._load_model, fatal=True):
            return
        # stored while the daemon was down, or left by a stop in the middle of embedding them
        await self._unit("embed", self._embed_new, "stored papers that had no vector yet")
        await self._sweep_job()
        if self.stopping:
            return
        self._queue_libraries(list(self.profiles))
        from .pipeline import profile_addresses

        now, addresses = datetime.now(UTC), profile_addresses(self.loop_store)
        upcoming = sorted((next_undone_send(p, now, done_period(self.loop_store, p, addresses)), u)
                          for u, p in self.profiles.items() if not p.paused)
        first = f"next digest: {upcoming[0][1]} {describe_time(upcoming[0][0])}" if upcoming else "no digests due"
        log.info("job=start: ready; %d user%s, %s", len(self.profiles), "" if len(self.profiles) == 1 else "s", first)
        self.ready.set()

    def _load_model(self) -> bool:
        # a daemon's output is a log: no progress bars from the model libraries (read when they are imported)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        vector = self.embedder.encode(["warm-up"])  # loads the model once; every digest shares it
        # and the loose-match bar (reference.py): embedded once per machine, here rather than in a digest's time;
        # if that fails (the database locked or full), the first digest prepares it, and the start goes on
        try:
            bar = similarity_bar(self.work_store, self.embedder)
        except Exception as exc:  # noqa: BLE001 - a convenience here, never a reason not to start
            bar = None
            log.warning("job=model: the loose-match bar is prepared at the first digest instead (%s)", _one_line(exc))
        log.info("job=model: %s loaded (%d dimensions%s)", self.embedder.name, vector.shape[1],
                 f"; loose-match bar {bar:.2f}" if bar is not None else "")
        return True

    def _give_way(self) -> bool:
        """Asked between chunks of background embedding: stop for a stop, and for a digest due now."""
        return self.stopping or self._sends_waiting > 0

    def _queue_libraries(self, users: Iterable[str]) -> None:
        """Embed these users' libraries in the background: one unit at a time, behind any digest due."""
        self._library_backlog.update(users)
        if self._library_task is None or self._library_task.done():
            self._library_task = asyncio.get_running_loop().create_task(self._library_job())

    async def _library_job(self) -> None:
        while self._library_backlog and not self.stopping:
            users = sorted(self._library_backlog)
            self._library_backlog.clear()
            done = await self._unit("embed", self._embed_libraries, users)
            if done is None:  # stopping, or it failed (logged): the next start or edit embeds them
                return
            # a digest fell due: it has the work lock now (first in line), the rest waits behind it
            self._library_backlog.update(u for u in users if u not in done)

    def _embed_libraries(self, users: list[str]) -> list[str]:
        """Embed these users' library papers (worker thread), so their digests only rank at send time.
        Returns the users done; it gives way between chunks to a stop or a digest due now. The log counts
        "profile texts": everything ranking embeds for the profile (interests, seeds, library and voted papers),
        so more than `digest check`'s count of seeds and library papers."""
        from .pipeline import embed_profile

        done = []
        for user in users:
            profile = self.profiles.get(user)
            if profile is None or not profile.library_seeds:
                done.append(user)
                continue
            if self._give_way():
                break
            try:
                count, missing = embed_profile(self.work_store, self.embedder, profile, should_stop=self._give_way)
            except Exception as exc:  # one user's failure leaves the others' libraries to embed
                _report_failure(self.work_store, f"embed user={user}", "embed", exc, user,
                                "; the library is embedded at its digest instead")
                done.append(user)
                continue
            if count < missing:
                log.info("job=embed user=%s: %d of %d new profile texts embedded; %s", user, count,
                         missing, "stopping" if self.stopping else "the rest after the digest due now")
                break
            done.append(user)
            if count:
                log.info("job=embed user=%s: %d new profile texts embedded", user, count)
        return done

    def _embed_new(self, what: str) -> None:
        """Embed new papers as they arrive (worker thread), so a digest at its send time only ranks. A stop
        ends it between chunks: what is done stays stored, the rest is embedded at the next start."""
        from .pipeline import embed_new

        started = last = time.monotonic()

        def progress(done: int, total: int) -> None:  # a long embedding is not a silent log (a stall?)
            nonlocal last
            now = time.monotonic()
            if 0 < done < total and now - last >= EMBED_LOG_SECONDS:
                last = now
                log.info("job=embed: %d of %d %s embedded so far (%.0f s)", done, total, what, now - started)

        count, missing = embed_new(self.work_store, self.embedder, self.settings, progress,
                                   should_stop=lambda: self.stopping)
        if count < missing:
            log.info("job=embed: stopping: %d of %d %s embedded; the rest at the next start", count, missing, what)
        elif count:
            log.info("job=embed: %d %s embedded", count, what)

    # -- stop ----------------------------------------------------------------------------------------------
    def request_stop(self, sig: int | None = None, exit_code: int | None = None) -> None:
        """Stop taking work; the current unit finishes (within schedule.shutdown_timeout), then exit."""
        if exit_code is not None and not self.exit_code:
            self.exit_code = exit_code
        if self.stopping:
            if sig is not None:
                log.warning("job=stop: second %s: exiting now; unfinished work is retried at the next start",
                            signal.Signals(sig).name)
                self._hard_exit(1)
            return
        self.stopping = True
        self.stop_event.set()
        what = signal.Signals(sig).name if sig is not None else "fatal error" if self.exit_code else "stop requested"
        log.info("job=stop: %s: no new work; waiting up to %gs for %s", what,
                 self.settings.schedule.shutdown_timeout, self.current or "nothing (idle)")
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()  # not shutdown(): that would cancel the job awaiting the running unit
        self._stopped.set()

    async def _shutdown(self, web_task: asyncio.Task | None) -> int:
        timeout = self.settings.schedule.shutdown_timeout
        if self.current == "model":
            # nothing to save while the model loads, and the model library cannot be interrupted: go now
            log.info("job=stop: stopped while loading the model")
            self._close()
            self._hard_exit(self.exit_code)
        try:
            async with asyncio.timeout(timeout):
                if self._current_future is not None:
                    await asyncio.shield(self._current_future)
                async with self._lock_work:  # queued jobs see `stopping` and return at once
                    pass
                if web_task is not None and self.web_server is not None:
                    self.web_server.should_exit = True
                    await web_task
        except TimeoutError:
            log.error("job=stop: %s did not finish within schedule.shutdown_timeout = %gs; exiting anyway "
                      "(its transaction is rolled back; a digest it claimed is retried at the next start)",
                      self.current or "the web server", timeout)
            self._hard_exit(1)
        except Exception as exc:  # a failing unit already logged itself; stopping must still happen
            log.debug("job=stop: %s", _one_line(exc))
        if self._clock_task is not None:
            self._clock_task.cancel()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self._close()
        if self.exit_code:
            log.info("job=stop: stopped, exit code %d (the error above)", self.exit_code)
        else:
            log.info("job=stop: stopped cleanly")
        return self.exit_code

    def _close(self) -> None:
        self._executor.shutdown(wait=False)
        for store in (self.work_store, self.watch_store, self.loop_store):
            with contextlib.suppress(Exception):
                store.close()
        if self._socket is not None:
            self._socket.close()
        self._lock.release()

    def _hard_exit(self, code: int) -> None:
        """Exit without waiting for threads. Safe at any moment: every write is one SQLite transaction and
        claim-before-send makes the restart finish what was cut (exactly like kill -9)."""
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(code)

    # -- units of work -------------------------------------------------------------------------------------
    async def _unit(self, label: str, fn: Callable, *args, fatal: bool = False, user: str | None = None,
                    then: str = ""):
        """Run one unit of blocking work in the worker thread, one at a time. Returns its result (None when
        skipped because the daemon is stopping, or when it failed: failures are logged, never raised, with
        ``then``: what becomes of the work)."""
        failed: BaseException | None = None
        async with self._lock_work:
            if self.stopping:
                return None
            if gone := self._store_gone():
                log.error("job=%s: not run: %s", label, gone)
                self.request_stop(exit_code=2)  # a setup error: a service manager should not restart into it
                return None
            loop = asyncio.get_running_loop()
            self.current = f"{label} user={user}" if user else label
            future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
            self._current_future = future
            try:
                # shielded: if this job is cancelled the thread still runs, and shutdown waits for it
                return await asyncio.shield(future)
            except Exception as exc:
                failed = exc
                _report_failure(self.loop_store, self.current, label.split()[0], exc, user, then)
            finally:
                if future.done():
                    self.current = None
                    self._current_future = None
        if fatal and failed is not None:
            self.request_stop(exit_code=failed.exit_code if isinstance(failed, DigestError) else 1)
        return None

    def _store_gone(self) -> str | None:
        """Why the database file this daemon writes is no longer the one in data_dir (deleted, moved or replaced
        while it ran; or its -wal file, which holds the latest writes until a checkpoint), or None. SQLite goes on
        writing into an open file that was deleted: every poll would mark alerts read on the server and store
        them nowhere, and the web server would start an empty database in its place."""
        db = self.settings.db_path
        try:
            identity = _file_identity(db)
            wal_gone = self._wal is not None and _file_identity(self._wal) is None
        except OSError as exc:
            # cannot tell now (a network file system's passing trouble): the job runs, and fails with its own
            # error if the database cannot be used; stopping the daemon for good on one failed look would not do
            log.warning("cannot check the database file %s (%s); running the job", db, exc.strerror or exc)
            return None
        if identity != self._db_identity:
            what = "deleted or moved" if identity is None else "replaced by another file"
        elif wal_gone:
            what = "left without its -wal file (the latest writes; deleted?)"
        else:
            return None
        return (f"{db}: {what} while digest run was running; stopping, so that no alert is marked read and no vote "
                "taken with nowhere to keep them. Put the database back (a `digest backup` copy, with no -wal or "
                "-shm beside it) and start digest run again")

    def _poll_blocking(self, reason: str) -> None:
        """One pass over the mailbox (worker thread)."""
        self.last_poll_started = datetime.now(UTC)
        try:
            report = self.poll(self.work_store, self.settings, stop=self.stop_event)
        except Exception as exc:  # e.g. the account cannot be used as configured: say so at every poll
            if isinstance(exc, sqlite3.DatabaseError):
                # the store's own trouble (a lock held elsewhere, a full disk), with its cause and fix; not written
                # as an event too: that write would wait another 30 s for the same lock and fail, and take the
                # digest this poll came before down with it
                log.error("job=poll (%s): failed: %s; the next poll reads again what this one could not store",
                          reason, database_problem(self.work_store.path, exc))
                return
            log.error("job=poll (%s): failed: %s", reason, _one_line(exc))
            self.work_store.log_event("ERROR", "poll", _one_line(exc))
            return
        self.last_poll_report = report
        level = getattr(report, "log_level", logging.INFO)
        log.log(level, "job=poll (%s): %s", reason, describe_poll(report))
        if getattr(report, "new_papers", 1) and not self.stop_event.is_set():
            self._embed_new("new papers")

    async def _poll_job(self, reason: str = "interval") -> None:
        await self._unit(f"poll ({reason})", self._poll_blocking, reason)

    async def _idle_loop(self) -> None:
        """IMAP IDLE: wait (in a daemon thread, so a stop never waits for it) and poll when mail arrives."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            future: asyncio.Future = loop.create_future()

            def wait(future=future):
                try:
                    result, error = self.wait_for_mail(self.settings, self.settings.imap.poll_minutes * 60,
                                                       stop=self.stop_event, since=self.last_poll_report), None
                except Exception as exc:
                    result, error = None, exc

                def settle():
                    if not future.done():
                        future.set_exception(error) if error else future.set_result(result)

                with contextlib.suppress(RuntimeError):  # the loop is gone: the daemon stopped meanwhile
                    loop.call_soon_threadsafe(settle)

            threading.Thread(target=wait, name="digest-idle", daemon=True).start()
            try:
                arrived = await future
            except Exception as exc:
                log.warning("job=idle: %s; polling every %g min meanwhile", _one_line(exc),
                            self.settings.imap.poll_minutes)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), 60)
                continue
            if arrived and not self.stopping:  # a timeout needs no poll: the interval job polls anyway
                await self._poll_job("new mail")

    def _deliver_blocking(self, user: str, due_at: datetime) -> None:
        """Poll (if the last poll started before the send time), then deliver one digest (worker thread)."""
        from .pipeline import deliver_user, reader_pause, refused_elsewhere

        profile = self.profiles.get(user)
        if profile is None or profile.paused:
            return
        if previous_send(profile, due_at) != due_at:
            # send_at, timezone or frequency edited while this digest waited its turn: the due time is not the
            # profile's any more (its date could be another day's); the new schedule sends the day's digest
            log.info("job=send user=%s: the send time %s is no longer the profile's (edited meanwhile); its new "
                     "schedule sends the digest", user, describe_time(due_at))
            return
        period = period_of(profile, due_at)
        row = self.work_store.digest_for(user, period)
        if row is not None and row["status"] in DIGEST_DONE and not refused_elsewhere(row, profile):
            log.debug("job=send user=%s period=%s: already %s", user, period, row["status"])
            return
        done = done_period(self.work_store, profile)
        if done is not None and period <= done:
            # a later period already went out (the profile moved west, or the clock ran ahead and was put back):
            # this older one is passed over, as `digest status` and the catch-up sweep pass over it
            log.info("job=send user=%s period=%s: passed over, the digest of %s is already done", user, period, done)
            return
        if (self.settings.schedule.poll_before_send and self.poll is not None
                and reader_pause(self.work_store, profile) is None  # an unsubscribed user gets no email: no need to poll
                and (self.last_poll_started is None or self.last_poll_started < due_at)):
            # the digest includes what arrived up to its send time
            self._poll_blocking(f"before {user}'s digest")
        if not self.stopping:
            # papers stored by `digest ingest` meanwhile, and this user's library if it is still new: embedded
            # here, before the digest is claimed, where a stop can end it between chunks
            self._embed_new("new papers")
            from .pipeline import embed_profile

            embed_profile(self.work_store, self.embedder, profile, should_stop=lambda: self.stopping)
        if self.stopping:
            return  # not claimed yet: the next start sends it
        local = due_at.astimezone(zoneinfo.ZoneInfo(profile.timezone))
        late = datetime.now(UTC) - due_at
        when = f"due {local:%H:%M} {profile.timezone}" + (f", {describe_delta(-late)}" if late.total_seconds() >= 60
                                                          else "")
        d = deliver_user(self.work_store, self.embedder, self.settings, profile, outbox=self.outbox, now=due_at)
        prefix = f"job=send user={user} period={period}:"
        if d.status == "sent":
            (log.warning if d.note else log.info)("%s sent %s to %s (%s)%s", prefix, _papers(d.items), profile.email,
                                                  when, f": {d.note}" if d.note else "")
        elif d.status == "written":
            log.info("%s wrote %s to %s (%s)", prefix, _papers(d.items), d.path, when)
        elif d.status == "skipped":
            log.info('%s nothing cleared the floor; no email (quiet_day = "skip")', prefix)
        elif d.status == "already":
            log.info("%s already delivered; not sent again%s", prefix, f" ({d.note})" if d.note else "")
        elif d.status == "busy":
            log.info("%s another live run is sending it (%s); not sent again", prefix, d.error)
        elif d.status == "passed":
            log.info("%s passed over: %s", prefix, d.note)
        elif d.status == "paused":
            log.info("%s paused%s; no email", prefix, f" ({d.error})" if d.error else "")
        elif d.status == "retry" and user not in self.profiles:
            # the profile was removed (or broke beyond use) while this digest was being sent: no job of this
            # daemon retries it under this name, as `digest status` also says; a profile renamed meanwhile (the
            # same address) takes the unfinished digest over and sends it, once
            heir = next((p for p in self.profiles.values() if p.email.lower() == profile.email.lower()), None)
            if heir is not None:
                log.info("%s not delivered yet: %s; the profile is %s now (the same address), which sends it, once",
                         prefix, d.error, heir.path or heir.user)
            else:
                log.warning("%s not delivered: %s; %s was removed (or cannot be used) meanwhile, so nothing retries "
                            "it: put the file back to send it, once", prefix, d.error,
                            profile.path or self.settings.profiles_path / f"{user}.toml")
        elif d.status == "retry":
            log.warning("%s not delivered, will retry within schedule.grace_minutes: %s", prefix, d.error)
        else:
            log.error("%s %s: %s", prefix, d.status, d.error)

    async def _send_job(self, user: str) -> None:
        """The cron job of one user: deliver the digest whose send time just came."""
        profile = self.profiles.get(user)
        if profile is None:
            return
        now = datetime.now(UTC)
        due = previous_send(profile, now)
        if due is None:
            return
        if now - due > self.grace:
            self._report_skip(CatchUp(user, period_of(profile, due), due, now - due, send=False))
            return
        await self._send_unit(user, due)

    async def _send_unit(self, user: str, due_at: datetime) -> None:
        """One digest as a unit of work; background embedding gives way to it while it waits."""
        self._sends_waiting += 1
        try:
            # nothing was sent (a failure after the claim leaves the digest 'retry' or its claim to take over)
            await self._unit("send", self._deliver_blocking, user, due_at, user=user,
                             then=f"; nothing was sent, and the catch-up tries this digest again (every "
                                  f"{SWEEP_MINUTES:g} min, within schedule.grace_minutes of its send time)")
        finally:
            self._sends_waiting -= 1

    def _report_skip(self, c: CatchUp) -> None:
        if (c.user, c.period) in self._reported_skips:
            return
        self._reported_skips.add((c.user, c.period))
        profile = self.profiles[c.user]
        local = c.due_at.astimezone(zoneinfo.ZoneInfo(profile.timezone))
        # the event's text is the same whenever it is seen (a later start sees it again): status lists it once
        message = (f"missed the digest for {c.period} (due {local:%H:%M} {profile.timezone}): beyond "
                   f"schedule.grace_minutes = {self.settings.schedule.grace_minutes}, skipped; its papers go into "
                   f"the next digest")
        log.warning("job=catch-up user=%s period=%s: %s (%s)", c.user, c.period, message, describe_delta(-c.late))
        with contextlib.suppress(Exception):
            self.loop_store.log_event("WARNING", "schedule", message, user=c.user)

    def _due_now(self) -> list[tuple[CatchUp, str | None]]:
        from .pipeline import profile_addresses, reader_pause

        now, addresses = datetime.now(UTC), profile_addresses(self.loop_store)
        out = []
        for _user, profile in sorted(self.profiles.items()):
            # the file's switch, or a link's (also one followed under an earlier file name of the profile)
            if profile.paused or reader_pause(self.loop_store, profile, addresses) is not None:
                continue
            last_period = done_period(self.loop_store, profile, addresses)
            c = due_catch_up(profile, now, last_period, self.grace)
            if c is not None:
                out.append((c, last_period))
        return out

    async def _sweep_job(self) -> None:
        """Catch-up: at start, after a profile change, and every SWEEP_MINUTES: a digest due within the grace
        window and not done (downtime, a transient failure, a run that died) is sent; an older one is skipped
        and logged."""
        for c, last_period in self._due_now():
            started = None
            if (profile := self.profiles.get(c.user)) is None:  # removed while earlier digests went out
                continue
            if not c.send:
                # a digest a run started (a `digest send` stopped with Ctrl-C, a run that died, a server that
                # refused it for hours) is finished however late: `digest status` promised it; only a digest
                # nobody started is skipped beyond the grace window
                started = started_status(self.loop_store, c, profile)
                if started is None:
                    # a user who never had a digest missed nothing worth a warning; nor did one whose send time
                    # passed before an edit made it theirs (or while they were paused): the profiles line says next
                    if last_period is not None and c.due_at >= self._rescheduled_at.get(c.user, c.due_at):
                        self._report_skip(c)
                    continue
            if self.stopping:
                return
            profile = self.profiles.get(c.user)
            if profile is None:
                continue
            local = c.due_at.astimezone(zoneinfo.ZoneInfo(profile.timezone))
            if started:
                log.info("job=catch-up user=%s period=%s: due %s %s (%s), beyond the grace window, but an earlier "
                         "run started it (left %s): finishing it now", c.user, c.period, f"{local:%H:%M}",
                         profile.timezone, describe_delta(-c.late), started)
            elif c.late.total_seconds() >= 60:
                log.info("job=catch-up user=%s period=%s: due %s %s (%s), within the grace window: sending now",
                         c.user, c.period, f"{local:%H:%M}", profile.timezone, describe_delta(-c.late))
            await self._send_unit(c.user, c.due_at)

    def _request_sweep(self) -> None:
        """A catch-up in the background: the profile watcher goes on watching while its digests go out (a slow
        SMTP server would otherwise stall it, and APScheduler would warn every two seconds)."""
        if self._sweep_task is not None and not self._sweep_task.done():
            self._sweep_again = True  # the running one may have read the profiles before this change
            return
        self._sweep_task = asyncio.get_running_loop().create_task(self._sweep_until_settled())

    async def _sweep_until_settled(self) -> None:
        self._sweep_again = True
        while self._sweep_again and not self.stopping:
            self._sweep_again = False
            await self._sweep_job()

    # -- profiles ------------------------------------------------------------------------------------------
    def _read_profiles(self, store: Store):
        """Load profiles with the last good text of broken files; log each new error once."""
        from .pipeline import record_profile_error

        loaded = load_profiles(self.settings.profiles_path, store.profile_texts())
        store.save_profile_texts(loaded.texts)
        by_text = {str(e): e for e in loaded.errors}
        current = set(by_text)
        for error in sorted(current - self._reported_errors):
            user, message = record_profile_error(store, loaded, by_text[error])
            log.error("job=profiles user=%s: %s", user, message)
        # a file is fixed when none of its errors is left (an error replaced by another is no fix: "send_at = 7h"
        # edited to "send_at = \"7h\"" is still broken, with the new error logged above)
        still = {error.split(":", 1)[0] for error in current}
        for where in sorted({error.split(":", 1)[0] for error in self._reported_errors - current} - still):
            if Path(where).suffix == ".toml" and not Path(where).exists():
                log.info("job=profiles: %s was removed, and its error with it", where)
            else:
                log.info("job=profiles: fixed: %s", where)
        self._reported_errors = current
        for warning in sorted(set(loaded.warnings) - self._reported_warnings):
            # a library's skipped entry, a note on the profile file itself (max_items above what an email shows,
            # a keyword both boosted and muted), or a misnamed file in the folder, which is nobody's yet
            library_of = next((u for u, p in loaded.profiles.items() if any(warning.startswith(f"{lib}:") for lib in
                                                                             p.library)), None)
            user = library_of or next((u for u, p in loaded.profiles.items()
                                       if warning.startswith((f"{p.path}:", f"{p.path} "))), None)
            log.warning("job=profiles%s: %s%s", f" user={user}" if user else "", "library: " if library_of else "",
                        warning)
            store.log_event("WARNING", "profiles", warning, user=user)
        self._reported_warnings = set(loaded.warnings)
        return loaded

    def _library_files(self) -> list[str]:
        return [name for profile in self.profiles.values() for name in profile.library]

    async def _watch_job(self) -> None:
        """Reschedule when a profile is added, edited or removed (no restart needed); and stop when the database
        file was deleted or replaced, also while no job runs (no poll configured: nothing else would look)."""
        if not self.stopping and (gone := self._store_gone()):
            log.error("job=watch: %s", gone)
            self.request_stop(exit_code=2)
            return
        snapshot = profiles_snapshot(self.settings.profiles_path, self._library_files())
        if snapshot == self._snapshot:
            return

        def read():
            with self.watch_store.lock_wait(WATCH_LOCK_WAIT):
                return self._read_profiles(self.watch_store)

        try:
            loaded = await asyncio.get_running_loop().run_in_executor(self._executor, read)
        except ProfileError as exc:  # the directory itself went away: keep every schedule as it is
            self._snapshot = snapshot
            if str(exc) not in self._reported_errors:
                self._reported_errors.add(str(exc))
                log.error("job=profiles: %s; keeping the current schedules", exc)
            return
        except sqlite3.DatabaseError as exc:
            # the change is not taken as seen (no snapshot), so a later look reads it again: a profile added while
            # another process held the write lock was otherwise never scheduled until a restart
            self._profiles_unread(exc)
            return
        self._snapshot = snapshot
        if self._watch_unread is not None and self._watch_unread[1]:
            log.info("job=profiles: the database can be written again; the profile changes are read")
        self._watch_unread = None
        self.stale = loaded.stale
        before = self.profiles
        rescheduled = self._apply_profiles(loaded.profiles)
        new_library = [user for user, p in loaded.profiles.items()
                       if p.library_seeds and (user not in before or before[user].library_seeds != p.library_seeds)]
        if new_library and not self.stopping:
            self._queue_libraries(new_library)  # in the background, behind the catch-up below
        if rescheduled and not self.stopping:
            self._request_sweep()  # a new or moved send time may already have passed today

    def _profiles_unread(self, exc: sqlite3.DatabaseError) -> None:
        """A change to the profiles could not be recorded (the database locked by another process, a full disk):
        every schedule stays as it is and the watcher reads the change again at its next look. Said once (a lock
        only once it has lasted store.BUSY_SECONDS, as a write elsewhere would wait), not every 2 s."""
        now = time.monotonic()
        since, said = self._watch_unread or (now, "")
        text = database_problem(self.watch_store.path, exc)
        lock = is_lock(exc)
        if not said and (not lock or now - since >= store_module.BUSY_SECONDS):  # read now: tests shorten it
            log.error("job=profiles: a change in %s is not read yet: %s; it is read as soon as the database can be "
                      "written (until then every schedule stays as it was)", self.settings.profiles_path, text)
            said = text
        else:
            log.debug("job=profiles: a change is not read yet: %s", exc)
        self._watch_unread = (since, said)

    def _apply_profiles(self, profiles: Mapping[str, Profile], *, initial: bool = False) -> bool:
        """Add, move or remove send jobs to match ``profiles``. Returns True if any send time (or address) changed."""
        from .pipeline import reader_pause

        old, self.profiles = self.profiles if not initial else {}, dict(profiles)
        changed = False
        for user in sorted(old.keys() - profiles.keys()):
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(f"send:{user}")
            if (self.settings.profiles_path / f"{user}.toml").exists():  # broken, with no usable stand-in
                log.warning("job=profiles user=%s: the profile cannot be used (its error above); no digests until "
                            "it is fixed", user)
            else:
                log.info("job=profiles user=%s: profile removed; no more digests", user)
        for user, profile in sorted(profiles.items()):
            before = old.get(user)
            if before is not None and schedule_key(before) == schedule_key(profile):
                if before != profile:
                    log.info("job=profiles user=%s: profile updated; the next digest uses it", user)
                # a new address: today's digest, if it was refused for the old one, goes to the new one now
                changed = changed or before.email.lower() != profile.email.lower()
                continue
            changed = True
            job_id = f"send:{user}"
            if profile.paused:
                with contextlib.suppress(Exception):
                    self.scheduler.remove_job(job_id)
                log.info("job=profiles user=%s: paused; no digests until paused = false", user)
                continue
            self.scheduler.add_job(self._send_job, send_trigger(profile), args=[user], id=job_id,
                                   name=f"send {user}", replace_existing=True)
            verb = "scheduled" if before is None else "rescheduled"
            if not initial:
                self._rescheduled_at[user] = datetime.now(UTC)
            now, last_done = datetime.now(UTC), done_period(self.loop_store, profile)
            due = due_catch_up(profile, now, last_done, self.grace)
            # a send time already passed today, inside the grace window: the catch-up sends it now, not tomorrow
            nxt = f"the {due.period} digest now (due {describe_delta(-due.late)}, within the grace window)" \
                if due is not None and due.send and reader_pause(self.loop_store, profile) is None \
                else describe_time(next_undone_send(profile, now, last_done))
            log.info("job=profiles user=%s: %s: %s at %s %s; next %s", user, verb, profile.frequency,
                     profile.send_at, profile.timezone, nxt)
        if initial and not profiles:
            log.info("job=profiles: no profiles in %s yet; add NAME.toml and it is picked up without a restart",
                     self.settings.profiles_path)
        return changed

    # -- the clock -----------------------------------------------------------------------------------------
    async def _watch_clock(self) -> None:
        """Follow jumps of the wall clock, measured against the monotonic clock, which nothing sets.

        APScheduler keeps every job's next run as a wall-clock time. Set back (an NTP step after a boot with a
        wrong hardware clock, a virtual machine restored from a snapshot), the clock would make every interval
        job wait out the jump: an hour back, no poll, no profile check and no catch-up for an hour; a send job
        scheduled while the clock ran ahead would wait for that wrong day. A jump forward (the machine slept,
        or the clock was put right) needs no repair, as the jobs then due run at once; the catch-up is asked
        for at once too, so a digest missed meanwhile is sent or reported now."""
        offset = time.time() - time.monotonic()
        while not self.stopping:
            await asyncio.sleep(CLOCK_CHECK_SECONDS)
            now_offset = time.time() - time.monotonic()
            jump, offset = now_offset - offset, now_offset
            if self.stopping or abs(jump) < CLOCK_JUMP_SECONDS:
                continue
            try:
                if jump < 0:
                    self._clock_went_back(timedelta(seconds=-jump))
                else:
                    log.info("job=clock: the clock jumped %s forward (the machine slept, or the clock was set); "
                             "digests due meanwhile are caught up now", describe_duration(timedelta(seconds=jump)))
                    self._request_sweep()
            except Exception as exc:  # never let the watcher die: the next jump must be seen too
                log.error("job=clock: could not reschedule after a clock jump: %s", _one_line(exc))

    def _clock_went_back(self, back: timedelta) -> None:
        """Move each interval job back by the jump (it keeps its pace on the monotonic clock), and each send job
        to its next send time by the clock as it is now, where the wrong clock had put it later."""
        from apscheduler.triggers.interval import IntervalTrigger

        now = datetime.now(UTC)
        for job in self.scheduler.get_jobs():
            if job.next_run_time is None:
                continue
            if isinstance(job.trigger, IntervalTrigger):
                job.modify(next_run_time=max(now, job.next_run_time - back))
            elif job.id.startswith("send:") and (profile := self.profiles.get(job.id[5:])) is not None:
                right = next_undone_send(profile, now, done_period(self.loop_store, profile))
                if job.next_run_time > right:
                    job.modify(next_run_time=right)
        log.warning("job=clock: the clock went back %s; polls, profile checks and the catch-up keep their pace, "
                    "send times follow the clock as it is now", describe_duration(back))

    # -- web -----------------------------------------------------------------------------------------------
    async def _serve_web(self) -> None:
        """The feedback server, on the socket bound at start, in this loop; stopped by ``should_exit``."""
        host, port = self._socket.getsockname()[:2]
        log.info("job=web: feedback server on http://%s:%s (links use %s)", host, port, self.settings.web.base_url)
        try:
            await self.web_server.serve(sockets=[self._socket])
        except (Exception, SystemExit) as exc:  # uvicorn exits on a startup failure: the digests still go out
            log.error("job=web: the feedback server stopped: %s; digests still go out", _one_line(exc))


def run_daemon(settings: Settings, **parts: Any) -> int:
    """Build the daemon from ``parts`` (see ``Daemon``) and run it until SIGTERM/SIGINT; returns the exit code."""
    daemon = Daemon(settings, **parts)
    return asyncio.run(daemon.run())


# -- status -------------------------------------------------------------------------------------------------
def _poll_result(store: Store, state: dict) -> str | None:
    """A folder's last poll result; a pass that was reading when its process died says so (and where the next
    one goes on), instead of looking like a pass still under way."""
    from .ingest import READING, poll_running

    result = state["last_result"]
    reading = READING.search(result or "")
    if reading is None:
        return result
    if poll_running(store):
        return f"{result} (under way)"
    folder = result[:reading.start()]
    return (f"{folder}: stopped before its end (the process was killed, the machine went down, or the database "
            f"could not record its end: see the errors below); the next poll goes on after UID {state['last_uid']}")


def status_report(settings: Settings, store: Store, now: datetime | None = None) -> dict:
    """Everything ``digest status`` shows, as plain data (no daemon needed, no model loaded)."""
    now = now or datetime.now(UTC)
    report: dict[str, Any] = {"now": now.isoformat(timespec="seconds"), "config": settings.source,
                              "data_dir": str(settings.data_path), "profiles_dir": str(settings.profiles_path),
                              "model": settings.model.name}
    report["daemon"] = RunLock.holder(settings.data_path)
    report["polls"] = [{"mailbox": r["mailbox"], "at": r["last_poll_at"], "result": _poll_result(store, r)}
                       for r in store.poll_states()]
    report["counts"] = {"papers": store.count_papers(), "messages": store.count_by_status("messages"),
                        "digests": store.count_by_status("digests"),
                        "vectors": store.count_vectors(settings.model.name)}
    # the database with its write-ahead log: what the store takes on disk (~10 KB a paper with the default
    # model: its vector, text and search index)
    report["store_bytes"] = sum(p.stat().st_size for p in (settings.db_path.with_name(settings.db_path.name + x)
                                                           for x in ("", "-wal")) if p.exists())
    # the messages that could not be read, latest first: which mail, and why (`digest parse` shows more)
    report["failed_messages"] = [
        {"mailbox": m["mailbox"], "uid": m["uid"], "subject": m["subject"], "sender": m["sender"],
         "error": m["error"], "at": m["processed_at"]} for m in reversed(store.messages("failed"))]
    # the messages read in part (cut short): their papers are stored; the rest comes with a complete copy, after
    # which they are no longer listed
    # (a local file without a Message-ID cannot be matched to a whole copy: listed for two weeks)
    report["partial_messages"] = [
        {"mailbox": m["mailbox"], "uid": m["uid"], "subject": m["subject"], "sender": m["sender"],
         "warning": m["error"], "at": m["processed_at"]}
        for m in store.partial_messages(since=(now - timedelta(days=14)).isoformat(timespec="seconds"))]
    users: list[dict] = []
    covered: set[str] | None = set()  # the users with a profile, and their profiles' earlier file names
    errors: list[str] = []
    try:
        loaded = load_profiles(settings.profiles_path, store.profile_texts())
        errors = [str(e) for e in loaded.errors]
        profiles, stale = loaded.profiles, set(loaded.stale)
    except ProfileError as exc:  # the folder itself (missing, a file): no profile can be told gone
        profiles, stale, errors, covered = {}, set(), [str(exc)], None
    from .pipeline import candidate_since, earlier_names, own_seed, profile_addresses, reader_pause

    since = candidate_since(settings, now)  # the window `digest rank` ranks
    addresses = profile_addresses(store)
    for user, profile in sorted(profiles.items()):
        unsubscribed = (reader_pause(store, profile, addresses) or (user, None))[1]
        entry: dict[str, Any] = {"user": user, "email": profile.email, "timezone": profile.timezone,
                                 "send_at": profile.send_at, "frequency": profile.frequency,
                                 "paused": profile.paused, "stale": user in stale,
                                 "unsubscribed": unsubscribed and {k: unsubscribed[k] for k in ("paused_at", "via")}}
        if not profile.paused and not unsubscribed:
            last_done = done_period(store, profile, addresses)
            due = due_catch_up(profile, now, last_done, timedelta(minutes=settings.schedule.grace_minutes))
            if due is not None and (live := live_claim(store, due, profile, addresses)) is not None:
                # a running `digest` holds it this minute: neither "not sent yet" nor an invitation to send it
                nxt = due.due_at
                entry["next"] = (f"being sent now: the {due.period} digest (due {describe_delta(-due.late)}) is "
                                 f"{'being sent' if live == 'sending' else 'being prepared'} by a running digest")
            elif due is not None and due.send:
                # due and not done yet (missed, or waiting for a retry): the daemon sends it now, not in a day
                nxt = due.due_at
                entry["next"] = (f"due now: the {due.period} digest was due {describe_delta(-due.late)} and is not "
                                 "sent yet; `digest run` sends it within the grace window, or run `digest send`")
            elif due is not None and (started := started_status(store, due, profile, addresses)) is not None:
                # beyond the grace window, but a run started it: the daemon's catch-up finishes it however late
                nxt = due.due_at
                entry["next"] = (f"due now: the {due.period} digest was due {describe_delta(-due.late)} and an "
                                 f"earlier run started it (left {started}); `digest run` finishes it however late "
                                 f"(its catch-up, every {SWEEP_MINUTES:g} min), or run `digest send`")
            else:
                nxt = next_undone_send(profile, now, last_done)
                entry["next"] = describe_time(nxt, now)
            entry["next_local"] = nxt.isoformat()
            entry["next_utc"] = nxt.astimezone(UTC).isoformat()
        # the reader's latest digest, also under an earlier file name of the profile (dan.toml renamed eve.toml,
        # the same address), as delivery counts it; on the same day, this name's own row
        earlier = earlier_names(store, profile, addresses)
        if covered is not None:
            covered.update([user, *earlier])
        lasts = [row for row in (store.last_digest(name) for name in [user, *earlier]) if row is not None]
        last = max(lasts, key=lambda row: row["period"], default=None)
        if last is not None:
            entry["last"] = {k: last.get(k) for k in ("period", "status", "n_items", "n_candidates", "error",
                                                     "sent_at", "attempts", "path")}
            if last["user"] != user:
                entry["last"]["as_user"] = last["user"]  # an earlier file name of this profile
            if last["status"] in ("claimed", "sending"):
                from .store import owner_state

                # 'dead': the run holding it is gone (kill -9, a crash); the next run takes it over and sends it
                entry["last"]["claim"] = owner_state(last.get("claimed_by") or "")
        entry["waiting"] = store.count_candidates(user, since, replacements=settings.ranking.include_replacements,
                                                  also_sent_to=earlier, leave_out=own_seed(profile))
        users.append(entry)
    report["users"] = users
    # unfinished digests of a profile that is gone (deleted, or renamed with a new address): nothing sends them
    # until the file is back, and no user section shows them
    report["orphaned_digests"] = [] if covered is None else [
        {k: d[k] for k in ("user", "period", "status")} for d in store.unfinished_digests() if d["user"] not in covered]
    report["profile_errors"] = errors
    report["recent_errors"] = [{**{k: e[k] for k in ("at", "level", "component", "user", "message")},
                                "resolved": _resolved(store, e, errors)}
                               for e in store.recent_events(10, levels=("ERROR", "WARNING"))]
    return report


def _resolved(store: Store, event: dict, profile_errors: list[str]) -> dict | None:
    """What has put a logged error right since, when it is known: a digest delivered after a failed send
    ({"by": "digest sent", "at": ...}), a profile file that loads again ({"by": "the file loads now"}).
    None when it may still stand."""
    if event["component"] == "send" and event["user"]:
        # the first delivery after it (a later day's failure does not undo it)
        sent = store.first_sent_since(event["user"], event["at"])
        if sent is not None:
            return {"by": "digest written" if sent["path"] else "digest sent", "at": sent["sent_at"]}
    elif event["component"] == "profiles" and event["level"] == "ERROR":
        where = event["message"].split(":", 1)[0]
        if where.endswith(".toml") and not any(e.split(":", 1)[0] == where for e in profile_errors):
            return {"by": "the file loads now" if Path(where).exists() else "the file is gone (removed or renamed)",
                    "at": None}
    elif event["component"] == "poll" and (event["level"] == "ERROR"
                                           or not (event["message"].startswith(("quarantined", "skipped"))
                                                   or ": not read: " in event["message"])):
        # a later poll of a mailbox that ended without an error: the mailbox is reachable again, a rescan is done
        # (a warning about one message, quarantined, too large or not read, stands however many polls go well after it)
        later = [p for p in store.poll_states() if (p["last_poll_at"] or "") > event["at"]
                 and "error" not in (p["last_result"] or "")]
        if later:
            return {"by": "a poll succeeded", "at": later[0]["last_poll_at"]}
    return None
