"""Real loopback mail servers for tests: Dovecot (IMAP/IMAPS/LMTP) and an SMTP relay into it.

The servers are started by ``tools/mail/start-mail-servers.sh`` (see ``tools/mail/README.md``) in a
fresh short temp dir on free ports, once per test session, by the ``mail_servers`` fixture::

    def test_poller_sees_new_mail(mail_servers):
        address, password = mail_servers.new_user("poll")      # a fresh, empty mailbox
        mail_servers.append(address, b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        with mail_servers.imap(address) as client:              # logged in, plain IMAP
            assert client.select_folder("INBOX")[b"EXISTS"] == 1

If ``MAILTEST_DIR`` points at servers that are already running (a live ``$MAILTEST_DIR/env``), the
fixture uses those and leaves them running. If Dovecot is missing it is installed
(``tools/mail/install.sh``); if that fails the tests fail with the reason: they are never skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools" / "mail"
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
PORT_NAMES = ("IMAP", "IMAPS", "LMTP", "SMTP", "SMTPS")
# Below Linux's ephemeral range (32768-60999), so outgoing connections do not take our ports.
PORT_RANGE = (20000, 32000)


class MailServerError(RuntimeError):
    """The test mail servers could not be installed, started or driven."""


# ---------------------------------------------------------------------------------------------
# process helpers


def _alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (P9: kill -0 succeeds on zombies, which linger here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    """PIDs whose parent is pid (Dovecot's services are all direct children of its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _wait_dead(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise MailServerError(f"processes {[p for p in pids if _alive(p)]} still alive after {timeout} s")
        time.sleep(0.02)


def wait_greeting(host: str, port: int, prefix: bytes, timeout: float = 15.0) -> None:
    """Wait until the server on host:port sends a greeting starting with prefix (P4)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                if sock.recv(200).startswith(prefix):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise MailServerError(f"no {prefix!r} greeting on {host}:{port} after {timeout} s")
        time.sleep(0.02)


def pick_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return count distinct ports that can be bound on host right now.

    Random, so that concurrent test runs (other worktrees) rarely collide; the start script
    still refuses busy ports (exit 3) and ``start_mail_servers`` then retries with new ones.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(*PORT_RANGE)
        if port in ports:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    return ports


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the ``export K='v'`` lines that start-mail-servers.sh writes."""
    env = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            env[key] = value
    return env


def ensure_installed(browser: bool = False) -> None:
    """Run tools/mail/install.sh (a quiet no-op when the packages are there); raise with its output."""
    cmd = ["bash", str(TOOLS / "install.sh")] + (["--browser"] if browser else [])
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MailServerError(
            f"`{' '.join(cmd)}` failed with exit status {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )


# ---------------------------------------------------------------------------------------------
# the fixture's object


class MailServers:
    """Handle on one running pair of servers (described by its ``$MAILTEST_DIR/env``).

    ``owned`` servers were started by this process and are stopped by ``stop()``; reused ones
    (from an outside ``MAILTEST_DIR``) are left running.
    """

    def __init__(self, env: dict[str, str], owned: bool):
        self.env = env
        self.owned = owned
        self.dir = Path(env["MAILTEST_DIR"])
        self.host = env["MAILTEST_HOST"]
        self.imap_port = int(env["MAILTEST_IMAP_PORT"])
        self.imaps_port = int(env["MAILTEST_IMAPS_PORT"])
        self.lmtp_port = int(env["MAILTEST_LMTP_PORT"])
        self.smtp_port = int(env["MAILTEST_SMTP_PORT"])
        self.smtps_port = int(env["MAILTEST_SMTPS_PORT"])
        self.ca_cert = env["MAILTEST_CA_CERT"]
        self.conf = env["MAILTEST_CONF"]
        self.users_file = Path(env["MAILTEST_USERS_FILE"])
        self.faults_file = Path(env["MAILTEST_FAULTS"])
        self.smtp_log_file = Path(env["MAILTEST_SMTP_LOG"])
        self._lock = threading.Lock()
        self._serial = itertools.count(1)

    def __repr__(self) -> str:  # no passwords in reprs
        return f"<MailServers {self.dir} imap={self.imap_port} smtp={self.smtp_port} owned={self.owned}>"

    # -- users ---------------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, str]:
        """address -> password, read from the users file (so it includes added users)."""
        users = {}
        for line in self.users_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, password = line.split(":")[:2]
                users[name] = password.removeprefix("{PLAIN}")
        return users

    def add_user(self, address: str, password: str, settings: str = "") -> None:
        """Add a mailbox, usable at once: no restart or HUP (tested).

        Dovecot reads ``etc/users.d/<address>`` (a new file is read on first lookup; a line appended
        to one shared file could stay unseen for up to 1 s), the relay reads ``etc/users``. ``settings``:
        Dovecot settings for this user only, as userdb extra fields (space-separated, no spaces in a value), e.g.
        ``userdb_namespace/inbox/prefix=INBOX. userdb_namespace/inbox/separator=.`` for a server that keeps
        folders under "INBOX." (Courier, cPanel), ``userdb_imap_capability=IMAP4rev1`` for one without MOVE.
        """
        if ":" in address + password + settings or "\n" in address + password + settings or "/" in address:
            raise ValueError("address, password and settings must not contain ':' or newlines, nor the address '/'")
        with self._lock:
            if address in self.users:
                raise ValueError(f"user {address} already exists")
            # same uid/gid as the existing entries (5000 as root, the caller's uid otherwise)
            first = next(line for line in self.users_file.read_text().splitlines() if line.count(":") >= 6)
            uid, gid = first.split(":")[2:4]
            line = f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{self.dir}/mail/{address}::{settings}\n"
            user_file = self.users_file.parent / "users.d" / address.lower()
            tmp = user_file.with_name(f".{user_file.name}.tmp")
            tmp.write_text(line)
            tmp.chmod(0o644)
            os.replace(tmp, user_file)  # Dovecot must never see half a line
            with self.users_file.open("a") as fh:
                fh.write(line)

    def new_user(self, prefix: str = "user", settings: str = "") -> tuple[str, str]:
        """Create a fresh, empty mailbox with a unique address (``settings``: see add_user); return (address,
        password)."""
        local = re.sub(r"[^a-z0-9.-]+", "-", prefix.lower()).strip("-.") or "user"
        address = f"{local}-{next(self._serial)}-{secrets.token_hex(3)}@example.test"
        password = secrets.token_urlsafe(12)
        self.add_user(address, password, settings)
        return address, password

    # -- IMAP ----------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the servers' self-signed certificate."""
        return ssl.create_default_context(cafile=self.ca_cert)

    def imap(self, address: str, timeout: float = 10) -> IMAPClient:
        """An IMAPClient logged in as address over plain IMAP (use it as a context manager)."""
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=timeout)  # P12: ssl=False
        client.login(address, self.users[address])
        return client

    def append(self, address: str, raw: bytes, folder: str = "INBOX", flags: tuple | list = (),
               arrived: datetime | None = None) -> int | None:
        """APPEND raw to address's folder (created if missing), arrived (INTERNALDATE) now or at ``arrived``;
        return the new UID if reported."""
        with self.imap(address) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=arrived)
        match = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
        return int(match.group(1)) if match else None

    def messages(self, address: str, folder: str = "INBOX") -> list[tuple[int, tuple, bytes]]:
        """All messages as (uid, flags, raw bytes), by UID, read with BODY.PEEK[] (\\Seen unchanged)."""
        with self.imap(address) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])
        return [(uid, tuple(data[uid][b"FLAGS"]), data[uid][b"BODY[]"]) for uid in sorted(data)]

    def doveadm(self, *args: str, input: bytes | None = None) -> str:
        """Run ``doveadm -c <our conf> ARGS``; return stdout, raise MailServerError on failure."""
        proc = subprocess.run([DOVEADM, "-c", self.conf, *args], input=input, capture_output=True)
        if proc.returncode != 0:
            raise MailServerError(
                f"doveadm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout.decode(errors="replace")

    # -- Dovecot lifecycle (for "server goes away" tests) ----------------------------------------

    @property
    def _master_pidfile(self) -> Path:
        return self.dir / "run" / "master.pid"

    def dovecot_pid(self) -> int | None:
        """The running Dovecot master's PID, or None."""
        try:
            pid = int(self._master_pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def stop_dovecot(self, timeout: float = 15) -> None:
        """Stop Dovecot cleanly (SIGTERM; ~1.1 s). The SMTP relay keeps running and answers 451."""
        pid = self.dovecot_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait_dead([pid], timeout)

    def kill_dovecot(self) -> None:
        """SIGKILL the Dovecot master and all its processes, like a crash: open IMAP connections die."""
        pid = self.dovecot_pid()
        if pid is None:
            return
        pids = [pid, *_children(pid)]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_dead(pids, 10)

    def start_dovecot(self, timeout: float = 15) -> None:
        """Start Dovecot again on the same ports and mail (after stop_dovecot or kill_dovecot)."""
        if self.dovecot_pid() is not None:
            return
        # A killed master leaves its pid file; it may name a zombie, which Dovecot sees as running.
        self._master_pidfile.unlink(missing_ok=True)
        with (self.dir / "log" / "dovecot.stderr").open("ab") as log:
            # P5: never hand the daemon our stdio
            proc = subprocess.run(
                [DOVECOT, "-c", self.conf], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        if proc.returncode != 0:
            raise MailServerError(f"dovecot failed to start again; see {self.dir}/log/dovecot.stderr")
        wait_greeting(self.host, self.imap_port, b"* OK", timeout)
        wait_greeting(self.host, self.lmtp_port, b"220", timeout)

    # -- SMTP relay ----------------------------------------------------------------------------

    def set_faults(self, faults: dict) -> None:
        """Replace the relay's fault-injection table (see tools/mail/smtp_to_lmtp.py), e.g.
        ``{"a@example.test": ["451 4.3.0 later", "451 4.3.0 later"], "disconnect": 1}``."""
        tmp = self.faults_file.with_name(f"faults.json.{os.getpid()}")
        tmp.write_text(json.dumps(faults))
        os.replace(tmp, self.faults_file)  # atomic: the relay never reads half a file

    def clear_faults(self) -> None:
        self.set_faults({})

    def faults(self) -> dict:
        """The fault table as it is now (entries are consumed as transactions hit them)."""
        try:
            return json.loads(self.faults_file.read_text() or "{}")
        except FileNotFoundError:
            return {}

    def smtp_log(self) -> list[str]:
        """One line per delivered message: ``time<TAB>from<TAB>to,to<TAB>Message-ID``."""
        try:
            return self.smtp_log_file.read_text().splitlines()
        except FileNotFoundError:
            return []

    # -- whole lifecycle -----------------------------------------------------------------------

    def is_live(self) -> bool:
        try:
            wait_greeting(self.host, self.imap_port, b"* OK", timeout=0.5)
            wait_greeting(self.host, self.smtp_port, b"220", timeout=0.5)
        except MailServerError:
            return False
        return True

    def stop(self) -> None:
        """Stop both servers and delete the work dir, if this process started them."""
        if not self.owned:
            return
        subprocess.run(
            ["bash", str(TOOLS / "stop-mail-servers.sh"), str(self.dir), "--purge"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )


def start_mail_servers(python: str = sys.executable, attempts: int = 5, **env: str) -> MailServers:
    """Start a fresh pair of servers on free ports in a new short temp dir; return the handle.

    Extra keyword arguments become environment variables of the start script
    (e.g. ``MAILTEST_SMTP_ARGS="--auth-required"``).
    """
    ensure_installed()
    last = ""
    for _ in range(attempts):
        # P19: unix sockets live under this dir, so keep it short (not pytest's tmp_path)
        workdir = tempfile.mkdtemp(prefix="mt-", dir="/tmp")
        ports = pick_free_ports(len(PORT_NAMES))
        script_env = dict(os.environ, MAILTEST_DIR=workdir, MAILTEST_PYTHON=python, MAILTEST_INSTALL="no")
        script_env.update(
            {f"MAILTEST_{name}_PORT": str(port) for name, port in zip(PORT_NAMES, ports, strict=True)}
        )
        script_env.update(env)
        proc = subprocess.run(
            ["bash", str(TOOLS / "start-mail-servers.sh")],
            env=script_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            return MailServers(read_env_file(Path(workdir) / "env"), owned=True)
        last = proc.stderr + proc.stdout
        subprocess.run(["bash", str(TOOLS / "stop-mail-servers.sh"), workdir, "--purge"], capture_output=True)
        if proc.returncode != 3:  # 3 = a port was taken meanwhile: try other ports
            break
    raise MailServerError(f"start-mail-servers.sh failed:\n{last}")


def reuse_mail_servers() -> MailServers | None:
    """The servers named by an outside ``MAILTEST_DIR``, if its env file exists and they answer."""
    outside = os.environ.get("MAILTEST_DIR")
    if not outside or not (Path(outside) / "env").is_file():
        return None
    servers = MailServers(read_env_file(Path(outside) / "env"), owned=False)
    return servers if servers.is_live() else None


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    """Real Dovecot + SMTP relay on 127.0.0.1, started once per session (see module docstring)."""
    try:
        servers = reuse_mail_servers() or start_mail_servers()
    except MailServerError as exc:
        # never a skip: CI must not go green without having talked to a real server
        pytest.fail(f"mail servers unavailable: {exc}", pytrace=False)
    try:
        yield servers
    finally:
        servers.stop()
