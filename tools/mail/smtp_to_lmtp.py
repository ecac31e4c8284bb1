"""A small SMTP server for tests that delivers every message into Dovecot over LMTP.

It is a real SMTP server on real sockets (aiosmtpd): STARTTLS on the plain port, implicit TLS on the
TLS port, AUTH PLAIN/LOGIN checked against Dovecot's passwd-file, 550 at RCPT for unknown users.
Delivery is synchronous: the message is in the recipient's Maildir before the client gets its 250,
so tests never poll. If LMTP fails the client gets 451 and nothing is stored.

Fault injection (for the sender's retry tests): ``--faults FILE`` names a JSON file that is re-read at
every DATA, for example::

    {"alice@example.test": ["451 4.3.0 try later", "451 4.3.0 try later"],
     "bob@example.test": ["550 5.1.1 no such user"],
     "*": ["421 4.3.2 shutting down"],
     "disconnect": 1}

* ``address -> [reply, ...]`` is a queue: each DATA attempt for that recipient takes the first entry
  and answers with it instead of delivering. A temporary reply (4xx) is consumed; a permanent one
  (5xx) stays, so the recipient keeps refusing. ``"disconnect"`` as an entry drops the connection.
  ``"*"`` applies to every recipient. A transaction with any faulted recipient delivers to nobody
  (SMTP has a single reply to DATA), and answers with the first fault in recipient order.
* ``"disconnect": N`` drops the connection after the message data of the next N transactions,
  before any reply (the client cannot know whether the mail went through; nothing is delivered).
* ``"deliver_then_disconnect": N`` delivers the message of the next N transactions, then drops the
  connection before the reply (a server that took the mail and crashed, or a reply lost on the way: the
  client cannot know either, and here the mail did arrive).

Every delivered message is logged as one tab-separated line to ``--log``:
``<UTC time>\\t<mail from>\\t<rcpt,rcpt>\\t<Message-ID>``.

Run by tools/mail/start-mail-servers.sh; see tools/mail/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import time
import warnings
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

LMTP_TIMEOUT = 30.0
# aiosmtpd 1.4 warns about its own use of this attribute on every AUTH
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")


def read_users(path: Path) -> dict[str, str]:
    """Parse a Dovecot passwd-file (``user:{PLAIN}password:uid:gid::home::``) into address -> password.

    Re-read on every use, so users added while the server runs are known at once.
    """
    users: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        password = rest.split(":", 1)[0]
        if password.startswith("{PLAIN}"):
            password = password[len("{PLAIN}") :]
        users[name.lower()] = password
    return users


class Faults:
    """The fault-injection file: read at each transaction, rewritten atomically when consumed."""

    def __init__(self, path: Path | None):
        self.path = path

    def _load(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError) as exc:
            print(f"smtp_to_lmtp: ignoring unreadable faults file {self.path}: {exc}", file=sys.stderr)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def take(self, recipients: list[str]) -> str | None:
        """Return the reply to inject for this transaction (or ``"disconnect"``), consuming entries."""
        data = self._load()
        if not data:
            return None
        changed = False
        chosen: str | None = None
        for kind in ("disconnect", "deliver_then_disconnect"):
            count = data.get(kind)
            if chosen is None and isinstance(count, int) and count > 0:
                data[kind] = count - 1
                chosen, changed = kind, True
        if chosen is None:
            for rcpt in recipients:
                for key in (rcpt.lower(), "*"):
                    queue = data.get(key)
                    if not isinstance(queue, list) or not queue:
                        continue
                    entry = str(queue[0])
                    # a permanent refusal stays in place: the recipient keeps refusing
                    if not entry.startswith("5"):
                        queue.pop(0)
                        changed = True
                    chosen = chosen or entry
                    break
        if changed:
            self._save(data)
        return chosen


def normalise_reply(entry: str) -> str:
    """Make a fault entry a valid SMTP reply line (``451 4.3.0 text``)."""
    entry = entry.strip()
    if not re.match(r"^[45]\d\d( |$)", entry):
        raise ValueError(f"fault entry must start with a 4xx or 5xx code or be 'disconnect': {entry!r}")
    return entry if " " in entry else entry + " injected fault"


async def lmtp_deliver(host: str, port: int, mail_from: str, rcpts: list[str], data: bytes) -> list[str]:
    """Deliver one message over LMTP; return one reply line per recipient.

    Hand-written because smtplib.LMTP reads a single reply after DATA, while LMTP sends one per
    recipient. Raises OSError/asyncio.TimeoutError/RuntimeError when the session itself fails.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), LMTP_TIMEOUT)

    async def reply() -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(reader.readline(), LMTP_TIMEOUT)).decode("utf-8", "replace")
            if not line:
                raise RuntimeError("LMTP server closed the connection")
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def command(cmd: str, expect: str = "2") -> str:
        writer.write(cmd.encode() + b"\r\n")
        await writer.drain()
        text = await reply()
        if not text.startswith(expect):
            raise RuntimeError(f"LMTP {cmd.split()[0]} refused: {text}")
        return text

    try:
        if not (await reply()).startswith("220"):
            raise RuntimeError("no LMTP greeting")
        await command("LHLO localhost")
        await command(f"MAIL FROM:<{mail_from}>")
        accepted, results = [], {}
        for rcpt in rcpts:
            writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
            await writer.drain()
            text = await reply()
            if text.startswith("2"):
                accepted.append(rcpt)
            results[rcpt] = text
        if accepted:
            await command("DATA", expect="3")
            body = re.sub(rb"(?<!\r)\n", b"\r\n", data)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            body = re.sub(rb"(?m)^\.", b"..", body)  # dot-stuffing (aiosmtpd removed the client's)
            writer.write(body + b".\r\n")
            await writer.drain()
            for rcpt in accepted:  # LMTP: one reply per accepted recipient
                results[rcpt] = await reply()
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return [results[r] for r in rcpts]
    finally:
        writer.close()


class Relay:
    """The aiosmtpd handler: check recipients, apply faults, deliver over LMTP, log."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.users_path = Path(args.users)
        self.faults = Faults(Path(args.faults) if args.faults else None)
        self.log_path = Path(args.log) if args.log else None

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace").lower()
            password = auth_data.password.decode("utf-8", "replace")
            if read_users(self.users_path).get(login) == password:
                return AuthResult(success=True, auth_data=login)
        # handled=False makes aiosmtpd send 535; the default would send nothing (P10)
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() not in read_users(self.users_path):
            if not self.args.catch_all:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            address = self.args.catch_all
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self.faults.take(envelope.rcpt_tos)
        then_drop = fault == "deliver_then_disconnect"
        if then_drop:
            fault = None
        if fault == "disconnect":
            # abort(): nothing more is written, not even the reply aiosmtpd tries to send next
            server.transport.abort()
            return "421 4.4.2 connection dropped (injected fault)"
        if fault is not None:
            try:
                return normalise_reply(fault)
            except ValueError as exc:
                return f"451 4.3.0 bad fault file: {exc}"

        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        peer = session.peer[0] if session.peer else "unknown"
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        received = (
            f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
            f"\tby localhost (smtp_to_lmtp) with ESMTP; {stamp}\r\n"
        ).encode()
        mail_from = envelope.mail_from or ""
        try:
            replies = await lmtp_deliver(
                self.args.lmtp_host, self.args.lmtp_port, mail_from, envelope.rcpt_tos, received + data
            )
        except (TimeoutError, OSError, RuntimeError) as exc:
            print(f"smtp_to_lmtp: LMTP delivery failed: {exc!r}", file=sys.stderr)
            return "451 4.3.0 Local delivery failed, try again later"
        failed = [r for r in replies if not r.startswith("2")]
        if failed:
            print(f"smtp_to_lmtp: LMTP refused: {failed}", file=sys.stderr)
            if all(r.startswith("5") for r in failed) and len(failed) == len(replies):
                return "554 5.0.0 Delivery failed: " + failed[0].splitlines()[0][4:]
            return "451 4.3.0 Local delivery failed for some recipients, try again later"
        self._log(mail_from, envelope.rcpt_tos, data)
        if then_drop:
            server.transport.abort()
            return "421 4.4.2 connection dropped after delivery (injected fault)"
        return "250 2.0.0 OK delivered"

    def _log(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        if self.log_path is None:
            return
        msgid = BytesHeaderParser().parsebytes(data).get("Message-ID", "") or "-"
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = "\t".join([when, mail_from or "<>", ",".join(rcpts), " ".join(str(msgid).split())])
        with self.log_path.open("a") as fh:
            fh.write(line + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1025, help="plain SMTP with STARTTLS")
    p.add_argument("--tls-port", type=int, default=1465, help="implicit TLS (SMTPS); 0 = off")
    p.add_argument("--users", required=True, help="Dovecot passwd-file")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--lmtp-host", default="127.0.0.1")
    p.add_argument("--lmtp-port", type=int, default=1024)
    p.add_argument("--pidfile")
    p.add_argument("--faults", help="fault-injection JSON file (re-read at each DATA)")
    p.add_argument("--log", help="append one line per delivered message")
    p.add_argument("--auth-required", action="store_true", help="refuse MAIL before AUTH")
    p.add_argument("--allow-plain-auth", action="store_true", help="offer AUTH before STARTTLS")
    p.add_argument("--catch-all", metavar="USER", help="deliver unknown recipients to USER instead of 550")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    relay = Relay(args)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()

    def factory(implicit_tls: bool):
        return lambda: SMTP(
            relay,
            hostname="localhost",  # the default, getfqdn(), can block on DNS
            tls_context=None if implicit_tls else tls,
            # aiosmtpd does not see implicit TLS as TLS, so require it only on the STARTTLS port (P11)
            auth_require_tls=not (implicit_tls or args.allow_plain_auth),
            auth_required=args.auth_required,
            authenticator=relay.authenticate,
            decode_data=False,
            enable_SMTPUTF8=True,
        )

    servers = [await loop.create_server(factory(False), args.host, args.port, reuse_address=True)]
    if args.tls_port:
        servers.append(
            await loop.create_server(factory(True), args.host, args.tls_port, ssl=tls, reuse_address=True)
        )
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        if args.pidfile:
            Path(args.pidfile).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
