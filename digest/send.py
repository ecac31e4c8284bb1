"""Delivery: the only module that speaks SMTP. Builds the MIME message and sends it, or writes it to an
outbox folder as a complete ``.eml`` (plus the ``.html`` for viewing).

Transient failures (4xx replies, disconnects, timeouts) are retried a bounded number of times with backoff;
permanent ones (5xx) raise ``DeliveryError(permanent=True)`` carrying the server's reply. TLS is explicit
configuration and is never silently downgraded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib

from .config import SmtpSettings
from .errors import DeliveryError
from .render import Rendered

log = logging.getLogger(__name__)


def build_message(rendered: Rendered, *, sender: str, sender_name: str, to: str, to_name: str = "",
                  message_id: str | None = None, unsubscribe_url: str | None = None,
                  unsubscribe_mailto: str | None = None, reply_to: str | None = None) -> EmailMessage:
    """A multipart/alternative message, text first, with a unique Message-ID and one-click unsubscribe."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = Address(display_name=sender_name, addr_spec=sender)
    msg["To"] = Address(display_name=to_name, addr_spec=to) if to_name else to
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rsplit("@", 1)[-1])
    if reply_to:
        msg["Reply-To"] = reply_to
    targets = [f"<{u}>" for u in (unsubscribe_mailto, unsubscribe_url) if u]
    if targets:
        msg["List-Unsubscribe"] = ", ".join(targets)
        if unsubscribe_url:
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


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
    """Write ``stem.eml`` (the complete message) and ``stem.html`` into ``outbox``; returns the .eml path."""
    eml = outbox / f"{stem}.eml"
    _atomic_write(eml, msg.as_bytes())
    _atomic_write(outbox / f"{stem}.html", html.encode("utf-8"))
    return eml


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca_file or None)


async def _send_once(msg: EmailMessage, settings: SmtpSettings) -> str:
    password = settings.password()
    client = aiosmtplib.SMTP(hostname=settings.host, port=settings.port, timeout=settings.timeout,
                             use_tls=settings.security == "tls",
                             start_tls=True if settings.security == "starttls" else False,
                             tls_context=_tls_context(settings) if settings.security != "plain" else None)
    async with client:
        if settings.username:
            await client.login(settings.username, password.reveal() if password else "")
        errors, reply = await client.send_message(msg)
    if errors:
        raise aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(code, text, rcpt) for rcpt, (code, text) in errors.items()])
    return reply


def _is_permanent(exc: Exception) -> bool:
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return True
    return isinstance(code, int) and 500 <= code < 600


def _describe(exc: Exception) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{code} {message}" if isinstance(code, int) and code > 0 else message


async def send_message(msg: EmailMessage, settings: SmtpSettings, *, sleep=asyncio.sleep) -> str:
    """Send with bounded retries on transient failures. Returns the server's final reply."""
    if not settings.host:
        raise DeliveryError("smtp.host is not set in config.toml; set [smtp] host, or use --outbox DIR")
    attempts = max(1, settings.retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            reply = await _send_once(msg, settings)
            log.info("sent %s to %s: %s", msg["Message-ID"], msg["To"], reply)
            return str(reply)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            if _is_permanent(exc):
                raise DeliveryError(f"SMTP refused permanently: {_describe(exc)}", permanent=True) from None
            if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPConnectError) and "certificate" in str(exc).lower():
                raise DeliveryError(f"TLS certificate check failed for {settings.host}: {exc}; set smtp.ca_file "
                                    "to the server's CA", permanent=True) from None
            if attempt == attempts:
                raise DeliveryError(f"SMTP failed {attempts} times, last: {_describe(exc)}") from None
            delay = settings.retry_backoff * 2 ** (attempt - 1)
            log.warning("SMTP attempt %d/%d failed (%s); retrying in %.1fs", attempt, attempts, _describe(exc), delay)
            await sleep(delay)
    raise AssertionError("unreachable")
