"""Feedback: the web app behind the 👍 / 👎 / unsubscribe links, and votes sent back by email.

Public surface::

    create_app(settings) -> Starlette          the ASGI app (opens its own Store per request)
    build_server(settings, host, port)         a uvicorn.Server for an asyncio loop (the scheduler)
    serve(settings, host, port)                run it in the foreground (`digest serve`)
    handle_reply(store, settings, raw, ...)    recognise and record a vote sent by email (the poller path)
    vote_mailto(reply_address, token, ...)     the mailto: link that sends one vote by email

The web rules (STYLE.md 7): a link carries only a signed token (``tokens.py``). GET never changes state: it
shows the paper, the vote and one button. The button POSTs the same token back (no cookies, no session:
the token is the credential, so a cross-site form cannot forge a vote without it). Votes are idempotent and
can be undone from the same page. Unsubscribing pauses the user in the store (``pauses``), never by
editing their profile; RFC 8058 one-click POSTs are honoured. Every response carries strict security
headers; bodies over ``web.max_body_bytes`` get 413, clients over ``web.rate_limit_per_minute`` get 429,
and an error is always a friendly page, never a traceback.

Votes by email (no public web server needed): each digest carries ``mailto:`` links whose subject holds the
vote token, and a plain reply to the digest may contain lines like ``+1 -3`` (vote on items 1 and 3). The
poller hands every message to ``pipeline.ingest_raw``, which asks ``handle_reply`` first. A vote is recorded
only if the sender is the address in that user's profile; anything else is recorded as
``feedback_rejected`` with the reason, and never parsed as a paper alert.
"""

from __future__ import annotations

import collections
import contextlib
import email
import email.errors
import email.policy
import functools
import hashlib
import hmac
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .config import READ_ONLY_MOUNT, Secret, Settings, ascii_domain, without_tag
from .errors import DigestError, StoreError, TokenError
from .models import ScoredPaper
from .store import Store, another_users_database, database_problem, schema_without_opening, unwritable_files
from .tokens import (
    FROM_PAGE,
    TOKEN_RE,
    VOTE_VALUES,
    ExpiredToken,
    InvalidToken,
    TokenData,
    WrongToken,
    expect,
    link_path,
    read_token,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STYLESHEET = TEMPLATES / "page_style.css"
VOTE_LABELS = {"up": ("👍", "More like this"), "down": ("👎", "Less like this")}
SEARCH_CHARS = 200  # a digest page's search reads this much of its query...
SEARCH_RESULTS = 20  # ...and shows this many papers
# how long a click waits for another process's write lock before the reader is told it was not recorded (503).
# Each waiting click holds one of the server's 40 worker threads: with SQLite's 30 s, clicks queued behind 40
# others waited 30 s for a thread and 30 s for the lock, past the 60 s a request may take, and their connections
# were closed with no answer at all; a reader also waited half a minute to learn the click failed.
WEB_LOCK_WAIT = 10.0
# a link that does not verify or leads nowhere was most often cut or altered on its way out of the email
OPEN_FROM_EMAIL = "Open the link straight from your digest email; some mail programs break long links when copying."

# what a digest page says under the paper just voted on
DONE_NOTES = {"up": "Thanks, recorded: 👍 More like this.", "down": "Thanks, recorded: 👎 Less like this.",
              "undo": "Vote removed.",
              # an Undo from a page showing a vote the reader has changed since (another window, an email vote)
              "kept": "Nothing to undo here: this vote was changed after the page showed it (in another window or "
                      "by email); the one shown now stands."}

# Sent with every response. Pages have no scripts at all; the one stylesheet is same-origin. Tokens are in
# URLs, so no Referer may ever carry them elsewhere, and nothing may be cached or framed.
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
    "cross-origin-opener-policy": "same-origin",
}


# ======================================================================================================
# votes by email
# ======================================================================================================
VIA_EMAIL = "email"
SUBJECT_TOKEN = re.compile(r"\[vote:\s*(" + TOKEN_RE.pattern + r")\s*\]")
# one vote in a reply: +3, -3 (phones may turn the minus into − or –)
REPLY_VOTE = re.compile(r"([+\-−–])(\d{1,3})")
# where the quoted digest starts in a plain-text reply: "On ... wrote:", Outlook's header block, a signature
QUOTE_START = re.compile(r"^(On .{0,200}wrote:?|Le .{0,200}a écrit\s?:?|Am .{0,200}schrieb.{0,60}:?|"
                         r"El .{0,200}escribió:?|Em .{0,200}escreveu:?|Il .{0,200}ha scritto:?|"
                         r"Op .{0,200}schreef.{0,60}:?|.{0,200}写道[:：]?|"
                         r"-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)"
                         r"\s*-{2,}|_{10,}|"
                         # Outlook's header block, in the languages it is most often set to
                         r"(From|Von|De|Da|Van|Från|Fra|Od|От|发件人|差出人|寄件者)\s?[:：]\s.*|"
                         # ...and in any other language: a label of a word or three, then the sender's address
                         # (bounded, and the address's parts without "@": linear on any line a stranger sends)
                         r"[^\W\d_]{1,40}( [^\W\d_]{1,40}){0,2}\s?[:：]\s.{0,200}?"
                         r"(<[^<>\s@]{1,64}@[^<>\s@]{1,255}>|\[mailto:[^\]\s@]{1,64}@[^\]\s@]{1,255}\]).*|"
                         r"-- ?)$", re.IGNORECASE)
# a vote may end its sentence: "+12, +13."
VOTE_END = ".!"


@dataclass(frozen=True)
class ReplyOutcome:
    """What ``handle_reply`` made of a message: 'feedback', 'feedback_rejected' or 'duplicate'."""

    status: str
    user: str | None = None
    changed: int = 0  # votes that changed in the store
    votes: tuple[tuple[str, int], ...] = ()
    reason: str = ""  # why it was rejected, or notes on a partly understood reply
    message_id: str | None = None


def vote_mailto(reply_address: str, token: str, action: str, title: str) -> str:
    """A mailto: link that sends one vote: the token rides in the subject, which clients keep as it is."""
    emoji, label = VOTE_LABELS[action]
    short = " ".join(title.split()).replace("[", "(").replace("]", ")")  # a "[vote:...]" in a title is no token
    short = short if len(short) <= 60 else short[:59].rstrip() + "…"
    subject = f"{emoji} {label}: {short} [vote:{token}]"
    body = (f"Send this email as it is: digest records {emoji} {label.lower()} for “{short}”.\n"
            "Your next digest takes it into account. (Anything you add here is ignored.)\n")
    return f"mailto:{quote(reply_address, safe='@')}?subject={quote(subject, safe='')}&body={quote(body, safe='')}"


def reply_votes(text: str) -> list[tuple[int, int]]:
    """The (item number, +1/-1) votes in the user's own part of a reply, in order.

    Only lines made of votes alone count ("+1 -3", "+2, +5"), so a phone number in a signature or a
    sentence like "-3 degrees" never becomes a vote. Quoted text and everything after the quote header or
    the signature separator is ignored; but where the header is followed by text quoted line by line ("> "),
    the lines between and after the quoted ones are the reader's (a reply written below, or between, the
    quoted lines, as mutt and Thunderbird users do).
    """
    votes = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            continue
        if QUOTE_START.match(stripped):
            following = next((rest.strip() for rest in lines[i + 1:] if rest.strip()), "")
            if following.startswith(">") and not stripped.startswith("--"):
                continue  # the quoted text is marked line by line: what is not marked is the reader's
            break
        words = [w for w in re.split(r"[\s,;]+", stripped) if w]
        matches = [REPLY_VOTE.fullmatch(w.rstrip(VOTE_END)) for w in words]
        if words and all(matches):
            votes.extend((int(m.group(2)), 1 if m.group(1) == "+" else -1) for m in matches)
    return votes


def _fresh_text(msg: EmailMessage) -> str:
    """The plain text of a reply (from its HTML, minus quoted blocks, if it has no text part)."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        return ""
    if part.get_content_type() == "text/html":
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(content, "html.parser")
        for quoted in soup.select("blockquote, .gmail_quote"):  # first: an Outlook header inside one is theirs
            # a line marked quoted in its place, so text written below it still reads as the reader's
            quoted.replace_with("\n> (quoted)\n")
        # Outlook quotes the earlier message after its header block (not inside it, nor in a blockquote):
        # everything from that block on, bare text too, is quoted text, earlier votes included
        header = soup.select_one("#divRplyFwdMsg, #appendonsend, #mail-editor-reference-message-container")
        if header is not None:
            for later in list(header.next_elements):
                later.extract()
            header.decompose()
        for br in soup.find_all(["br", "p", "div"]):
            br.insert_after("\n")
        content = soup.get_text()
    return content


def _message_ids(msg: EmailMessage) -> list[str]:
    """The Message-IDs a reply refers to, nearest parent first, with and without their angle brackets."""
    ids = []
    for header in ("In-Reply-To", "References"):
        ids.extend(re.findall(r"<[^<>\s]+>", _header(msg, header)))
    ids = list(dict.fromkeys(reversed(ids)))
    return ids + [i.strip("<>") for i in ids]


def _header(msg: EmailMessage, name: str) -> str:
    try:
        return str(msg.get(name) or "")
    except (ValueError, TypeError, IndexError):  # a malformed header must not stop the poller
        return ""


_HARMLESS_DEFECTS = (email.errors.ObsoleteHeaderDefect, email.errors.UndecodableBytesDefect)


def _sender(msg: EmailMessage) -> tuple[str, str]:
    """(the one address of the From header, lower case; '' and why when there is not exactly one, well formed).

    Strict on purpose: a vote counts only from the user's own address, and a header such as
    ``ada@example.org <mallory@evil.example>`` or ``ada@example.org, mallory@...`` (Python's parser takes ada,
    the sender's provider authenticates mallory) or a second From line must not pass for the user."""
    try:
        headers = msg.get_all("From") or []
        if len(headers) != 1:
            return "", f"{len(headers)} From headers" if headers else "no From header"
        header = headers[0]
        addresses = getattr(header, "addresses", ())
        # defects that make the address doubtful; an unquoted "Jane Q. Doe" (obsolete) or a raw UTF-8 name does not
        doubtful = [d for d in getattr(header, "defects", ()) if not isinstance(d, _HARMLESS_DEFECTS)]
        if doubtful or len(addresses) != 1 or "@" not in addresses[0].addr_spec:
            return "", f"a From header that is not one well-formed address ({' '.join(str(header).split())[:120]!r})"
        # raw UTF-8 in the address (mail sent with SMTPUTF8) comes out of the parser as surrogates: read it
        spec = addresses[0].addr_spec.encode("utf-8", "surrogateescape").decode("utf-8", "replace").lower()
        try:  # a profile keeps an internationalised domain in its ASCII form: compare in that form
            return ascii_domain(spec), ""
        except UnicodeError:
            return spec, ""
    except (ValueError, TypeError, IndexError, AttributeError):  # a header the parser cannot read
        return "", "a From header that cannot be read"


def handle_reply(store: Store, settings: Settings, raw: bytes, *, mailbox: str, uidvalidity: int = 0,
                 uid: int = 0, key: Secret | None = None, received_at: datetime | None = None) -> ReplyOutcome | None:
    """Recognise a vote sent by email, check it and record it with its message. ``None``: not feedback.

    Feedback is a message with a vote token in its subject (a digest's mailto: link) or a reply to a digest
    we sent (its In-Reply-To / References name the digest's Message-ID). Either way the sender must be the
    address in that user's profile. Votes are written before the message row, so a crash in between only
    means the message is read again and the (idempotent) votes set again.

    ``received_at``: when the mail server received the message (IMAP's INTERNALDATE). The votes count as given
    then: a vote the reader gave on the web after it stands (the poller may read the email minutes or hours
    later), and the token's age is judged then.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = " ".join(_header(msg, "Subject").split())
    # the last: a prepared vote email puts its token at the end, after the paper's title (where a planted
    # "[vote:...]" of an alert's title could stand in a subject written by hand)
    found = next(reversed(list(SUBJECT_TOKEN.finditer(subject))), None)
    digest_row = store.digest_by_message_id(_message_ids(msg))
    if not found and digest_row is None:
        return None
    sender, sender_problem = _sender(msg)
    # a reply without a Message-ID (rare) is known by its bytes, so reading it again (a new UIDVALIDITY, another
    # folder) cannot set its votes over the ones given since
    message_id = _header(msg, "Message-ID").strip() or f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@digest.invalid>"

    def finish(status: str, user: str | None, reason: str = "", votes: Sequence[tuple[str, int]] = ()):
        from .pipeline import reader_names

        # a renamed reader has one vote on a paper, the last given, whichever name the digest or token carried
        changed = store.record_votes(user, votes, VIA_EMAIL, also=reader_names(store, settings, user),
                                     as_of=as_of) if votes and user else 0
        store.record_message(mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, message_id=message_id,
                             subject=subject[:300], sender=sender, kind="feedback", status=status,
                             error=reason or None)
        if status == "feedback_rejected":
            store.log_event("WARNING", "feedback", f"email vote from {sender or '(no sender)'} ignored: {reason}",
                            user=user)
        else:
            log.info("email vote by %s: %d vote(s), %d changed", user, len(votes), changed)
            if reason:  # recorded, but part of it was not a vote ("+99" on a digest of ten): say which part
                store.log_event("WARNING", "feedback", f"email vote from {sender}: recorded {len(votes)}, "
                                f"ignored the rest: {reason}", user=user)
        return ReplyOutcome(status, user, changed, tuple(votes), reason, message_id)

    if message_id and store.message_by_message_id(message_id):
        return ReplyOutcome("duplicate", message_id=message_id)  # the same reply in another folder
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return finish("feedback_rejected", None, f"an automatic reply (Auto-Submitted: {auto}), not a vote")

    received_at = received_at.astimezone(UTC) if received_at else None  # a time without a zone is local time
    as_of = received_at.isoformat(timespec="seconds") if received_at else None
    # read hours (the daemon down) after it was sent: its token is as old as it was when it arrived
    late = (datetime.now(UTC) - received_at).total_seconds() / 86400 if received_at else 0.0
    data, token_problem = None, ""
    if found:
        try:
            data = expect(read_token(key or settings.web.secret_key(settings.data_path), found.group(1),
                                     max_age_days=settings.web.token_max_age_days + max(late, 0.0)),
                          actions=("up", "down"))
        except TokenError as exc:
            token_problem = f"vote token refused: {exc}"
            if digest_row is None:
                return finish("feedback_rejected", None, token_problem)
        # a reply to a digest keeps the digest's subject, made of paper titles, which come from alerts anyone
        # can send: a "[vote:...]" there that is not that reader's own vote is part of a title, not the vote
        if data is not None and digest_row is not None and data.user != digest_row["user"]:
            data = None
    if data is not None:
        user, votes, notes = data.user, [(data.paper_id, data.value)], ""
    else:
        user = digest_row["user"]
        ranks = store.digest_numbers(digest_row["id"])  # the email's items, then the runners-up on its page
        wanted = reply_votes(_fresh_text(msg))
        votes = [(ranks[n], value) for n, value in wanted if n in ranks]
        unknown = sorted({n for n, _ in wanted if n not in ranks})
        in_email = digest_row["n_items"] or 0
        counts = (f"{in_email} items in the email, {len(ranks) - in_email} more on its page" if len(ranks) > in_email
                  else f"{len(ranks)} items")
        notes = (f"no item {', '.join(map(str, unknown))} in the digest of {digest_row['period']} ({counts})"
                 if unknown else "")
        if not votes:
            return finish("feedback_rejected", user, notes or token_problem or "a reply to a digest without votes (write "
                          "+N or -N on a line of its own, e.g. \"+1 -3\")")
        votes = list({pid: (pid, value) for pid, value in votes}.values())  # "+1 -1": the last one wins

    from .pipeline import user_address

    address = user_address(store, settings, user)
    if address is None:
        return finish("feedback_rejected", user, f"no profile for user {user!r}")
    if sender_problem:
        return finish("feedback_rejected", user, f"{sender_problem}: a vote counts only from the user's own address")
    if sender not in (address.lower(), without_tag(address.lower())):
        # the token or the digest may have been forwarded: only the user's own address can vote for them
        return finish("feedback_rejected", user, f"sender {sender or '(none)'} is not the address of user {user}")
    return finish("feedback", user, notes, votes)


# ======================================================================================================
# the web app
# ======================================================================================================
def _when(stamp: str | None) -> str:
    """'2025-03-01T07:30:12+00:00' -> '2025-03-01 07:30 UTC' (the store keeps UTC ISO strings)."""
    return f"{stamp[:16].replace('T', ' ')} UTC" if stamp else ""


@functools.cache
def _pages(directory: str) -> jinja2.Environment:
    from .render import printable

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=True,
                             undefined=jinja2.StrictUndefined, finalize=printable)
    env.filters["when"] = _when
    return env


def _base_path(settings: Settings) -> str:
    """The path prefix of the public URL (behind a reverse proxy at /digest, links are /digest/vote/...)."""
    return urlsplit(settings.web.base_url).path.rstrip("/")


def _page(settings: Settings, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _pages(str(TEMPLATES)).get_template(template).render(
        static=f"{_base_path(settings)}/static", **context)
    # the headers are set here too, so even the 500 page (sent outside the middleware) carries them
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _sent_on(sent: dict | None) -> str:
    """The day of the digest a paper went out in (a ``Store.sent_record``), as a page shows it; '' if not sent."""
    from .render import date_label

    return date_label(date.fromisoformat(sent["period"])) if sent and sent["period"] else ""


def _error_page(settings: Settings, status: int, title: str, message: str, hint: str = "",
                foot: str = "Nothing was changed.") -> HTMLResponse:
    response = _page(settings, "page_error.html", status, title=title, message=message, hint=hint, foot=foot)
    if status == 503:
        response.headers["retry-after"] = "60"  # what the page asks of a reader, for a client that reads headers
    return response


def _token_error_page(settings: Settings, exc: TokenError) -> HTMLResponse:
    titles = {410: "This link has expired", 403: "This link is not valid", 400: "This link does not fit here"}
    status = getattr(exc, "status", 400)
    hint = (f"Links stay valid for {settings.web.token_max_age_days} days. The links in your latest digest work."
            if isinstance(exc, ExpiredToken) else
            OPEN_FROM_EMAIL if isinstance(exc, InvalidToken) else "")
    return _error_page(settings, status, titles.get(status, "This link is not valid"), str(exc), hint)


class _Limited(Exception):
    """A request body grew past ``web.max_body_bytes`` while streaming."""


class SecurityHeaders:
    """ASGI middleware: the headers of ``SECURITY_HEADERS`` on every response the app sends."""

    def __init__(self, app):
        self.app = app
        self.raw = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.raw if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_secure)


def read_only_fix(problem: str) -> str:
    """What to do about a database the server cannot write (``problem``: store.unwritable_files's words or a write's
    error): a read-only mount is no matter of users and permissions."""
    if READ_ONLY_MOUNT in problem or "read-only file system" in problem.lower():
        return ("no vote can be recorded on a read-only file system: remount it read-write, or point data_dir at a "
                "writable disk")
    return ("this process cannot write the database, so no vote can be recorded: run the server as the user "
            "that owns the data folder, or give this user write access to the database file and its folder")
UNLIMITED = ("/healthz", "/static/page.css")  # paths the rate limit does not count


class RateLimit:
    """ASGI middleware: at most ``per_minute`` requests per client address in any 60 s (sliding window).

    The client address is the one uvicorn reports, which honours X-Forwarded-For only from trusted proxies
    (127.0.0.1 by default), so behind a local reverse proxy each reader has their own budget. /healthz and
    the stylesheet are exempt, so monitoring never locks readers out and a page costs one request.
    """

    MAX_CLIENTS = 10_000

    def __init__(self, app, per_minute: int, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.app, self.per_minute, self.settings, self.clock = app, per_minute, settings, clock
        self.hits: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self.lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 if this request may go on, else the seconds until it may."""
        now = self.clock()
        with self.lock:
            window = self.hits.pop(client, None) or collections.deque()
            self.hits[client] = window  # most recently seen last, so the oldest clients are dropped first
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.per_minute:
                return 60 - (now - window[0])
            window.append(now)
            while len(self.hits) > self.MAX_CLIENTS:
                self.hits.popitem(last=False)
        return 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in UNLIMITED or self.per_minute <= 0:
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.allow(client)
        if wait:
            seconds = max(1, int(wait + 0.999))
            # "this address" read as the link's address (a broken link?): say whose requests, and what was lost
            response = _error_page(self.settings, 429, "Too many requests",
                                   "Too many requests came from your connection in the last minute, so this one "
                                   "was not handled: if it was a vote, it was not recorded.",
                                   f"Wait {seconds} second{'' if seconds == 1 else 's'}, then open the link or "
                                   "press the button again.")
            response.headers["retry-after"] = str(seconds)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length or while it streams in."""

    def __init__(self, app, max_bytes: int, settings: Settings):
        self.app, self.max_bytes, self.settings = app, max_bytes, settings

    def too_large(self) -> HTMLResponse:
        return _error_page(self.settings, 413, "Request too large",
                           f"This server accepts requests of at most {self.max_bytes} bytes.")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self.too_large()(scope, receive, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _Limited
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _Limited:
            if not started:
                await self.too_large()(scope, receive, send)


@dataclass
class _App:
    """The endpoints, bound to one settings object and signing key."""

    settings: Settings
    key: Secret
    # /healthz's own worker threads: the 40 that every request shares can all be held by clicks waiting out another
    # process's write lock (10 s each, in turn), and a monitor asking then waited behind them and called it down
    _health_threads: Any = None

    # -- helpers ----------------------------------------------------------------------------------------
    def with_store(self, fn: Callable[[Store], T]) -> T:
        # one connection per request, in a worker thread: SQLite connections are not shared across threads
        # removed while serving: never start an empty one in its place; files this process may not write are
        # not opened (SQLite would leave -wal and -shm files as read-only as the database, which stay so after it
        # is fixed and keep the store unwritable)
        if problem := another_users_database(self.settings.db_path):
            raise StoreError(problem)
        store = Store(self.settings.db_path, create=False)
        try:
            with store.lock_wait(WEB_LOCK_WAIT):
                return fn(store)
        finally:
            store.close()

    def token(self, request: Request, actions: tuple[str, ...]) -> TokenData:
        token = request.path_params["token"]
        max_age = self.settings.web.token_max_age_days
        if actions != ("unsubscribe",):
            return expect(read_token(self.key, token, max_age_days=max_age), actions=actions)
        # the email's unsubscribe link works however old it is; one a page handed out expires with that page's
        # link, so a shared 👍 link never turns into lasting control over someone's digests
        data = expect(read_token(self.key, token, max_age_days=None), actions=actions)
        return read_token(self.key, token, max_age_days=max_age) if data.paper_id == FROM_PAGE else data

    async def form(self, request: Request) -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=10)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    @staticmethod
    def same_token(request: Request, form: dict[str, str]) -> None:
        """The form must POST back the token of its URL (a form built elsewhere with another token fails)."""
        if not hmac.compare_digest(form.get("token", "").encode(), request.path_params["token"].encode()):
            raise WrongToken("The form and its link do not match. Open the link from your digest again.")

    # -- endpoints --------------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        def look(store: Store) -> tuple[int, str | None]:
            return store.schema_version, store.write_problem()

        import anyio.to_thread

        if self._health_threads is None:  # made in the server's event loop, on the first health check
            self._health_threads = anyio.CapacityLimiter(2)
        try:
            if problem := unwritable_files(self.settings.db_path):  # told without opening it (see with_store)
                version = await anyio.to_thread.run_sync(schema_without_opening, self.settings.db_path,
                                                         limiter=self._health_threads)
            else:
                version, problem = await anyio.to_thread.run_sync(self.with_store, look, limiter=self._health_threads)
        except Exception as exc:  # the point of a health check: say what is wrong, with a 503
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "error", "error": type(exc).__name__}, status_code=503)
        if problem:  # pages would show, but no vote could be recorded
            log.warning("health check failed: %s: %s; %s", self.settings.db_path, problem, read_only_fix(problem))
            return JSONResponse({"status": "error", "error": "read-only", "schema": version}, status_code=503)
        return JSONResponse({"status": "ok", "schema": version})

    async def robots(self, request: Request) -> Response:
        return PlainTextResponse("User-agent: *\nDisallow: /\n")

    async def stylesheet(self, request: Request) -> Response:
        # the one response that may be cached (it carries no token): a page of votes loads it once
        return Response(STYLESHEET.read_bytes(), media_type="text/css",
                        headers={"cache-control": "public, max-age=3600"})

    async def index(self, request: Request) -> Response:
        return _page(self.settings, "page_error.html", 200, title="digest",
                     message="This server records the votes from your paper digest.",
                     hint="Use the 👍 / 👎 links in a digest email.", foot="")

    async def vote_get(self, request: Request) -> Response:
        data = self.token(request, ("up", "down"))
        done = request.query_params.get("done", "")
        return await run_in_threadpool(self.with_store, lambda s: self._vote_page(s, data, request, done))

    def _vote_page(self, store: Store, data: TokenData, request: Request, done: str) -> HTMLResponse:
        papers = store.get_papers([data.paper_id])
        paper = next(iter(papers.values()), None)
        if paper is None:
            return _error_page(self.settings, 404, "Paper not found",
                               "This paper is no longer in the digest's library, so it cannot take a vote.")
        from .render import date_label, paper_url, short_authors

        emoji, label = VOTE_LABELS[data.action]
        # the digest this link most likely came from
        readers = self.readers(store, data.user)
        sent_in = store.latest_digest_with(readers, data.paper_id)
        current = store.votes_on(readers, [store.resolve_id(data.paper_id)]).get(store.resolve_id(data.paper_id), 0)
        return _page(self.settings, "page_vote.html", title=" ".join(paper.title.split()), url=paper_url(paper),
                     authors=short_authors(paper.authors, count=paper.author_count), emoji=emoji, label=label, value=data.value,
                     current=current, done=done,
                     token=request.path_params["token"],
                     digest_url=self._link(data, "digest", str(sent_in["id"])) if sent_in else "",
                     digest_date=date_label(date.fromisoformat(sent_in["period"])) if sent_in else "")

    async def vote_post(self, request: Request) -> Response:
        data = self.token(request, ("up", "down"))
        form = await self.form(request)
        self.same_token(request, form)
        do = form.get("do", "vote")
        if do not in ("vote", "undo"):
            raise WrongToken("Unknown request.")

        def apply(store: Store) -> Response:
            if store.get_papers([data.paper_id]) == {}:
                return _error_page(self.settings, 404, "Paper not found",
                                   "This paper is no longer in the digest's library, so it cannot take a vote.")
            readers = self.readers(store, data.user)  # a renamed reader has one vote, under whichever name
            if do == "vote":
                changed = store.record_vote(data.user, data.paper_id, data.value, via="web", also=readers)
            else:  # undo only what this link set (checked in the same statement: a vote cast meanwhile stays)
                changed = any([store.undo_vote(name, data.paper_id, via="web", value=data.value) for name in readers])
            if changed:
                log.info("vote %s by %s on %s via web", do if do == "undo" else data.action, data.user,
                         data.paper_id)
            # Post/Redirect/Get: reloading the result page never posts again. A relative Location keeps
            # working behind any proxy prefix without trusting the Host header.
            return RedirectResponse(f"{request.path_params['token']}?done={'voted' if do == 'vote' else 'undone'}",
                                    status_code=303)

        return await run_in_threadpool(self.with_store, apply)

    # -- a digest's own page: read it again, vote on several papers ----------------------------------------
    def readers(self, store: Store, user: str) -> list[str]:
        """The names of the reader a link names: theirs, then earlier file names of their profile (by the
        address their profile file names now, or the stored last good texts)."""
        from .pipeline import reader_names

        return reader_names(store, self.settings, user)

    def _digest_row(self, store: Store, data: TokenData, readers: Sequence[str]) -> dict | None:
        """The digest a page token names, if it is the reader's (under their current or an earlier name)."""
        row = store.find_digest(int(data.paper_id)) if (data.paper_id or "").isdigit() else None
        return row if row is not None and row["user"] in readers else None

    def _link(self, data: TokenData, action: str, paper_id: str | None = None) -> str:
        """A link to another page of this app, relative to a page at /ACTION/TOKEN (no Host header trusted). It
        expires with the token of the page it is on: following links never makes access last longer."""
        return f"../{link_path(self.key, data.user, action, paper_id, issued_at=data.issued_at)}"

    async def digest_get(self, request: Request) -> Response:
        data = self.token(request, ("digest",))
        query = request.query_params
        done = query.get("done", "") if query.get("done") in DONE_NOTES else ""
        # where the vote just made was: a paper's number in the digest, or (after a search) a paper id
        at = query.get("item", "") or query.get("paper", "")
        search = " ".join(query.get("q", "").split())[:SEARCH_CHARS]
        return await run_in_threadpool(self.with_store, lambda s: self._digest_page(
            s, data, request, done, at, search))

    def _digest_page(self, store: Store, data: TokenData, request: Request, done: str, at: str,
                     search: str) -> HTMLResponse:
        from .render import date_label

        readers = self.readers(store, data.user)
        row = self._digest_row(store, data, readers)
        if row is None:
            return _error_page(self.settings, 404, "Digest not found",
                               "This digest is not in the store (any more), so there is nothing to show.")
        issued = data.issued
        entries, more = store.digest_papers(row["id"]), store.digest_papers(row["id"], more=True)
        below = store.digest_papers(row["id"], below=True)
        listed, n_above = [*entries, *more, *below], len(entries) + len(more)
        votes = store.votes_on(readers, [pid for _, pid, _ in listed])
        items = []
        for place, (number, pid, item) in enumerate(listed):
            sent = store.sent_record(readers, pid) if place >= len(entries) else None
            items.append(self._page_item(store, item, pid, votes.get(pid, 0), done if at == str(number) else "",
                                         number=number, sent_on=_sent_on(sent), below=place >= n_above))
        numbers = {pid: number for number, pid, _ in listed}
        found, n_found = self._found(store, readers, search, issued, numbers, done, at) if search else ([], 0)
        # the reader's other digests, as far as they had begun when this page's link was made, and this page's
        # own digest always (a copy resent after a crash was claimed again, later; one not sent yet is shown too)
        sent = store.sent_digests(readers)
        begun = [d for d in sent if d["id"] != row["id"] and d["claimed_at"] is not None and d["claimed_at"] <= issued]
        series = [d["id"] for d in sorted([*begun, row], key=lambda d: (d["period"], d["id"]))]
        here = series.index(row["id"])
        earlier = series[here - 1] if here else None
        later = series[here + 1] if here + 1 < len(series) else None
        newer = later is None and bool(sent) and sent[-1]["id"] != row["id"]
        return _page(self.settings, "page_digest.html", items=items[:len(entries)], more=items[len(entries):n_above],
                     below=items[n_above:], floor=row["floor"],
                     n_loose=sum(1 for _, _, item in below if "loose" in item.details),
                     # unfolded where a vote was just made, and on a quiet day's page (nothing else to show)
                     below_open=not entries or any(i["done"] or at == str(i["number"]) for i in items[n_above:]),
                     token=request.path_params["token"], date_label=date_label(date.fromisoformat(row["period"])),
                     n_candidates=row["n_candidates"] or 0, voted=sum(1 for i in items[:len(entries)] if i["vote"]),
                     voted_more=sum(1 for i in items[len(entries):n_above] if i["vote"]), newer_elsewhere=newer,
                     earlier=self._link(data, "digest", str(earlier)) if earlier else "",
                     later=self._link(data, "digest", str(later)) if later else "",
                     unsubscribe=self._link(data, "unsubscribe", FROM_PAGE), reply=bool(self.settings.web.reply_address),
                     search=search, found=found, n_found=n_found)

    def _page_item(self, store: Store, item: ScoredPaper, pid: str, vote: int, done: str,
                   sources: Sequence[str] | None = None, **extra: Any) -> dict:
        """One paper of a digest page: the email's context, the whole abstract, the reader's vote, and the note
        under it when it was just voted on (only while the note still says how things are: a reload of an old
        ?done= address after the vote changed elsewhere says nothing)."""
        from .render import TEXT_LIMIT, item_context, shorten

        context = item_context(item, store.paper_sources(pid) if sources is None else sources, "", "")
        # the email's first lines of the abstract, and the rest a click away (no script: <details>)
        whole = shorten(item.paper.abstract or item.paper.snippet, TEXT_LIMIT * 100)
        noted = bool(done) and (vote != 0 if done == "kept" else vote == {"up": 1, "down": -1, "undo": 0}[done])
        # a digest's paper has its number on the page; a paper a search found, its place in the results (key)
        return {**context, "whole": whole if whole != context["text"] else "", "vote": vote,
                "done": DONE_NOTES[done] if noted else "", "pid": pid, "number": 0, "key": 0, "sent_on": "", "below": False, **extra}

    def _found(self, store: Store, readers: Sequence[str], search: str, issued: str, numbers: dict[str, int],
               done: str, at: str) -> tuple[list[dict], int]:
        """The papers of the store a page's search finds (those that had arrived when the page's link was made:
        a forwarded link shows nothing newer), each with what became of it for this reader."""
        from .render import date_label

        rows, total = store.search_papers(search, arrived_by=issued, limit=SEARCH_RESULTS)
        votes = store.votes_on(readers, [r["id"] for r in rows])
        found = []
        for key, r in enumerate(rows, start=1):
            pid = r["id"]
            sent_on = "" if pid in numbers else _sent_on(store.sent_record(readers, pid))
            status = ("" if pid in numbers else  # the page links to its place above instead
                      f"sent in your digest of {sent_on}" if sent_on else
                      f"arrived {date_label(date.fromisoformat(r['first_seen'][:10]))}, not sent to you")
            found.append(self._page_item(store, ScoredPaper(r["paper"], 0.0, ""), pid, votes.get(pid, 0),
                                         done if at == pid else "", r["sources"], key=key, status=status,
                                         here=numbers.get(pid, 0)))
        return found, total

    async def digest_post(self, request: Request) -> Response:
        data = self.token(request, ("digest",))
        form = await self.form(request)
        self.same_token(request, form)
        do, number, paper = form.get("do", ""), form.get("item", ""), form.get("paper", "")
        if do not in ("up", "down", "undo") or not ((number.isascii() and number.isdigit()) or (paper and not number)):
            raise WrongToken("Unknown request.")
        search, key = " ".join(form.get("q", "").split())[:SEARCH_CHARS], form.get("key", "")

        def apply(store: Store) -> Response:
            readers = self.readers(store, data.user)
            row = self._digest_row(store, data, readers)
            if paper:  # a paper the page's search found: any paper of the store that had arrived by the link
                pid = store.resolve_id(paper)
                arrived = store.first_seen(pid)
                if row is None or arrived is None or arrived > data.issued:
                    return _error_page(self.settings, 404, "Paper not found",
                                       "There is no such paper among those this page can search, so it cannot "
                                       "take a vote.")
            else:
                papers = store.digest_numbers(row["id"]) if row else {}
                item = int(number) if len(number) <= 6 else None  # "9" x 5000 is no item (nor a 500)
                if item not in papers:
                    return _error_page(self.settings, 404, "Paper not found",
                                       "This digest has no such paper, so it cannot take a vote.")
                pid = papers[item]
            if do == "undo":  # the vote the page showed, whichever of the reader's names gave it
                # only if it is still that vote (checked in the same statement): a 👎 given in another window or by
                # email after this page showed a 👍 stays, as with a single vote's link
                shown = {"1": 1, "-1": -1}.get(form.get("shown", ""))
                changed = any([store.undo_vote(name, pid, via="web", value=shown) for name in readers])
                note = "kept" if not changed and store.votes_on(readers, [pid]).get(pid) else do
            else:
                changed, note = store.record_vote(data.user, pid, VOTE_VALUES[do], via="web", also=readers), do
            if changed:
                log.info("vote %s by %s on %s via the digest page%s", do, data.user, pid,
                         " (a search)" if paper else "")
            # Post/Redirect/Get back to the same paper on the page (relative Location, as for single votes)
            token = request.path_params["token"]
            if paper:
                where = "#found-" + key if key.isascii() and key.isdigit() else "#search"
                return RedirectResponse(f"{token}?{urlencode({'q': search, 'done': note, 'paper': pid})}{where}",
                                        status_code=303)
            return RedirectResponse(f"{token}?done={note}&item={number}#item-{number}", status_code=303)

        return await run_in_threadpool(self.with_store, apply)

    def pause_of(self, store: Store, user: str) -> dict | None:
        """The pause that holds a reader's digests: set under the link's name or another name of the same reader
        (a renamed profile: delivery honours a pause under its earlier file name, so the page shows it too)."""
        return next(filter(None, (store.pause_of(name) for name in self.readers(store, user))), None)

    def resume(self, store: Store, user: str) -> None:
        """Lift the reader's pauses under each of their names (as `digest resume` does), so Resume resumes."""
        for name in self.readers(store, user):
            store.resume_user(name, via="web")

    async def unsubscribe_get(self, request: Request) -> Response:
        data = self.token(request, ("unsubscribe",))
        done = request.query_params.get("done", "")
        pause = await run_in_threadpool(self.with_store, lambda s: self.pause_of(s, data.user))
        return _page(self.settings, "page_unsubscribe.html", user=data.user, pause=pause, done=done,
                     token=request.path_params["token"])

    async def unsubscribe_post(self, request: Request) -> Response:
        data = self.token(request, ("unsubscribe",))
        body = await request.body()  # cached: form() below reads it again
        form = await self.form(request)
        if form.get("List-Unsubscribe") == "One-Click" or body.strip() == b"List-Unsubscribe=One-Click":
            # RFC 8058: the mail provider POSTs this on the reader's behalf (form-encoded, multipart, or
            # bare from lax clients); answer with the result page, no redirect to follow
            def pause(store: Store) -> dict | None:
                store.pause_user(data.user, via="one-click")
                return self.pause_of(store, data.user)

            paused = await run_in_threadpool(self.with_store, pause)
            log.info("digests of %s paused (one-click unsubscribe)", data.user)
            return _page(self.settings, "page_unsubscribe.html", user=data.user, pause=paused, done="paused",
                         token=request.path_params["token"])
        self.same_token(request, form)
        do = form.get("do")
        if do == "pause":
            await run_in_threadpool(self.with_store, lambda s: s.pause_user(data.user, via="web"))
        elif do == "resume":
            await run_in_threadpool(self.with_store, lambda s: self.resume(s, data.user))
        else:
            raise WrongToken("Unknown request.")
        log.info("digests of %s %s via web", data.user, "paused" if do == "pause" else "resumed")
        return RedirectResponse(f"{request.path_params['token']}?done={do}d", status_code=303)


def _by_method(get, post):
    """One endpoint for an address that takes GET (and HEAD) and POST."""
    async def endpoint(request: Request) -> Response:
        return await (post if request.method == "POST" else get)(request)
    return endpoint


def create_app(settings: Settings, *, key: Secret | None = None) -> Starlette:
    """The feedback web app. Links are built from ``web.base_url`` elsewhere; this app never trusts Host.

    ``key`` defaults to ``settings.web.secret_key(data_dir)`` (read once, here: restart after rotating).
    """
    key = key or settings.web.secret_key(settings.data_path)
    Store(settings.db_path).close()  # migrate once, before the first request
    app = _App(settings, key)

    async def on_token_error(request: Request, exc: Exception) -> Response:
        return _token_error_page(settings, exc)  # type: ignore[arg-type]

    async def on_http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        titles = {404: ("Page not found", "There is nothing at this address."),
                  405: ("Not allowed", "This address does not accept that kind of request."),
                  413: ("Request too large", f"This server accepts at most {settings.web.max_body_bytes} bytes.")}
        title, message = titles.get(status, ("Request refused", "The server could not handle this request."))
        response = _error_page(settings, status, title, message, OPEN_FROM_EMAIL if status == 404 else "")
        for name, value in (getattr(exc, "headers", None) or {}).items():
            response.headers[name] = value
        return response

    async def on_gone(request: Request, exc: Exception) -> Response:
        # the reader's connection dropped in the middle of sending (a phone losing signal): nothing was read,
        # nothing changed, and no one is left to answer
        log.info("feedback server: the client left during %s %s; nothing was changed", request.method,
                 request.url.path.split("/")[1:2])
        return PlainTextResponse("", status_code=400)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("feedback server error on %s %s", request.method, request.url.path.split("/")[1:2])
        # not "nothing was changed": the crash may come after a vote was written; a vote given again counts once
        return _error_page(settings, 500, "Something went wrong",
                           "The server failed while handling this link, so it cannot say whether your click counted.",
                           "Open the link again in a minute: a vote counts once however often it is given. If it "
                           "keeps happening, tell whoever runs your digest.", foot="")

    async def on_database_error(request: Request, exc: Exception) -> Response:
        # the store's trouble (a full disk, a lock held elsewhere, a damaged file): one line with the cause and
        # the fix for whoever runs it, not a traceback; the reader learns their click was not recorded
        log.error("feedback server: %s %s: %s", request.method, request.url.path.split("/")[1:2],
                  database_problem(settings.db_path, exc, waited=WEB_LOCK_WAIT))
        return _error_page(settings, 503, "Not available right now",
                           "The digest's database cannot be used right now, so this click was not recorded.",
                           "Try the link again later. If it keeps happening, tell whoever runs your digest.")

    async def on_digest_error(request: Request, exc: Exception) -> Response:
        log.error("feedback server: %s", exc)
        return _error_page(settings, 503, "Not available right now", "The digest's data is not available.",
                           "Try again in a minute.")

    routes = [
        Route("/", app.index, methods=["GET"]),
        Route("/healthz", app.healthz, methods=["GET"]),
        Route("/robots.txt", app.robots, methods=["GET"]),
        Route("/static/page.css", app.stylesheet, methods=["GET"]),
        # one route per address, so that a 405 names every method it takes (Allow: GET, HEAD, POST)
        Route("/vote/{token}", _by_method(app.vote_get, app.vote_post), methods=["GET", "POST"]),
        Route("/digest/{token}", _by_method(app.digest_get, app.digest_post), methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", _by_method(app.unsubscribe_get, app.unsubscribe_post),
              methods=["GET", "POST"]),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(RateLimit, per_minute=settings.web.rate_limit_per_minute, settings=settings),
        Middleware(BodyLimit, max_bytes=settings.web.max_body_bytes, settings=settings),
    ]
    handlers = {TokenError: on_token_error, HTTPException: on_http_error, DigestError: on_digest_error,
                sqlite3.DatabaseError: on_database_error, ClientDisconnect: on_gone, Exception: on_crash}
    starlette = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    # no "add a slash" redirects: Starlette builds them from the Host header, which this app never trusts
    starlette.router.redirect_slashes = False
    return starlette


# A client that opens a connection must send a whole request head within this many seconds (of opening, or of
# the last response on a kept-alive connection), and a request may take at most REQUEST_ROUNDS such periods
# in all (a body sent a byte at a time): otherwise the connection is closed. uvicorn alone never closes a
# connection that has not sent a first request, so 100 idle sockets (limit_concurrency) locked every reader out.
REQUEST_SECONDS = 10.0
REQUEST_ROUNDS = 6
# connections one address may hold open at once; the loopback (a reverse proxy in front) is not counted
PER_CLIENT = 20
# connections the server holds at once before it answers 503 (uvicorn's limit_concurrency): far above
# PER_CLIENT, so a few addresses keeping connections busy (a request every few seconds resets the deadline) do
# not lock every reader out, as 100 did; the file-descriptor limit is raised to fit when the system allows
MAX_CONNECTIONS = 1000


def _connection_limit() -> int:
    """MAX_CONNECTIONS, or what the open-file limit leaves room for (raised to fit where the hard limit allows)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return MAX_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_CONNECTIONS + 200  # the store, the model's files, the mail connections
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # never below uvicorn's usual 100 (what this server had before), whatever the limit
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(100, min(MAX_CONNECTIONS, soft - 200))


def _protocol(request_seconds: float, per_client: int) -> type:
    """uvicorn's HTTP/1.1 protocol with the deadlines and the per-address cap above."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by: dict[str, int] = {}

    class DeadlineProtocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._deadline, self._rounds = None, 0
            self._address = (self.client or ("",))[0] or ""
            if self._address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", ""):
                self._address = ""
            else:
                open_by[self._address] = open_by.get(self._address, 0) + 1
                if open_by[self._address] > per_client:
                    log.warning("feedback server: %s holds more than %d connections; closing the newest",
                                self._address, per_client)
                    transport.close()
                    return
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._address:
                open_by[self._address] -= 1
                if not open_by[self._address]:
                    del open_by[self._address]
                self._address = ""
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._rounds = 0
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(request_seconds, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy and self._rounds < REQUEST_ROUNDS - 1:  # a request under way: its body, or the app's answer
                self._rounds += 1
                self._arm()
            elif not self.transport.is_closing():
                self.transport.close()

    return DeadlineProtocol


def build_server(settings: Settings, host: str | None = None, port: int | None = None, *,
                 handle_signals: bool = True, request_seconds: float = REQUEST_SECONDS,
                 per_client: int = PER_CLIENT, **config: Any):
    """A ``uvicorn.Server`` for the app: ``server.run()``, or ``await server.serve()`` in a running loop.

    Inside a process that handles SIGTERM itself (the scheduler), pass ``handle_signals=False`` and stop
    the server with ``server.should_exit = True``; otherwise uvicorn takes SIGINT/SIGTERM while it runs
    (and re-raises them after its graceful shutdown). ``request_seconds`` and ``per_client``: the deadlines and
    the per-address cap of ``_protocol``. Extra keywords go to ``uvicorn.Config``.
    """
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    options = {"host": host or settings.web.host, "port": port if port is not None else settings.web.port,
               # tokens are bearer credentials in the URL path: no access log, so they never land in logs
               "access_log": False, "server_header": False, "proxy_headers": True,
               "limit_concurrency": _connection_limit(),
               "log_level": settings.log_level.lower(), "lifespan": "off",
               "http": _protocol(request_seconds, per_client), **config}
    server_class = uvicorn.Server if handle_signals else QuietServer
    return server_class(uvicorn.Config(create_app(settings), **options))


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the feedback server in the foreground until SIGINT/SIGTERM."""
    build_server(settings, host, port).run()


__all__ = ["ReplyOutcome", "build_server", "create_app", "handle_reply", "reply_votes", "serve",
           "vote_mailto"]
