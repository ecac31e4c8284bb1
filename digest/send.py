"""Delivery: the only module that speaks SMTP. Builds the MIME message, and sends it or writes it to an
outbox folder as a complete ``.eml`` (plus the ``.html`` for viewing).

What a failure does (``send_message``)::

    4xx reply, disconnect, timeout, refused connection   transient: retried here, a bounded number of times
                                                         with exponential backoff; then DeliveryError
    5xx reply to MAIL FROM, RCPT TO or DATA              permanent: DeliveryError(permanent=True) carrying
                                                         the server's reply; never retried
    TLS/certificate problem, STARTTLS not offered,       configuration: DeliveryError at once (retrying
    AUTH refused, no greeting where STARTTLS was meant   cannot help); not permanent, so the digest is sent
    (an implicit-TLS port)                               by the next run once the configuration is fixed

TLS is explicit configuration and never silently downgraded: ``security = "starttls"`` against a server that
does not offer STARTTLS fails; ``"plain"`` is accepted only for localhost (``config.load_settings``).

The caller learns the one moment that matters for exactly-once delivery through ``before_data``: it is
called right before the DATA command of every attempt. Before it, nothing can have been delivered; after
it, until the 250 reply, a crash or disconnect leaves the outcome unknown (see docs/delivery.md).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib

from .config import LOOPBACK, SmtpSettings, answers_tls
from .errors import ConfigError, DeliveryError
from .render import Rendered

log = logging.getLogger(__name__)

# Bodies are encoded (quoted-printable/base64, 76-char lines) when the message is built; headers are folded
# when it is serialised. The default 78-char folding would RFC 2047-encode a long URL in List-Unsubscribe
# (it has no place to fold), which mail clients then cannot use: allow long header lines instead (RFC 5322
# permits up to 998).
_WIRE = policy.SMTP.clone(max_line_length=998)
_FILE = policy.default.clone(max_line_length=998)
MAX_BACKOFF = 60.0
_HEADER_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# what a List-Id's label may be written as without quoting (RFC 5322 atext and spaces) and its id (a dot-atom)
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_DOT_ATOM = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def header_text(value: str) -> str:
    """A header value made of text from alerts or profiles (a paper's title, a user's name), made inert.

    Control characters go, and an RFC 2047 encoded word written *as text* (``=?utf-8?q?...=0D=0A...?=`` in a
    title) is broken with a word joiner after its ``=``: Python's email package decodes such a word in a string
    it is given and, before 3.12.5, wrote a CR LF decoded from it to the wire as a line break, so a title could
    add headers (a Bcc) or start the body. The reader sees the same text.
    """
    return " ".join(_HEADER_CONTROL.sub(" ", value).split()).replace("=?", "=\u2060?")


def list_id(sender: str, sender_name: str = "") -> str:
    """``Paper digest <paper-digest.example.org>`` (RFC 2919): one list per installation, named after the sender's
    domain, which mail programs and filters use to file, mute or rate the digests as one stream. The label is left
    out when it would need quoting or encoding (a comma, an accent): the id is what matters."""
    domain = sender.rsplit("@", 1)[-1].strip().lower()
    ident = f"paper-digest.{domain if _DOT_ATOM.fullmatch(domain) else 'localhost'}"
    label = header_text(sender_name)
    return f"{label} <{ident}>" if label and _PHRASE.fullmatch(label) else f"<{ident}>"


def build_message(rendered: Rendered, *, sender: str, sender_name: str, to: str, to_name: str = "",
                  message_id: str | None = None, date: datetime | None = None, unsubscribe_url: str | None = None,
                  unsubscribe_mailto: str | None = None, reply_to: str | None = None) -> EmailMessage:
    """A multipart/alternative message, text first, with a Message-ID, a List-Id and one-click unsubscribe
    (RFC 8058).

    Pass the same ``message_id`` for every attempt at one digest, so a copy that did arrive twice is
    recognisably the same message.
    """
    msg = EmailMessage()
    msg["Subject"] = header_text(rendered.subject)
    msg["From"] = Address(display_name=header_text(sender_name), addr_spec=sender)
    msg["To"] = Address(display_name=header_text(to_name), addr_spec=to) if to_name else to
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rsplit("@", 1)[-1])
    if reply_to:
        msg["Reply-To"] = reply_to
    targets = [f"<{u}>" for u in (unsubscribe_mailto, unsubscribe_url) if u]
    if targets:
        msg["List-Unsubscribe"] = ", ".join(targets)
        if unsubscribe_url:
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Id"] = list_id(sender, sender_name)
    # a machine-made message: no vacation auto-replies back to it
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Paper-Digest"] = "1"  # so a poller reading the user's own mailbox never takes it for an alert
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def message_bytes(msg: EmailMessage, *, for_file: bool = False) -> bytes:
    """The message as it goes on the wire (CRLF) or into a file (LF), with unfolded long URLs."""
    return msg.as_bytes(policy=_FILE if for_file else _WIRE)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outbox(msg: EmailMessage, html: str, outbox: Path, stem: str) -> Path:
    """Write ``stem.eml`` (the complete message) and ``stem.html`` into ``outbox``; returns the .eml path.
    A file of that name holding another message (another Message-ID) is never replaced: ``stem-2.eml`` then.

    Both writes are atomic (temp file + rename): a crash leaves the old file or the new one, never half.
    The files are private (mode 600): their feedback links act for the user.
    The .eml, the delivery itself, is written last: a write that fails leaves no .eml behind (a program that
    mails the outbox's files would send it, and the next run writes it again). Such a failure (a full disk, a
    read-only folder) is a DeliveryError naming the file and the fix; the next run writes the digest.
    """
    eml, target = outbox / f"{stem}.eml", outbox / f"{stem}.html"
    n = 1
    while _other_message(eml, msg["Message-ID"]):
        # another digest under this name (another store's: a mistyped --data-dir, two installs on one outbox):
        # kept, and this one written beside it; the same digest again (a retry, same Message-ID) replaces it
        n += 1
        eml, target = outbox / f"{stem}-{n}.eml", outbox / f"{stem}-{n}.html"
    try:
        _atomic_write(target, html.encode("utf-8"))
        target = eml
        _atomic_write(eml, message_bytes(msg, for_file=True))
    except OSError as exc:
        raise DeliveryError(f"cannot write {target}: {exc.strerror or exc}; {_outbox_fix(exc, outbox)}; nothing "
                            "was delivered, the next run writes it") from None
    return eml


def _other_message(path: Path, message_id: str | None) -> bool:
    """Whether ``path`` holds a message other than the one with ``message_id`` (no file: False)."""
    from email.parser import BytesHeaderParser

    try:
        with path.open("rb") as handle:
            headers = BytesHeaderParser().parse(handle)
    except OSError:
        return False  # none (or unreadable: then the write says what is wrong with the folder)
    return (headers["Message-ID"] or "").strip() != (message_id or "").strip()


def _outbox_fix(exc: OSError, outbox: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free some space on the disk of {outbox}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"make {outbox} writable for this user, or point outbox (config.toml, or --outbox) at a folder "
                "it can write")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"{outbox} must be a folder (or a path where one can be made): check outbox (config.toml, or --outbox)"
    return "check outbox (config.toml, or --outbox) and the disk"


# -- SMTP --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendResult:
    reply: str  # the server's reply to DATA, e.g. "250 2.0.0 Ok: queued as 4Xyz"
    attempts: int
    unconfirmed: str = ""  # why an earlier attempt's handover was not confirmed (a copy may have arrived twice)


TOO_LARGE = ("lower max_items in the profile (or default_max_items in config.toml), then `digest send --retry-failed` "
             "composes the day's digest again")

# RFC 5321 4.5.3.2.6: wait 10 minutes for the reply to the end of the data. The server is delivering the message
# then (filters, virus scans); a client that gives up sooner sends a second copy of a message it already took.
DATA_REPLY_TIMEOUT = 600.0


class _Transient(Exception):
    """An attempt failed in a way that another attempt may fix. ``unknown``: the connection broke during DATA,
    so the server may have taken the message; otherwise it certainly did not."""

    def __init__(self, message: str, *, unknown: bool = False):
        super().__init__(message)
        self.unknown = unknown


class _Final(Exception):
    """An attempt failed in a way that no retry in this run can fix."""

    def __init__(self, message: str, *, permanent: bool, too_large: bool = False):
        super().__init__(message)
        self.permanent, self.too_large = permanent, too_large


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The TLS context, built once per message. A bad smtp.ca_file is a configuration error with the fix."""
    if settings.security == "plain":
        return None
    cafile = str(Path(settings.ca_file).expanduser()) if settings.ca_file else None
    try:
        # certificate and host name are always checked; a private CA is added with smtp.ca_file, never bypassed
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"smtp.ca_file = {settings.ca_file!r} cannot be used ({exc}); point it at the PEM "
                            "certificate of the server's CA") from None


def _too_large(exc: aiosmtplib.SMTPResponseException) -> bool:
    """A refusal for the message's size (552 5.3.4, 5.2.3, or saying so), not a full mailbox (552 5.2.2)."""
    text = str(exc.message).lower()
    return exc.code == 552 and (text.startswith(("5.3.4", "5.2.3")) or
                                (not text.startswith("5.") and any(w in text for w in ("size", "too big", "too large",
                                                                                        "too much", "exceed"))))


def _reply(reply: aiosmtplib.SMTPResponse | aiosmtplib.SMTPResponseException) -> str:
    """A server's reply (or the error carrying it) on one line: "250 2.0.0 Ok: queued as 4Xyz"."""
    return f"{reply.code} {' '.join(str(reply.message).split())}"


def _where(settings: SmtpSettings) -> str:
    return f"{settings.host}:{settings.port} (smtp.security = \"{settings.security}\")"


def _tls_hint(settings: SmtpSettings, exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        return (f"TLS certificate of {settings.host} could not be verified ({text}); if the server uses a private "
                "CA, set smtp.ca_file to its certificate")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text.lower():
        return (f"{_where(settings)}: the server did not answer with TLS; implicit TLS is usually port 465 "
                "(security = \"tls\"), STARTTLS port 587 (security = \"starttls\")")
    return f"TLS with {_where(settings)} failed: {text}"


async def _attempt(data: bytes | None, sender: str, recipients: list[str], settings: SmtpSettings, password: str,
                   before_data: Callable[[], object] | None, tls_context: ssl.SSLContext | None) -> str:
    """One SMTP session: connect, (STARTTLS), (AUTH), MAIL, RCPT, DATA. Returns the reply to DATA. Without
    ``data``, a probe: the session ends with RSET after MAIL FROM, and nothing is sent."""
    security = settings.security
    client = aiosmtplib.SMTP(hostname=settings.host, port=settings.port, timeout=settings.timeout,
                             use_tls=security == "tls", start_tls=False,
                             tls_context=tls_context)
    stage = "connect"
    transmitted: list[bool] = []  # the message itself went out: from then on the server may have it
    try:
        try:
            await client.connect()
            if security == "starttls":
                stage = "STARTTLS"
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    # never fall back to sending the password and the mail in the clear
                    raise _Final(f"{_where(settings)} does not offer STARTTLS, so nothing was sent; fix the port "
                                 "or set security = \"tls\" for a server with implicit TLS", permanent=False)
                await client.starttls()
            if settings.username:
                stage = "AUTH"
                await client.login(settings.username, password)
            stage = "MAIL FROM"
            response = await client.mail(sender)
            if data is None:
                await client.rset()
                return _reply(response)
            stage = "RCPT TO"
            for rcpt in recipients:
                await client.rcpt(rcpt)
            limit = client.esmtp_extensions.get("size", "")
            if limit.isdigit() and 0 < int(limit) < len(data):
                # refused before DATA, not after transmitting the whole digest for the same answer
                raise _Final(f"the digest is {len(data) / 1000:.1f} KB and {settings.host} takes at most "
                             f"{int(limit) / 1000:.1f} KB (its SIZE); {TOO_LARGE}", permanent=True, too_large=True)
            if before_data is not None:
                before_data()
            stage = "DATA"
            response = await _data(client, data, settings.timeout, transmitted)
        except ssl.SSLError as exc:
            raise _Final(_tls_hint(settings, exc), permanent=False) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.code < 500:
                raise _Transient(f"{stage}: {_reply(exc)}") from None
            raise _Final(f"{settings.host} refused the login of {settings.username!r}: {_reply(exc)}; check "
                         f"smtp.username and the password in ${settings.password_env} or smtp.password_file",
                         permanent=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise _Transient(f"{stage}: {_reply(exc)}") from None
            if stage == "MAIL FROM":
                # the sender is ours, not the reader's: a setting to fix, after which the digest goes out
                raise _Final(f"MAIL FROM refused: {_reply(exc)}; check smtp.from_addr (many servers take only the "
                             "account's own address as the sender)", permanent=False) from None
            if stage == "DATA" and _too_large(exc):
                raise _Final(f"DATA refused: {_reply(exc)}; {TOO_LARGE}", permanent=True, too_large=True) from None
            if stage in ("RCPT TO", "DATA"):
                raise _Final(f"{stage} refused: {_reply(exc)}", permanent=True) from None
            raise _Final(f"{_where(settings)} refused {stage}: {_reply(exc)}", permanent=False) from None
        except aiosmtplib.SMTPConnectError as exc:
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                raise _Final(_tls_hint(settings, cause), permanent=False) from None
            if security != "tls" and isinstance(cause, aiosmtplib.SMTPReadTimeoutError):
                # connected, but no greeting: a port that waits for a TLS handshake (465) is a setting to fix; a
                # server that stalls (busy, hung, a greeting delay) is one to wait for
                if not await asyncio.to_thread(answers_tls, settings.host, settings.port, settings.timeout):
                    raise _Transient(f"connect: {_where(settings)} takes the connection but sends no greeting "
                                     f"within smtp.timeout = {settings.timeout:g} s (busy or stalled: it does not "
                                     "answer TLS either)") from None
                raise _Final(f"{_where(settings)} takes the connection but sends no greeting within smtp.timeout = "
                             f"{settings.timeout:g} s and answers TLS, as a port that expects TLS at once (like "
                             "465) does; nothing was sent; set smtp.security = \"tls\" for it, or use "
                             "the STARTTLS port (usually 587)", permanent=False) from None
            reason = "connection refused: nothing listens there" if isinstance(cause, ConnectionRefusedError) \
                else str(cause or exc)
            raise _Transient(f"connect: cannot reach {_where(settings)} ({reason}); check smtp.host and smtp.port "
                             "and that the server is up") from None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, TimeoutError, OSError) as exc:
            if stage == "DATA" and not transmitted:  # before the server's go-ahead: nothing of the message went out
                raise _Transient(f"DATA: {type(exc).__name__}: {exc}, before the server's 354 go-ahead (nothing was "
                                 "transmitted)") from None
            raise _Transient(f"{stage}: {type(exc).__name__}: {exc}", unknown=stage == "DATA") from None
        except aiosmtplib.SMTPException as exc:
            text = str(exc).strip().rstrip(".")
            if stage in ("STARTTLS", "AUTH"):
                if stage == "AUTH" and security == "plain" and "not supported" in text:
                    text += '; the server offers AUTH only over TLS: set smtp.security = "starttls"'
                raise _Final(f"{_where(settings)}: {stage} failed: {text}; nothing was sent",
                             permanent=False) from None
            raise _Transient(f"{stage}: {text}", unknown=stage == "DATA" and bool(transmitted)) from None
        except UnicodeEncodeError:
            raise _Final(f"{stage}: non-ASCII addresses are not supported ({sender} -> {recipients})",
                         permanent=True) from None
    finally:
        await _close(client)
    return _reply(response)


@functools.cache  # read once, at the first message sent (not at every import of this module)
def _watchable_data() -> bool:
    """Whether aiosmtplib sends DATA as ``_data`` expects (checked on 5.x): one ``execute_data_command`` writing
    b"DATA\\r\\n", then the message, through ``write``, each followed by ``read_response(timeout=...)``."""
    import inspect

    try:
        source = inspect.getsource(aiosmtplib.protocol.SMTPProtocol.execute_data_command)
        reads = inspect.signature(aiosmtplib.protocol.SMTPProtocol.read_response).parameters
    except (AttributeError, OSError, TypeError, ValueError):
        return False
    return 'self.write(b"DATA\\r\\n")' in source and source.count("self.read_response(timeout=") == 2 \
        and "timeout" in reads


async def _data(client: aiosmtplib.SMTP, data: bytes, timeout: float, transmitted: list[bool]) -> aiosmtplib.SMTPResponse:
    """DATA, telling its two halves apart: until the server's 354 go-ahead nothing of the message is transmitted, so a
    break there leaves no doubt (it is an ordinary retry, not a handover that may have delivered), and the go-ahead
    is waited for ``timeout`` (smtp.timeout), not the 10 minutes the reply to the data gets. aiosmtplib does both
    in one call, so this client's protocol is watched: its next write after "DATA" is the message (noted in
    ``transmitted``), and its reads wait as long as their half allows."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    if not _watchable_data():  # another aiosmtplib than the one this was written for: every break may have delivered
        transmitted.append(True)
        return await client.data(data, timeout=max(timeout, DATA_REPLY_TIMEOUT))
    write, read = protocol.write, protocol.read_response

    def watched_write(chunk: bytes) -> None:
        if chunk != b"DATA\r\n":
            transmitted.append(True)
        write(chunk)

    async def timed_read(*_, **__) -> aiosmtplib.SMTPResponse:
        return await read(timeout=DATA_REPLY_TIMEOUT if transmitted else timeout)

    protocol.write, protocol.read_response = watched_write, timed_read  # type: ignore[method-assign]
    try:
        return await client.data(data, timeout=DATA_REPLY_TIMEOUT)
    finally:
        del protocol.write, protocol.read_response  # the class's own again


async def _close(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; the message is already accepted (or not): nothing here can change the outcome."""
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


async def check_smtp(settings: SmtpSettings) -> str:
    """`digest check --connect`: connect, (STARTTLS), log in and offer smtp.from_addr as the sender, as a send
    does, then RSET: nothing is sent. Returns what was found; raises DeliveryError with the fix."""
    if settings.security == "plain" and settings.host not in LOOPBACK:
        raise DeliveryError(f'smtp.security = "plain" is only allowed for localhost (host is {settings.host!r}); '
                            'use "tls" or "starttls"')
    try:
        secret = settings.password()
    except ConfigError as exc:
        raise DeliveryError(f"cannot log in to {settings.host}: {exc}") from None
    try:
        reply = await _attempt(None, settings.from_addr, [], settings, secret.reveal() if secret else "", None,
                               _tls_context(settings))
    except (_Final, _Transient) as exc:
        raise DeliveryError(f"smtp: {exc}") from None
    login = f" as {settings.username}" if settings.username else " (no login: smtp.username is not set)"
    return (f"smtp: connected to {_where(settings)}{login}; it takes {settings.from_addr} as the sender "
            f"(smtp.from_addr: {reply})")


async def send_message(msg: EmailMessage, settings: SmtpSettings, *,
                       before_data: Callable[[], object] | None = None,
                       not_sent: Callable[[], object] | None = None,
                       handed_over: Callable[[str], bool] | None = None,
                       sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> SendResult:
    """Send ``msg`` to its To address with bounded retries on transient failures.

    ``before_data`` runs right before each DATA command (the caller records 'sending'); if it raises, the
    attempt stops before anything is transmitted. ``not_sent`` runs before waiting to retry when no attempt so far
    can have delivered (each was refused, or failed before DATA), so a crash while waiting leaves no doubt
    behind. ``handed_over(reason)`` runs after an attempt that broke during DATA, when the server may have taken
    the message: it returns whether the message may be handed over once more (the caller counts such handovers
    per digest); without it, or when it says no, no further attempt is made (``DeliveryError.unconfirmed``): a
    server that takes a message and drops the connection must not get a copy per retry.
    Raises ``DeliveryError`` (``permanent``, ``attempts``, ``unconfirmed``).
    """
    if not settings.host:
        raise DeliveryError("smtp.host is not set in config.toml; set [smtp] host, or use --outbox DIR")
    if settings.security == "plain" and settings.host not in LOOPBACK:
        # load_settings refuses this already; settings built in code must not get around it either
        raise DeliveryError(f'smtp.security = "plain" is only allowed for localhost (host is {settings.host!r}); '
                            'use "tls" or "starttls"')
    try:
        secret = settings.password()  # read once per message, never logged
    except ConfigError as exc:
        raise DeliveryError(f"cannot log in to {settings.host}: {exc}") from None
    password = secret.reveal() if secret else ""
    tls_context = _tls_context(settings)
    sender = msg["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for a in msg["To"].addresses]
    data = message_bytes(msg)
    attempts = max(1, settings.retries + 1)
    doubt, unconfirmed = False, ""
    for attempt in range(1, attempts + 1):
        try:
            reply = await _attempt(data, sender, recipients, settings, password, before_data, tls_context)
        except _Final as exc:
            log.error("SMTP to %s: %s", ", ".join(recipients), exc)
            raise DeliveryError(str(exc), permanent=exc.permanent, attempts=attempt, too_large=exc.too_large) from None
        except _Transient as exc:
            if exc.unknown:
                unconfirmed = str(exc)
                if handed_over is None or not handed_over(unconfirmed):
                    log.error("SMTP to %s: %s; the server may have the message, so it is not sent again",
                              ", ".join(recipients), exc)
                    raise DeliveryError(f"handed over, then {exc}, before the server confirmed it",
                                        attempts=attempt, unconfirmed=True) from None
            if attempt == attempts:
                raise DeliveryError(f"SMTP failed {attempts} time{'' if attempts == 1 else 's'}, last: {exc}", attempts=attempt) from None
            doubt = doubt or exc.unknown  # an earlier attempt that broke during DATA may have delivered
            # this attempt certainly delivered nothing: say so, unless an earlier one may have and nobody counted it
            if not_sent is not None and not exc.unknown and (not doubt or handed_over is not None):
                not_sent()
            delay = min(MAX_BACKOFF, settings.retry_backoff * 2 ** (attempt - 1))
            log.warning("SMTP attempt %d/%d to %s failed (%s); retrying in %.1f s", attempt, attempts,
                        ", ".join(recipients), exc, delay)
            await sleep(delay)
            continue
        log.info("sent %s to %s: %s", msg["Message-ID"], ", ".join(recipients), reply)
        return SendResult(reply, attempt, unconfirmed)
    raise AssertionError("unreachable")
