"""The IMAP poller: the only module that speaks IMAP.

Public surface (the CLI and the scheduler call these; nothing else here is public):

``poll_all(store, settings, *, stop=None, folders=None, rescan=False, progress=None) -> PollReport``
    One pass over every configured folder (or ``folders``). Synchronous. Never raises for a problem with
    one message. Raises :class:`~digest.errors.ConfigError` (no host, no password, bad folder settings) or
    :class:`~digest.errors.MailboxError` (login refused, untrusted certificate, no STARTTLS) when the
    account cannot be used as configured. Network trouble is retried a few times with backoff and then
    reported in ``PollReport.error``: the next pass resumes exactly where this one stopped.
``idle_wait(settings, timeout, *, stop=None, folder=None, folders=None, since=None) -> bool``
    Wait with IMAP IDLE until new mail arrives in ``folder``, or in any of ``folders`` (default: every
    configured folder, one connection each), at most ``timeout`` seconds, renewing the IDLE every 25
    minutes. True: new mail (or a connection broke), so poll now. False: the timeout passed or ``stop`` was set.
``connect(settings) -> IMAPClient``
    A logged-in client, TLS as configured (for diagnostics).

The rules, and why the order of the steps matters:

* Reading changes nothing: bodies are fetched with ``BODY.PEEK[]``, so ``\\Seen`` is never set.
* A message is marked processed (the keyword ``imap.processed_flag``, or a MOVE to ``imap.processed_folder``)
  only after :func:`~digest.pipeline.ingest_raw` has committed it with its papers. A crash between the two
  leaves an unmarked message whose row says 'ingested': the next pass marks it without fetching it again.
* Incremental by UID: ``poll_state`` keeps (UIDVALIDITY, highest UID handled) per folder, and the mark
  moves one message at a time after the message is handled, so a pass that is cut short resumes where it
  stopped. A new UIDVALIDITY rescans the folder; the store recognises messages by Message-ID and papers by
  id, so nothing is duplicated.
* Mail that is not a paper alert is never touched. An alert that cannot be parsed is recorded with its
  error and quarantined (``imap.quarantine_flag`` or ``imap.quarantine_folder``); the others go on.
  Nothing is ever deleted.
* A message larger than ``imap.max_message_bytes`` (its RFC822.SIZE, asked for before any body) is recorded
  as 'skipped' with the reason and not fetched, now or later (``digest poll --rescan`` reconsiders it).
* Certificates are always verified (``imap.ca_file`` for a private CA) and STARTTLS is never skipped.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import fcntl
import imaplib
import logging
import os
import re
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from .config import ImapSettings, Settings, answers_tls
from .errors import ConfigError, MailboxError, StoreError
from .pipeline import IngestReport, ingest_raw
from .store import Store

__all__ = ["FolderReport", "PollReport", "check_settings", "connect", "idle_wait", "mailbox_key", "poll_all"]

log = logging.getLogger(__name__)
# the one-line summary per folder: the CLI prints these lines itself, so it quiets this logger
summary_log = logging.getLogger("digest.ingest.summary")

FETCH_BATCH = 200  # UIDs per metadata FETCH (RFC822.SIZE FLAGS): small responses even for a huge folder
BODY_BATCH = 20  # messages per BODY.PEEK[] FETCH ...
BODY_BATCH_BYTES = 8_000_000  # ... and at most about this many bytes of them
RETRIES = 3  # reconnections per pass before giving up until the next pass
BACKOFF = 2.0  # seconds before the first reconnection; doubles each time
LOCK_WAIT = 120.0  # seconds to wait for another poll of the same database to finish
IDLE_RENEW = 25 * 60  # servers may end an IDLE after 30 minutes (RFC 2177): renew well before

# statuses whose papers (or votes, or a refused vote's reason) are committed
PROCESSED = ("ingested", "duplicate", "feedback", "feedback_rejected")
_ATOM = re.compile(r"[^\s(){%*\"\\\]]+")  # what an IMAP keyword may look like (RFC 3501 atom)


def _arrival(value) -> datetime | None:
    """A message's INTERNALDATE as an aware UTC time, never later than now (a server clock ahead of ours must not
    put an email vote after the reader's later clicks); None when the server gave none that reads as a time.
    IMAPClient gives it as this machine's local time without a zone (``normalise_times``)."""
    if not isinstance(value, datetime):
        return None
    return min(value.astimezone(UTC), datetime.now(UTC))


class _Lost(Exception):
    """The connection could not be made or broke (network, server restart): retried, then reported."""


class _FolderError(Exception):
    """This folder cannot be polled as configured (missing, read-only, refuses keywords); the others go on."""


# -- reports -----------------------------------------------------------------------------------------------
@dataclass
class FolderReport:
    """What one pass did in one folder."""

    folder: str
    mailbox: str  # the key of this folder in the store (see mailbox_key)
    uidvalidity: int | None = None
    uidnext: int | None = None  # as seen when the folder was selected (idle_wait uses it, see since=)
    fetched: int = 0  # bodies downloaded
    ingested: int = 0
    duplicates: int = 0  # alerts already stored under the same Message-ID (another folder, a rescan)
    feedback: int = 0  # replies carrying votes (recorded by ingest_raw, marked like alerts)
    feedback_rejected: int = 0  # feedback refused (wrong sender, bad token, no votes): recorded with why, marked
    not_alerts: int = 0
    failed: int = 0  # could not be parsed: recorded and quarantined
    skipped: int = 0  # larger than imap.max_message_bytes
    marked: int = 0  # processed messages flagged or moved, including ones an earlier pass had committed
    new_papers: int = 0
    merged_papers: int = 0
    rescanned: bool = False  # UIDVALIDITY changed: the whole folder was looked at again
    whole: bool = False  # `digest poll --rescan`: every unmarked message, also on a first look at the folder
    left_alone: int = 0  # first look at the folder: unmarked mail that arrived before imap.first_poll_days
    left_since: date | None = None  # ...that is, before this day
    stopped: bool = False  # the stop event ended the pass early
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # one line per quarantined or skipped message

    def summary(self) -> str:
        """One line for the CLI and the log."""
        counts = [f"{self.fetched} fetched", f"{self.ingested} ingested"]
        if self.duplicates:
            counts.append(f"{self.duplicates} already known")
        if self.feedback:
            counts.append(f"{self.feedback} feedback repl{'y' if self.feedback == 1 else 'ies'}")
        if self.feedback_rejected:
            counts.append(f"{self.feedback_rejected} feedback repl{'y' if self.feedback_rejected == 1 else 'ies'} "
                          "refused (see digest status)")
        counts += [f"{self.not_alerts} not alerts", f"{self.failed} failed (quarantined)",
                   f"{self.skipped} skipped (too large)"]
        line = f"{self.folder}: {', '.join(counts)}; {self.new_papers} new papers"
        if self.merged_papers:
            line += f" ({self.merged_papers} merged)"
        if self.rescanned:
            line += "; UIDVALIDITY changed, folder rescanned"
        if self.left_alone:
            line += (f"; first look at this folder: {self.left_alone} older message"
                     f"{'' if self.left_alone == 1 else 's'} (before {self.left_since}) left alone, "
                     f"`digest poll --rescan` reads {'it' if self.left_alone == 1 else 'them'}")
        if self.stopped:
            line += "; stopped early"
        if self.error:
            line += f"; error: {self.error}"
        return line


@dataclass
class PollReport:
    """What one pass did. ``error`` is set when the connection gave up (the pass stopped there)."""

    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.error is None for f in self.folders)

    @property
    def log_level(self) -> int:
        """How the pass is logged: ERROR when a folder could not be read (as `digest status` shows it), WARNING
        for a pass skipped because another is running (the next one reads what it leaves), else INFO."""
        if any(f.error for f in self.folders):
            return logging.ERROR
        return logging.WARNING if self.error else logging.INFO

    @property
    def errors(self) -> list[str]:
        found = [f.error for f in self.folders if f.error]
        return found if found or not self.error else [self.error]

    @property
    def new_papers(self) -> int:
        return sum(f.new_papers for f in self.folders)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.folders)

    def folder(self, name: str) -> FolderReport | None:
        return next((f for f in self.folders if f.folder == name), None)


# -- connecting --------------------------------------------------------------------------------------------
def mailbox_key(imap: ImapSettings, folder: str) -> str:
    """How the store names a folder: per account, so a changed account never reuses another's UIDs."""
    return f"imap://{imap.username}@{imap.host}/{folder}"


def _server_text(exc: BaseException) -> str:
    """imaplib's error text without its Python reprs: "login failed: b'[AUTH...] x'" -> "[AUTH...] x"."""
    text = str(exc.args[0] if exc.args else exc)
    text = re.sub(r"""\bb(['"])(.*?)\1""", r"\2", text)
    text = re.sub(r"\s*\(\d+\.\d+(?: \+ \d+\.\d+)* secs\)", "", text)  # Dovecot's timings
    text = re.sub(r"^(?:\w+ failed|command: \w+ =>): ", "", text).strip()
    return re.sub(r"(?<!\.)\.$", "", text)  # our message goes on after it ("...; check imap.folders")


def _password_hint(imap: ImapSettings) -> str:
    if imap.password_env and os.environ.get(imap.password_env):
        return f"the password in ${imap.password_env}"
    if imap.password_file:
        return f"the password in {imap.password_file} (imap.password_file)"
    return f"the password (${imap.password_env} or imap.password_file)"


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """Verification always on: the system CAs, or imap.ca_file for a private CA. Never weakened."""
    ca_file = settings.imap.ca_file
    try:
        return ssl.create_default_context(cafile=str(Path(ca_file).expanduser()) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"{settings.source}: imap.ca_file = {ca_file!r} cannot be used ({reason}); "
                          "point it to the PEM certificate of the CA that signed the server's certificate") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within imap.timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _server_text(exc) or type(exc).__name__


def _close(client: IMAPClient | None) -> None:
    """Log out politely if the connection still works; otherwise just drop it."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - a broken connection cannot log out; closing is all that is left
        with contextlib.suppress(Exception):
            client.shutdown()


def connect(settings: Settings) -> IMAPClient:
    """Connect and log in as configured: implicit TLS or STARTTLS (never skipped), certificate verified.

    Raises ConfigError / MailboxError for what retrying cannot fix, and ``_Lost`` (internal) for the network.
    """
    imap = settings.imap
    _check_account(settings)
    where = f"{imap.host}:{imap.port}"
    password = imap.password()  # ConfigError naming the env var or file when there is none
    context = _tls_context(settings) if imap.security != "plain" else None
    client = None
    try:
        client = IMAPClient(imap.host, port=imap.port, ssl=imap.security == "tls", ssl_context=context,
                            timeout=imap.timeout)
        if imap.security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise MailboxError(
                    f"imap: {where} does not offer STARTTLS, and imap.security = \"starttls\" never logs in "
                    "without TLS; use security = \"tls\" with the server's implicit-TLS port (usually 993)")
            client.starttls(context)
        client.login(imap.username, password.reveal())
    except MailboxError:
        _close(client)
        raise
    except LoginError as exc:
        _close(client)
        raise MailboxError(f"imap: login failed for {imap.username} at {where}: {_server_text(exc)}; "
                           f"check imap.username and {_password_hint(imap)}") from None
    except ssl.SSLCertVerificationError as exc:
        _close(client)
        fix = (f"imap.ca_file = {imap.ca_file!r} did not sign it: point imap.ca_file to the CA that did"
               if imap.ca_file else
               "if the server uses a private CA or a self-signed certificate, set imap.ca_file to that CA's "
               "certificate (PEM)")
        raise MailboxError(f"imap: the TLS certificate of {where} is not trusted "
                           f"({exc.verify_message or exc.reason}); {fix}") from None
    except ssl.SSLError as exc:
        _close(client)
        raise MailboxError(f"imap: TLS with {where} failed ({exc.reason or exc}); check imap.port and "
                           "imap.security: implicit TLS (security = \"tls\") is usually port 993, STARTTLS "
                           "(security = \"starttls\") port 143") from None
    except TimeoutError:
        _close(client)
        if imap.security != "tls" and answers_tls(imap.host, imap.port, imap.timeout):
            # it says nothing until spoken to in TLS (a server that stalls says nothing to that either): a port
            # that waits for a TLS handshake, not a network problem, so no retry (four took two minutes)
            raise MailboxError(f"imap: {where} takes the connection but sends no greeting within imap.timeout = "
                               f"{imap.timeout:g} s and answers TLS, as a port that expects TLS at once (like 993) "
                               f"does; set imap.security = \"tls\" for it, or use the STARTTLS port (usually 143)"
                               ) from None
        hint = "" if imap.security == "tls" else "; busy or stalled: it does not answer TLS either"
        raise _Lost(f"cannot reach {where} (no answer within imap.timeout = {imap.timeout:g} s{hint})") from None
    except (OSError, imaplib.IMAP4.abort) as exc:
        _close(client)
        check = ("; check imap.host and imap.port, and that the server runs" if isinstance(exc, ConnectionRefusedError)
                 else "; check imap.host" if isinstance(exc, socket.gaierror) else "")
        raise _Lost(f"cannot reach {where} ({_describe(exc)}{check})") from None
    except IMAPClientError as exc:
        _close(client)
        raise MailboxError(f"imap: {where} refused the session: {_server_text(exc)}") from None
    log.debug("imap: logged in as %s at %s (%s)", imap.username, where, imap.security)
    return client


def _check_account(settings: Settings) -> None:
    imap, source = settings.imap, settings.source_label
    if not imap.host:
        where = "copy config.example.toml to config.toml and set in its [imap]" if settings.source == "(defaults)" \
            else "add to [imap]"
        raise ConfigError(f"{source}: imap.host is not set; to read alerts from a mailbox, {where} "
                          'host = "imap.example.org" and username = "alerts@example.org"')
    if not imap.username:
        raise ConfigError(f'{source}: imap.username is not set; for example: username = "alerts@example.org"')


def check_settings(settings: Settings, folders: Sequence[str]) -> None:
    """The [imap] settings a poll needs, else a ConfigError naming the key and the fix."""
    imap, source = settings.imap, settings.source_label
    _check_account(settings)
    if not folders:
        raise ConfigError(f'{source}: imap.folders is empty; for example: folders = ["INBOX"]')
    for key in ("processed_flag", "quarantine_flag"):
        value = getattr(imap, key)
        if not _ATOM.fullmatch(value) or value.startswith("\\"):
            raise ConfigError(f"{source}: imap.{key} = {value!r} is not a valid IMAP keyword; use a word "
                              'without spaces or brackets, for example "$Digested"')
    if imap.mark == "move":
        for name in folders:
            if name in (imap.processed_folder, imap.quarantine_folder):
                raise ConfigError(f"{source}: imap.folders includes {name!r}, where mark = \"move\" puts the "
                                  "mail it has read; poll other folders or rename imap.processed_folder / "
                                  "imap.quarantine_folder")


class _Session:
    """One lazily (re)opened connection for a pass, and what we learnt about the server on it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: IMAPClient | None = None
        self.known_folders: set[str] = set()
        self.targets_ready = False  # mark = "move": the server can move mail and both folders exist

    def client(self) -> IMAPClient:
        if self._client is None:
            self._client = connect(self.settings)
            self.known_folders, self.targets_ready = set(), False
        return self._client

    def prepare_targets(self) -> None:
        """With mark = "move", before any message is read: the server can move mail safely and both target folders
        exist (created when missing). A pass must not store mail it then cannot file (it would stop at that
        message on every poll), so a server that refuses either is the account's error, named with the key."""
        imap = self.settings.imap
        if imap.mark != "move" or self.targets_ready:
            return
        client = self.client()
        if not (client.has_capability("MOVE") or client.has_capability("UIDPLUS")):
            raise MailboxError(f"imap: {_no_move(imap)}")
        for target in (imap.processed_folder, imap.quarantine_folder):
            self.ensure_folder(target)
        self.targets_ready = True

    def ensure_folder(self, target: str) -> None:
        if target in self.known_folders:
            return
        client, imap = self.client(), self.settings.imap
        try:
            if not client.folder_exists(target):
                client.create_folder(target)
                with contextlib.suppress(IMAPClientError):
                    client.subscribe_folder(target)  # so mail clients show it
                log.info("imap: created folder %s", target)
            elif problem := _no_insert(client, imap, target):
                raise MailboxError(f"imap: {problem}")
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as exc:
            raise MailboxError(f"imap: cannot create folder {target!r} ({_target_key(imap, target)}) on {imap.host}: "
                               f"{_server_text(exc)}; {_folder_fix(client, imap, target)}") from None
        self.known_folders.add(target)

    def drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def close(self) -> None:
        client, self._client = self._client, None
        _close(client)


def _target_key(imap: ImapSettings, target: str) -> str:
    return "imap.processed_folder" if target == imap.processed_folder else "imap.quarantine_folder"


def _prefix_fix(client: IMAPClient, imap: ImapSettings, target: str) -> str | None:
    """The fix for a folder name outside the account's personal namespace: many servers (Courier, cPanel, Cyrus)
    keep every folder under "INBOX." and refuse a top-level one. None when the name is inside it."""
    try:
        personal = client.namespace().personal or ()
    except (IMAPClientError, imaplib.IMAP4.error):
        personal = ()
    prefix, sep = personal[0] if personal else ("", None)
    if isinstance(prefix, bytes):
        prefix = prefix.decode("utf-8", "replace")
    if isinstance(sep, bytes):
        sep = sep.decode("utf-8", "replace")
    if not prefix or target.startswith(prefix):
        return None
    name = target.replace("/", sep) if sep and sep != "/" else target
    return (f"this server keeps folders under {prefix!r}: set {_target_key(imap, target)} = \"{prefix}{name}\" "
            "(or imap.mark = \"flag\" to leave mail where it is)")


def _my_rights(client: IMAPClient, folder: str) -> str | None:
    """The account's rights on a folder (RFC 4314 MYRIGHTS, e.g. "lrswipkxtecda"); None when the server has no
    ACLs or does not say. (imapclient has no call for it; this is how its own getacl calls imaplib.)"""
    if not client.has_capability("ACL"):
        return None
    try:
        data = client._command_and_check("myrights", client._normalise_folder(folder))
    except (IMAPClientError, imaplib.IMAP4.error):
        return None
    words = data[-1].split() if data and isinstance(data[-1], bytes) else []
    return words[-1].decode("ascii", "replace") if len(words) >= 2 else None


def _no_insert(client: IMAPClient, imap: ImapSettings, target: str) -> str | None:
    """Why mail cannot be moved into an existing target folder (no "i", insert, right), or None. Checked before a
    pass reads mail, or it would stop at its first alert on every poll."""
    rights = _my_rights(client, target)
    if rights is None or "i" in rights:
        return None
    return (f"{_target_key(imap, target)} {target!r}: {imap.username} may not put mail into it (the server gives "
            f"the rights {rights!r}, without 'i'); give the account that right on it, or set "
            f"{_target_key(imap, target)} to a folder it may write (or imap.mark = \"flag\")")


def _folder_fix(client: IMAPClient, imap: ImapSettings, target: str) -> str:
    """How to name a folder this server lets the account create."""
    return _prefix_fix(client, imap, target) or (
        f"set {_target_key(imap, target)} to a folder this account may create (the server has: "
        f"{_folder_list(client)}), or create it in your mail program, or set imap.mark = \"flag\"")


def check_mailbox(settings: Settings) -> tuple[list[str], list[str]]:
    """`digest check --connect`: log in as a poll does and look at what it would use, changing nothing on the
    server (no folder made, no mail read or marked). Returns (what was found, problems), each a line with the
    fix; raises ConfigError / MailboxError as a poll would (a refused login, an untrusted certificate)."""
    imap = settings.imap
    check_settings(settings, imap.folders)
    try:
        client = connect(settings)
    except _Lost as exc:
        return [], [f"imap: {exc}"]
    found, problems = [f"imap: logged in to {imap.host}:{imap.port} as {imap.username} ({imap.security})"], []
    try:
        # the server-wide checks first: after a read-only SELECT, imaplib refuses the next command
        if imap.idle:
            found.append("imap: IDLE offered: new mail is read as it arrives (imap.idle = true)"
                         if client.has_capability("IDLE") else
                         f"imap: {imap.host} does not offer IDLE, so imap.idle = true falls back to a poll every "
                         f"imap.poll_minutes = {imap.poll_minutes:g} min")
        if imap.mark == "move":
            if not (client.has_capability("MOVE") or client.has_capability("UIDPLUS")):
                problems.append(f"imap: {_no_move(imap)}")
            for target in (imap.processed_folder, imap.quarantine_folder):
                key = _target_key(imap, target)
                if client.folder_exists(target):
                    if problem := _no_insert(client, imap, target):
                        problems.append(f"imap: {problem}")
                    else:
                        found.append(f"imap: {key} {target!r} exists")
                elif fix := _prefix_fix(client, imap, target):
                    problems.append(f"imap: {key} {target!r} does not exist and cannot be made there: {fix}")
                else:
                    found.append(f"imap: {key} {target!r} does not exist yet; the first poll creates it")
        for name in imap.folders:
            try:
                info = _open_folder(client, imap, name)  # as a poll opens it (EXAMINE is always read-only)
                if imap.mark == "flag":
                    _check_keywords(info, imap, name)
            except _FolderError as exc:
                problems.append(f"imap: {exc}")
                continue
            count = int(info.get(b"EXISTS", 0))
            found.append(f"imap: folder {name!r}: {count} message{'' if count == 1 else 's'}, readable and "
                         f"{'keeps the keywords' if imap.mark == 'flag' else 'writable'}")
    except (OSError, imaplib.IMAP4.abort) as exc:
        problems.append(f"imap: connection to {imap.host} lost ({_describe(exc)}); try again")
    except IMAPClientError as exc:
        problems.append(f"imap: {imap.host} refused a command of the check: {_server_text(exc)}")
    finally:
        _close(client)
    return found, problems


def _sleep(stop: threading.Event | None, seconds: float) -> bool:
    """Sleep, waking early when stop is set. True if stopped."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


@contextlib.contextmanager
def _poll_lock(store: Store, stop: threading.Event | None, wait: float) -> Iterator[bool]:
    """One poll per database at a time (the scheduler and a manual `digest poll` may overlap)."""
    if store.path is None:
        yield True
        return
    with open(_lock_path(store), "a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or _sleep(stop, 0.2):
                    yield False
                    return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(store: Store) -> Path:
    return store.path.with_name(store.path.name + ".poll.lock")


def poll_running(store: Store) -> bool:
    """Whether a poll of this database holds its lock right now (`digest status` asks)."""
    if store.path is None or not _lock_path(store).exists():
        return False
    with open(_lock_path(store), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# the result a folder's poll state shows while its pass reads messages; its summary replaces it at the end, so
# a pass that never got there (killed, the machine went down) is told apart from one that is still reading
READING = re.compile(r": reading (\d+) new messages? after UID (\d+)$")


def reading_note(folder: str, n: int, after_uid: int) -> str:
    return f"{folder}: reading {n} new message{'' if n == 1 else 's'} after UID {after_uid}"


# -- one pass ----------------------------------------------------------------------------------------------
Progress = Callable[[str, int, str], None]


def poll_all(store: Store, settings: Settings, *, stop: threading.Event | None = None,
             folders: Sequence[str] | None = None, rescan: bool = False, progress: Progress | None = None,
             retries: int | None = None, backoff: float | None = None,
             lock_wait: float | None = None) -> PollReport:
    """One pass over the configured folders (or ``folders``): ingest new alerts, mark them, quarantine failures.

    ``rescan`` forgets the UID high-water marks (not the store): every unmarked message is looked at again,
    which re-reads skipped messages after ``imap.max_message_bytes`` was raised. ``progress(folder, uid,
    status)`` is called after each fetched message is committed and before it is marked on the server.
    ``stop`` ends the pass after the current message. ``retries``, ``backoff`` and ``lock_wait`` default to
    the module's RETRIES, BACKOFF and LOCK_WAIT.
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF if backoff is None else backoff
    lock_wait = LOCK_WAIT if lock_wait is None else lock_wait
    imap = settings.imap
    names = list(folders) if folders else list(imap.folders)
    try:
        check_settings(settings, names)
    except ConfigError as exc:  # a cron `digest poll` with a broken [imap] leaves the reason for `digest status`
        store.log_event("ERROR", "poll", " ".join(str(exc).split()))
        raise
    report = PollReport()
    with _poll_lock(store, stop, lock_wait) as locked:
        if not locked:
            report.error = (f"another poll of {store.path} is still running; this pass was skipped "
                            "(the next one will read what it leaves)")
            summary_log.warning("imap: %s", report.error)  # the pass's one line (the CLI prints it itself)
            return report
        if rescan:
            for name in names:
                if store.poll_state(mailbox_key(imap, name)):
                    store.set_poll_state(mailbox_key(imap, name), last_uid=0)
        session = _Session(settings)
        try:
            for name in names:
                if stop is not None and stop.is_set():
                    break
                folder = FolderReport(name, mailbox_key(imap, name), whole=rescan)
                report.folders.append(folder)
                _poll_with_retries(session, store, settings, folder, report, stop, progress, retries, backoff)
                store.set_poll_state(folder.mailbox, result=folder.summary())
                (summary_log.error if folder.error else summary_log.info)("imap: %s", folder.summary())
                if report.error:
                    store.log_event("ERROR", "poll", report.error)
                    break
                if folder.error:
                    store.log_event("ERROR", "poll", f"{name}: {folder.error}")
        except (ConfigError, MailboxError) as exc:  # a refused login, an untrusted certificate: for `digest status`
            message = " ".join(str(exc).split())
            store.log_event("ERROR", "poll", message)  # as the daemon words it: one event
            # and on each folder's "last poll" line, which otherwise went on showing the last good pass
            for name in names[len(report.folders) - 1 if report.folders else 0:]:
                store.set_poll_state(mailbox_key(imap, name), result=f"{name}: error: {message}")
            raise
        finally:
            session.close()
    return report


def _poll_with_retries(session: _Session, store: Store, settings: Settings, folder: FolderReport,
                       report: PollReport, stop: threading.Event | None, progress: Progress | None,
                       retries: int, backoff: float) -> None:
    failures = 0
    while True:
        try:
            _poll_folder(session, store, settings, folder, stop, progress)
            return
        except imaplib.IMAP4.readonly:  # an abort by class, but the folder's state, not the connection's
            session.drop()
            folder.error = _read_only(settings.imap, folder.folder)
            return
        except (_Lost, OSError, imaplib.IMAP4.abort) as exc:
            # the server went away or the network broke: what is committed is committed, and every
            # message is marked only after its commit, so starting the folder again is always safe
            session.drop()
            failures += 1
            reason = str(exc) if isinstance(exc, _Lost) else f"connection to {settings.imap.host} lost " \
                                                              f"({_describe(exc)})"
            if failures > retries:
                report.error = folder.error = (f"imap: {reason}; gave up after {failures} attempts "
                                               "(the next poll resumes where this one stopped)")
                return
            delay = backoff * 2 ** (failures - 1)
            log.warning("imap: %s; reconnecting in %.1f s (attempt %d of %d)", reason, delay, failures, retries)
            if _sleep(stop, delay):
                folder.stopped = True
                return
        except _FolderError as exc:
            folder.error = str(exc)
            return


def _first_look(client: IMAPClient, store: Store, folder: FolderReport, uidvalidity: int, days: int,
                unmarked: list[str]) -> int:
    """The first poll of a folder reads the mail of the last ``days`` days (by the server's arrival date), not a
    folder's whole history: years of alerts would all be today's candidates, and embedding them would hold the
    first digest up for hours. Returns the UID high-water mark under which the older mail stays (kept in the
    store at once, so a retry after a lost connection starts from it too)."""
    if not days:  # the whole folder (imap.first_poll_days = 0, or `digest poll --rescan`)
        store.set_poll_state(folder.mailbox, uidvalidity=uidvalidity, last_uid=0)
        return 0
    since = datetime.now(UTC).date() - timedelta(days=days)
    # without UIDNEXT, the highest UID there is asked first: mail arriving meanwhile is after it, and read
    everything = None if folder.uidnext else max(client.search(["ALL"]), default=0)
    recent = client.search(["SINCE", since])
    if recent:
        last = min(recent) - 1
    else:  # nothing recent: everything there now is older
        last = folder.uidnext - 1 if folder.uidnext else everything
    older = client.search(["UID", f"1:{last}", *unmarked]) if last else []
    folder.left_alone, folder.left_since = len([uid for uid in older if uid <= last]), since
    store.set_poll_state(folder.mailbox, uidvalidity=uidvalidity, last_uid=last)
    if folder.left_alone:
        message = (f"{folder.folder}: first look at this folder: reading mail from {since} on (imap.first_poll_days "
                   f"= {days}); {folder.left_alone} older message{'' if folder.left_alone == 1 else 's'} left "
                   f"alone (`digest poll --rescan` reads them)")
        log.info("imap: %s", message)
        store.log_event("INFO", "poll", message)
    return last


def _poll_folder(session: _Session, store: Store, settings: Settings, folder: FolderReport,
                 stop: threading.Event | None, progress: Progress | None) -> None:
    imap = settings.imap
    client = session.client()
    session.prepare_targets()
    info = _open_folder(client, imap, folder.folder)
    uidvalidity = int(info[b"UIDVALIDITY"])
    folder.uidvalidity, folder.uidnext = uidvalidity, info.get(b"UIDNEXT")
    state = store.poll_state(folder.mailbox)
    # never read: no state, or only a failed attempt's (a refused login, a missing folder, a lost connection
    # before the first look was done): the first look is still to come
    first = state is None or state["uidvalidity"] is None
    last = 0
    if state and state["uidvalidity"] == uidvalidity:
        last = state["last_uid"] or 0
    elif not first:
        # the server renumbered the folder (restored, migrated, recreated): our UIDs mean nothing now.
        # Look at every unmarked message again; Message-IDs and paper ids keep the store free of copies.
        folder.rescanned = True
        message = (f"{folder.folder}: UIDVALIDITY changed ({state['uidvalidity']} -> {uidvalidity}); "
                   "rescanning the folder")
        log.warning("imap: %s", message)
        store.log_event("WARNING", "poll", message)
        store.set_poll_state(folder.mailbox, uidvalidity=uidvalidity, last_uid=0)
    if imap.mark == "flag":
        _check_keywords(info, imap, folder.folder)
    unmarked = ["NOT", "KEYWORD", imap.processed_flag, "NOT", "KEYWORD", imap.quarantine_flag] \
        if imap.mark == "flag" else []
    if first:
        last = _first_look(client, store, folder, uidvalidity, 0 if folder.whole else imap.first_poll_days,
                           unmarked)
    criteria: list[str] = ["UID", f"{last + 1}:*"]
    # marked mail is skipped by the server itself; the high-water mark skips what we left untouched
    criteria += unmarked
    # "UID n:*" also matches the last message when n is past it (RFC 3501): filter on our side
    uids = sorted(uid for uid in client.search(criteria) if uid > last)
    log.debug("imap: %s: %d messages to look at after UID %d", folder.folder, len(uids), last)
    if uids:
        store.set_poll_state(folder.mailbox, result=reading_note(folder.folder, len(uids), last))
    walker = _Walker(session, client, store, settings, folder, uidvalidity, progress)
    for start in range(0, len(uids), FETCH_BATCH):
        if not walker.walk(uids[start:start + FETCH_BATCH], stop):
            folder.stopped = True
            return
    if folder.uidnext and folder.uidnext - 1 > walker.last_uid(last):
        # every message below UIDNEXT (as of SELECT) was in the search above and is handled now
        store.set_poll_state(folder.mailbox, last_uid=folder.uidnext - 1)


def _open_folder(client: IMAPClient, imap: ImapSettings, name: str) -> dict:
    """SELECT a folder read-write, as reading and marking its mail needs; _FolderError when it is missing or
    read-only for the account (a lost connection is raised as it is)."""
    try:
        info = client.select_folder(name)
    except imaplib.IMAP4.readonly:  # imaplib's answer to a SELECT the server granted read-only
        raise _FolderError(_read_only(imap, name)) from None
    except imaplib.IMAP4.abort:
        raise
    except IMAPClientError as exc:
        raise _FolderError(f"cannot open folder {name!r} on {imap.host}: {_server_text(exc)}; check imap.folders "
                           f"(the server has: {_folder_list(client)})") from None
    if info.get(b"READ-ONLY"):
        raise _FolderError(_read_only(imap, name))
    return info


def _no_move(imap: ImapSettings) -> str:
    return (f"{imap.host} supports neither MOVE nor UIDPLUS, so mail cannot be moved safely; set imap.mark = "
            "\"flag\" (read mail then gets a keyword instead of a move)")


def _read_only(imap: ImapSettings, name: str) -> str:
    return (f"folder {name!r} is read-only for {imap.username}, so read mail cannot be marked; give the account "
            "write access or poll another folder (imap.folders)")


def _folder_list(client: IMAPClient) -> str:
    """The folders that can be polled (not the \\Noselect parents of a hierarchy)."""
    try:
        names = [name for flags, _, name in client.list_folders()
                 if not {f.lower() for f in flags} & {b"\\noselect", b"\\nonexistent"}]
    except IMAPClientError:
        return "unknown"
    return ", ".join(sorted(names)) or "no folders"


def _check_keywords(info: dict, imap: ImapSettings, name: str) -> None:
    allowed = set(info.get(b"PERMANENTFLAGS", ()))
    if b"\\*" in allowed:
        return
    for flag in (imap.processed_flag, imap.quarantine_flag):
        if flag.encode() not in allowed:
            raise _FolderError(f"folder {name!r} does not keep the keyword {flag} (its PERMANENTFLAGS are "
                               f"{' '.join(f.decode() for f in sorted(allowed)) or 'empty'}); set imap.mark = "
                               "\"move\" to move read mail to imap.processed_folder instead")


class _Walker:
    """Handles the messages of one folder in UID order, fetching bodies in modest batches."""

    def __init__(self, session: _Session, client: IMAPClient, store: Store, settings: Settings,
                 folder: FolderReport, uidvalidity: int, progress: Progress | None):
        self.session, self.client, self.store, self.settings = session, client, store, settings
        self.imap = settings.imap
        self.folder, self.uidvalidity, self.progress = folder, uidvalidity, progress
        self._last: int | None = None

    def last_uid(self, default: int) -> int:
        return self._last if self._last is not None else default

    def _advance(self, uid: int) -> None:
        # the high-water mark moves only once this message is fully handled (committed and marked)
        self.store.set_poll_state(self.folder.mailbox, last_uid=uid)
        self._last = uid

    def walk(self, uids: list[int], stop: threading.Event | None) -> bool:
        """Handle these UIDs in order. False if stop was set."""
        meta = self.client.fetch(uids, ["RFC822.SIZE", "FLAGS"])
        plan: list[tuple[int, str, int]] = []  # (uid, action, size)
        for uid in uids:
            item = meta.get(uid)
            if item is None:
                continue  # expunged since the search
            size = int(item.get(b"RFC822.SIZE") or 0)
            flags = {f.decode() if isinstance(f, bytes) else f for f in item.get(b"FLAGS", ())}
            seen = self.store.message_seen(self.folder.mailbox, self.uidvalidity, uid)
            status = seen["status"] if seen else None
            if status in PROCESSED:
                # committed by an earlier pass that died before marking it: mark it now, no fetch needed
                plan.append((uid, "mark" if self.imap.processed_flag not in flags else "done", size))
            elif status == "not_alert":
                plan.append((uid, "done", size))
            elif size > self.imap.max_message_bytes:
                plan.append((uid, "done" if status == "skipped" else "skip", size))
            else:
                plan.append((uid, "fetch", size))  # new, or failed before (parse it again)
        bodies: dict[int, tuple[bytes, datetime | None]] = {}
        for index, (uid, action, size) in enumerate(plan):
            if stop is not None and stop.is_set():
                return False
            if action == "mark":
                self._mark_processed(uid)
            elif action == "skip":
                self._record_oversize(uid, size)
            elif action == "fetch":
                if uid not in bodies:
                    bodies.update(self._fetch_bodies([p for p in plan[index:] if p[1] == "fetch"]))
                fetched = bodies.pop(uid, None)
                if fetched is None:
                    continue  # expunged meanwhile; nothing to record
                self._handle(uid, *fetched)
            self._advance(uid)
        return True

    def _fetch_bodies(self, pending: list[tuple[int, str, int]]) -> dict[int, tuple[bytes, datetime | None]]:
        """{uid: (the message, when it reached the server)} for the next batch of ``pending``."""
        batch, total = [], 0
        for uid, _, size in pending:
            if batch and (len(batch) >= BODY_BATCH or total + size > BODY_BATCH_BYTES):
                break
            batch.append(uid)
            total += size
        # BODY.PEEK[]: RFC822 or BODY[] would set \Seen on the user's mail
        # INTERNALDATE: when the server received it, which orders an email vote among the reader's web votes
        data = self.client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
        return {uid: (data[uid][b"BODY[]"], _arrival(data[uid].get(b"INTERNALDATE")))
                for uid in batch if uid in data and b"BODY[]" in data[uid]}

    def _handle(self, uid: int, raw: bytes, received_at: datetime | None = None) -> None:
        folder = self.folder
        folder.fetched += 1
        label = f"{folder.folder} UID {uid}"
        try:
            # with the settings, ingest_raw recognises votes sent by email before parsing alerts
            status, report = ingest_raw(self.store, raw, mailbox=folder.mailbox, uidvalidity=self.uidvalidity,
                                        uid=uid, label=label, settings=self.settings, received_at=received_at)
        except (sqlite3.Error, StoreError):
            raise  # the database itself is unusable: not a problem of this message
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the other messages
            log.exception("imap: %s: the parser crashed", label)
            error = f"the parser crashed: {type(exc).__name__}: {exc}"
            self.store.record_message(mailbox=folder.mailbox, uidvalidity=self.uidvalidity, uid=uid,
                                      message_id=None, status="failed", error=error)
            status, report = "failed", IngestReport(emails=1, failed=1, errors=[f"{label}: {error}"])
        if status == "seen":  # recorded meanwhile (another process): act on what the store says
            seen = self.store.message_seen(folder.mailbox, self.uidvalidity, uid)
            status = seen["status"] if seen else "seen"
        if status == "ingested":
            folder.ingested += 1
        elif status == "duplicate":
            folder.duplicates += 1
        elif status == "feedback":
            folder.feedback += 1
        elif status == "feedback_rejected":
            folder.feedback_rejected += 1
        elif status == "not_alert":
            folder.not_alerts += 1
        elif status == "failed":
            folder.failed += 1
            folder.problems.extend(f"quarantined: {e}" for e in report.errors)
        folder.new_papers += report.new
        folder.merged_papers += report.merged
        for warning in [*report.warnings, *report.unread]:  # read in part (cut short), or read like an alert
            log.warning("imap: %s", warning)  # of a layout no parser knows: named in `digest status` too
        log.debug("imap: %s: %s (%d new papers, %d merged)", label, status, report.new, report.merged)
        if self.progress is not None:
            self.progress(folder.folder, uid, status)
        if status in PROCESSED:
            self._mark_processed(uid)
        elif status == "failed":
            self._quarantine(uid)
            # (each error already starts with the message's label: "INBOX UID 168: ...")
            self.store.log_event("WARNING", "poll", f"quarantined {'; '.join(report.errors)}")

    # -- marking: only ever after the commit ------------------------------------------------------------
    def _mark_processed(self, uid: int) -> None:
        if self.imap.mark == "flag":
            self.client.add_flags([uid], [self.imap.processed_flag], silent=True)
        else:
            self._move(uid, self.imap.processed_folder)
        self.folder.marked += 1

    def _quarantine(self, uid: int) -> None:
        if self.imap.mark == "flag":
            self.client.add_flags([uid], [self.imap.quarantine_flag], silent=True)
        else:
            self._move(uid, self.imap.quarantine_folder)

    def _move(self, uid: int, target: str) -> None:
        client = self.client
        self.session.ensure_folder(target)
        try:
            if client.has_capability("MOVE"):
                client.move([uid], target)
            elif client.has_capability("UIDPLUS"):
                # COPY + \Deleted + UID EXPUNGE of this one UID is a move: never EXPUNGE the user's other mail
                client.copy([uid], target)
                client.add_flags([uid], ["\\Deleted"], silent=True)
                client.uid_expunge([uid])
            else:
                raise _FolderError(_no_move(self.imap))
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as exc:
            raise _FolderError(f"cannot move UID {uid} from {self.folder.folder!r} to {target!r} "
                               f"({_target_key(self.imap, target)}): {_server_text(exc)}") from None

    def _record_oversize(self, uid: int, size: int) -> None:
        """Record why we do not read it (with its headers, so `digest status` can say which mail it was)."""
        folder, limit = self.folder, self.imap.max_message_bytes
        headers = b""
        data = self.client.fetch([uid], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM)]"]).get(uid, {})
        for key, value in data.items():
            if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
                headers = value
        msg = email.message_from_bytes(headers, policy=email.policy.default)
        subject = str(msg.get("Subject", "") or "")
        sender = email.utils.parseaddr(str(msg.get("From", "") or ""))[1].lower()
        error = (f"message is {size:,} bytes, over imap.max_message_bytes = {limit:,}; raise the limit and run "
                 "`digest poll --rescan` to read it")
        self.store.record_message(mailbox=folder.mailbox, uidvalidity=self.uidvalidity, uid=uid,
                                  message_id=str(msg.get("Message-ID", "") or "").strip() or None,
                                  subject=subject, sender=sender, status="skipped", error=error)
        folder.skipped += 1
        problem = f"{folder.folder} UID {uid} ({subject or 'no subject'}): {error}"
        folder.problems.append(f"skipped: {problem}")
        log.warning("imap: skipped %s", problem)
        self.store.log_event("WARNING", "poll", f"skipped {problem}")


# -- IDLE --------------------------------------------------------------------------------------------------
def idle_wait(settings: Settings, timeout: float, *, stop: threading.Event | None = None,
              folder: str | None = None, folders: Sequence[str] | None = None,
              since: PollReport | None = None) -> bool:
    """Wait for new mail with IMAP IDLE, at most ``timeout`` seconds. True: new mail, poll now.

    Watches ``folder``, or every folder of ``folders`` (default: all of imap.folders). IDLE watches one
    folder per connection, so several folders are watched over one connection each, in threads; the first
    that sees mail (or loses its connection) ends the wait for all. ``since``, the report of the poll that
    just ran, closes the gap between that poll and the IDLE: if a folder's UIDNEXT grew meanwhile, this
    returns True at once. Returns True when a connection breaks (poll to see what changed), False when the
    timeout passes or ``stop`` is set. A server without IDLE, or one that cannot be reached, just waits out
    the timeout. Raises MailboxError / ConfigError like :func:`poll_all` when the account cannot be used as
    configured; with several folders only when none of them can be watched (a folder that cannot is logged
    and the others are watched: the polls report it too).
    """
    names = [folder] if folder else list(dict.fromkeys(folders or settings.imap.folders or ["INBOX"]))
    if len(names) == 1:
        return _idle_wait_one(settings, names[0], timeout, stop, since)
    wake = threading.Event()  # set by the first watch that ends with news, by ``stop``, or when all failed
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def watch(name: str) -> None:
        try:
            results[name] = _idle_wait_one(settings, name, timeout, wake, since)
        except Exception as exc:  # raised below, in the caller's thread, if no folder could be watched
            errors.append(exc)
        if results.get(name) or len(errors) == len(names):
            wake.set()

    threads = [threading.Thread(target=watch, args=(name,), name=f"idle {name}", daemon=True) for name in names]
    for thread in threads:
        thread.start()
    while alive := [thread for thread in threads if thread.is_alive()]:
        if stop is not None and stop.is_set():
            wake.set()
        alive[0].join(0.2)
    if errors and len(errors) == len(names):
        raise errors[0]
    for error in errors:
        log.warning("imap: IDLE: %s; the other folders are watched", error)
    return any(results.values())


def _idle_wait_one(settings: Settings, name: str, timeout: float, stop: threading.Event | None,
                   since: PollReport | None) -> bool:
    """:func:`idle_wait` on one folder, over its own connection."""
    imap = settings.imap
    deadline = time.monotonic() + timeout
    try:
        client = connect(settings)
    except _Lost as exc:
        log.warning("imap: %s; next poll in %.0f s", exc, timeout)
        _sleep(stop, timeout)
        return False
    try:
        try:
            info = client.select_folder(name, readonly=True)
            before = since.folder(name) if since is not None else None
            if (before is not None and before.uidnext and info.get(b"UIDNEXT")
                    and (info.get(b"UIDVALIDITY") != before.uidvalidity or info[b"UIDNEXT"] > before.uidnext)):
                return True  # mail arrived between that poll's SELECT and now
            if not client.has_capability("IDLE"):
                log.info("imap: %s does not support IDLE; polling every %.0f s instead", imap.host, timeout)
                _sleep(stop, max(0.0, deadline - time.monotonic()))
                return False
        except (OSError, imaplib.IMAP4.abort) as exc:
            log.info("imap: connection to %s lost (%s)", imap.host, _describe(exc))
            return True
        except IMAPClientError as exc:
            raise MailboxError(f"imap: cannot watch folder {name!r} on {imap.host}: {_server_text(exc)}; "
                               "check imap.folders") from None
        return _idle(client, name, deadline, stop)
    finally:
        _close(client)


def _new_mail(responses: Sequence) -> bool:
    return any(len(r) > 1 and r[1] == b"EXISTS" for r in responses)


def _idle(client: IMAPClient, name: str, deadline: float, stop: threading.Event | None) -> bool:
    """IDLE on the selected folder until EXISTS, the deadline or stop; renewed every IDLE_RENEW seconds."""
    host = client.host
    idling = False
    try:
        client.idle()
        idling = True
        renew_at = time.monotonic() + IDLE_RENEW
        while True:
            now = time.monotonic()
            if (stop is not None and stop.is_set()) or now >= deadline:
                return False
            if now >= renew_at:
                # DONE and NOOP both carry what changed meanwhile: look at it, or that mail waits a whole poll
                idling = False
                if _new_mail(client.idle_done()[1]) or _new_mail(client.noop()[1]):
                    return True
                client.idle()
                idling = True
                renew_at = time.monotonic() + IDLE_RENEW
            # short slices when a stop event is given, so a shutdown is not held up by the IDLE
            wait = min(deadline - now, renew_at - now, 1.0 if stop is not None else deadline - now)
            started = time.monotonic()
            responses = client.idle_check(timeout=wait)
            if _new_mail(responses):
                log.debug("imap: IDLE: new mail in %s", name)
                return True
            if any(r[0] == b"BYE" for r in responses):
                idling = False
                return True
            if not responses and time.monotonic() - started < wait / 2:
                # the socket was readable but held no line: the server closed the connection
                idling = False
                log.info("imap: IDLE connection to %s closed by the server", host)
                return True
    except (OSError, imaplib.IMAP4.abort) as exc:
        idling = False
        log.info("imap: IDLE connection to %s lost (%s)", host, _describe(exc))
        return True
    except IMAPClientError as exc:
        # e.g. an EXISTS that raced the IDLE command itself: whatever it was, a poll will sort it out
        log.info("imap: IDLE on %s ended: %s", host, _server_text(exc))
        return True
    finally:
        if idling:
            with contextlib.suppress(Exception):
                client.idle_done()
