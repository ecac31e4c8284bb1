"""Settings: ``config.toml`` read once into frozen dataclasses.

The path comes from ``--config`` or ``DIGEST_CONFIG``; with no file, the embedded defaults are used (the
demo needs none). Unknown keys and wrong types are ``ConfigError``s that name the key and show a valid
example. Secrets (IMAP/SMTP passwords, the link-signing key) are never stored in the settings: each section
names an environment variable or a file, read only when the secret is needed, wrapped in ``Secret`` whose
repr is ``'**********'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, TokenError, parse_toml, read_text_file, toml_line, toml_repr

# chosen by measurement on the CiteULike benchmark (benchmarks/README.md): the two models' ensemble ranks best
DEFAULT_MODEL = "all-MiniLM-L6-v2+all-mpnet-base-v2"


class Secret:
    """A value that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_secret(what: str, env: str, file: str, *, required: bool = True) -> Secret | None:
    """A secret from the environment variable ``env`` or, failing that, from ``file`` (its text, stripped; the
    link-signing key's file may hold several keys, one per line, newest first)."""
    if env and not _ENV_NAME.fullmatch(env):  # the password itself where the variable's name goes: never echo it
        raise ConfigError(f"{what}_env must be the name of an environment variable, not the password itself; put "
                          f"the password in that variable, or in a file named by {what}_file")
    if env and os.environ.get(env):
        return Secret(os.environ[env])
    if file:
        try:
            value = Path(file).expanduser().read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{what}: cannot read the secret file {file} ({why}); "
                              f"fix the path or set the environment variable {env}") from None
        if not value and required:
            raise ConfigError(f"{what}: the secret file {file} is empty; write the secret on its first line "
                              f"or set the environment variable {env}")
        if env and re.match(rf"(?:export\s+)?{re.escape(env)}\s*=", value):
            # an environment file (systemd's EnvironmentFile=, a .env): the name would be sent as the password
            raise ConfigError(f"{what}: the secret file {file} holds {env}=... (an environment file); write the "
                              f"secret alone on its first line, or give that file to the service's environment "
                              f"(systemd EnvironmentFile=) and leave {what}_file unset")
        return Secret(value) if value else None
    if required:
        raise ConfigError(f"{what}: no secret given; set the environment variable {env} "
                          f"or point {what}_file in config.toml to a file holding it")
    return None


@dataclass(frozen=True)
class ModelSettings:
    name: str = DEFAULT_MODEL
    batch_size: int = 32
    offline: bool = True


@dataclass(frozen=True)
class RankingSettings:
    candidate_days: int = 7
    background_size: int = 1000
    default_max_items: int = 12
    include_replacements: bool = False  # arXiv "replaced" entries (revised old papers) as candidates


@dataclass(frozen=True)
class ImapSettings:
    host: str = ""
    port: int = 993
    security: str = "tls"
    username: str = ""
    password_env: str = "DIGEST_IMAP_PASSWORD"
    password_file: str = ""
    ca_file: str = ""
    folders: list[str] = field(default_factory=lambda: ["INBOX"])
    mark: str = "flag"
    processed_flag: str = "$Digested"
    processed_folder: str = "Digested"
    quarantine_flag: str = "$DigestFailed"
    quarantine_folder: str = "Digest-Failed"
    max_message_bytes: int = 20_000_000
    timeout: float = 30.0
    idle: bool = False
    poll_minutes: float = 15.0
    first_poll_days: int = 14  # a folder's first poll reads the mail of these last days (0: all of it)

    def password(self) -> Secret:
        return read_secret("imap.password", self.password_env, self.password_file)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 465
    security: str = "tls"
    username: str = ""
    password_env: str = "DIGEST_SMTP_PASSWORD"
    password_file: str = ""
    ca_file: str = ""
    from_addr: str = "digest@localhost"
    from_name: str = "digest"
    timeout: float = 30.0
    retries: int = 3
    retry_backoff: float = 2.0

    def password(self) -> Secret | None:
        return read_secret("smtp.password", self.password_env, self.password_file, required=bool(self.username))


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8025
    base_url: str = "http://127.0.0.1:8025"
    secret_key_env: str = "DIGEST_SECRET_KEY"
    secret_key_file: str = ""
    token_max_age_days: int = 60
    rate_limit_per_minute: int = 120
    max_body_bytes: int = 8192
    reply_address: str = ""

    def secret_key(self, data_dir: Path | None = None) -> Secret:
        secret = read_secret("web.secret_key", self.secret_key_env, self.secret_key_file, required=False)
        if secret:
            return secret
        if data_dir is not None:
            # no key configured: make one once and keep it in the data dir (mode 600), so links keep working
            path = data_dir / "secret.key"
            if not path.exists():
                data_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(os.urandom(32).hex())
            return Secret(path.read_text().strip())
        raise ConfigError(f"web.secret_key: set the environment variable {self.secret_key_env} or secret_key_file")


MIN_SECRET_CHARS = 32  # 16 random bytes written as hex; the key digest makes itself is 64
# papers whose email stays under the ~102 KB where Gmail clips a message (tests/test_render.py checks it with
# long titles, abstracts and links): beyond them render.render_digest leaves the last ones to the digest's page
MAX_UNCLIPPED_ITEMS = 30


@dataclass(frozen=True)
class ScheduleSettings:
    grace_minutes: int = 180
    poll_before_send: bool = True
    shutdown_timeout: float = 30.0


@dataclass(frozen=True)
class Settings:
    data_dir: str = "data"
    profiles_dir: str = "profiles"
    outbox: str = ""
    log_level: str = "INFO"
    model: ModelSettings = field(default_factory=ModelSettings)
    ranking: RankingSettings = field(default_factory=RankingSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    web: WebSettings = field(default_factory=WebSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    source: str = field(default="(defaults)", compare=False)

    @property
    def source_label(self) -> str:
        """Where these settings came from, for messages: the config file, or the built-in defaults."""
        return "the built-in defaults (no config.toml)" if self.source == "(defaults)" else self.source

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def db_path(self) -> Path:
        return self.data_path / "digest.db"

    @property
    def profiles_path(self) -> Path:
        return Path(self.profiles_dir).expanduser()


# the names of this machine: plain SMTP/IMAP only to these, and links to them reach no one else
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def answers_tls(host: str, port: int, timeout: float) -> bool:
    """Whether host:port answers a TLS handshake: a port that expects TLS at once (465, 993), which takes a
    connection and waits for the client to speak, as opposed to a server that takes it and stalls (busy,
    hung, behind a greeting delay), which says nothing to the handshake either. Only called after a
    connection got no greeting; a port that greets meanwhile is not TLS."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # what answers, not whether it is trusted
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except ssl.SSLEOFError:
        return False  # closed without a word of TLS
    except ssl.SSLError as exc:
        # plain text where a TLS record was due (a greeting after all): not TLS; any other TLS alert: TLS
        return exc.reason not in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")
    except OSError:  # no answer within the timeout, refused, unreachable
        return False


# (section, key) -> (lowest, highest) allowed; None = no bound
_RANGES = {
    ("imap", "port"): (1, 65535), ("smtp", "port"): (1, 65535), ("web", "port"): (1, 65535),
    ("imap", "poll_minutes"): (0.5, None), ("imap", "timeout"): (1, None), ("smtp", "timeout"): (1, None),
    ("imap", "max_message_bytes"): (1024, None), ("smtp", "retries"): (0, 20), ("smtp", "retry_backoff"): (0, 3600),
    ("model", "batch_size"): (1, 4096), ("ranking", "candidate_days"): (1, 3650), ("imap", "first_poll_days"): (0, 36500),
    ("ranking", "background_size"): (0, 100_000), ("ranking", "default_max_items"): (1, 100),
    ("web", "token_max_age_days"): (1, 3650), ("web", "rate_limit_per_minute"): (1, None),
    ("web", "max_body_bytes"): (256, None), ("schedule", "grace_minutes"): (1, 24 * 60),
    ("schedule", "shutdown_timeout"): (0, 3600),
}

_CHOICES = {
    ("imap", "security"): ("tls", "starttls", "plain"),
    ("smtp", "security"): ("tls", "starttls", "plain"),
    ("imap", "mark"): ("flag", "move"),
    ("", "log_level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
}


def _kind(value: Any) -> str:
    """What a TOML value is, in the words of the TOML a user wrote."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text (in quotes)"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    return {list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _build(cls, table: dict, section: str, source: str, text: str, problems: list[str]):
    """``cls`` from a TOML table; a key that is wrong is reported in ``problems`` (all of them, not only the
    first) and keeps its default."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    top_level = {f.name for f in dataclasses.fields(Settings)}
    defaults = cls()
    values = {}
    for key, value in table.items():
        where = f"{section}.{key}" if section else key
        line = toml_line(text, where) if text else None
        at = f"{source}:{line}" if line else source
        try:
            values[key] = _value(fields, top_level, defaults, key, value, section, where, at, source, text, problems)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return cls(**values)


def _value(fields, top_level, defaults, key, value, section, where, at, source, text, problems):
    """One key's value, checked; raises ConfigError saying what is wrong and how to write it."""
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"known keys: {', '.join(fields)}"
        if section and key in top_level:
            # a top-level key written below a [table] belongs to that table in TOML
            hint = f"{key} is a top-level key: move it above the first [table] line"
        raise ConfigError(f"{at}: unknown key {where} ({hint})")
    default = getattr(defaults, key)
    if dataclasses.is_dataclass(default):
        if not isinstance(value, dict):
            raise ConfigError(f"{at}: [{key}] must be a table, for example:\n[{key}]\n"
                              + "\n".join(f"{k} = {toml_repr(v)}" for k, v in dataclasses.asdict(default).items()))
        return _build(type(default), value, key, source, text, problems)
    example = f"{key} = {toml_repr(default if default != '' else 'value')}"
    ok = isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool))
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        raise ConfigError(f"{at}: {where} has the wrong type ({toml_repr(value)} is {_kind(value)}); "
                          f"for example: {example}")
    choices = _CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{at}: {where} must be one of {', '.join(choices)} (got {toml_repr(value)})")
    if isinstance(value, float) and not math.isfinite(value):  # nan or inf: no range check can hold it
        raise ConfigError(f"{at}: {where} must be a finite number (got {toml_repr(value)}); for example: {example}")
    low, high = _RANGES.get((section, key), (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{at}: {where} must be {bounds} (got {toml_repr(value)}); for example: {example}")
    if (section, key) == ("web", "base_url"):
        _check_base_url(value, at)
    if (section, key) in (("", "data_dir"), ("", "profiles_dir")) and not value.strip():
        raise ConfigError(f"{at}: {where} must name a folder (an empty one would mean whatever folder digest runs "
                          f"in); for example: {example}")
    if key == "host" and section in ("imap", "smtp"):
        _check_host(value, section, at)
    if (section, key) in (("smtp", "from_addr"), ("web", "reply_address")) and (value or key == "from_addr"):
        _check_address(value, where, at)
    if (section, key) == ("smtp", "from_name") and any(c in value for c in "\r\n\t\0"):
        raise ConfigError(f"{at}: {where} must be one line, the name mail programs show as the sender "
                          f'(got {toml_repr(value)}); for example: from_name = "Paper digest"')
    return value


def valid_address(address: str) -> bool:
    """``user@host`` as a mail header can carry it (what ``email.headerregistry`` accepts, one line, a domain)."""
    from email.errors import MessageError
    from email.headerregistry import Address

    if not isinstance(address, str) or any(c.isspace() or ord(c) < 32 for c in address) or "@" not in address:
        return False
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, TypeError, MessageError):
        return False
    return bool(parsed.username and parsed.domain)


def without_tag(address: str) -> str:
    """``ada+papers@example.org`` -> ``ada@example.org``: a profile may name a subaddress (to file the digests
    under a label), while mail programs reply from the mailbox's own address, whose owner the subaddress's is."""
    local, at, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}" if at and local.split("+", 1)[0] else address


def ascii_domain(address: str) -> str:
    """``user@domain`` with an internationalised domain in its ASCII form (IDNA 2008 with UTS 46, as browsers
    and mail servers use it: ``müller.example`` -> ``xn--mller-kva.example``, ``straße.de`` ->
    ``xn--strae-oqa.de``, not the other domain ``strasse.de`` that Python's IDNA 2003 codec gives), the form any
    mail server takes and the one a profile keeps. Raises UnicodeError for a domain that has none."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    import idna

    try:
        return f"{local}@{idna.encode(domain, uts46=True, transitional=False).decode('ascii')}"
    except idna.IDNAError as exc:
        raise UnicodeError(str(exc)) from None


def _check_address(address: str, where: str, at: str) -> None:
    if not valid_address(address):
        raise ConfigError(f"{at}: {where} must be one email address, user@host (got {address!r}); "
                          f'for example: {where.split(".")[-1]} = "digest@example.org"')


def _check_host(host: str, section: str, at: str) -> None:
    """A server's name or address only: a URL or a "host:port" never connects, and would fail at 3 a.m."""
    example = f'for example: host = "{section}.example.org" and port = {993 if section == "imap" else 465}'
    if "://" in host or host.lower().startswith(("imap:", "imaps:", "smtp:", "smtps:")):
        name = urlsplit(host if "://" in host else host.replace(":", "://", 1)).hostname or f"{section}.example.org"
        raise ConfigError(f"{at}: {section}.host is the server's name only, without a scheme (got {host!r}); write "
                          f'host = "{name}", and say TLS with security = "tls" and the port with port')
    if host.count(":") == 1 or (host.startswith("[") and "]:" in host):
        name, _, port = host.rpartition(":")
        if port.isdigit():
            raise ConfigError(f"{at}: {section}.host is the server's name only; the port goes in its own key (got "
                              f'{host!r}): host = "{name.strip("[]")}" and port = {port}')
    if any(c.isspace() or c in "/@?#" for c in host.strip()) or host != host.strip():
        raise ConfigError(f"{at}: {section}.host must be a server name or address, without spaces or slashes "
                          f"(got {host!r}); {example}")


# the usual port of each security mode; the other mode's port with this one hangs or fails in the handshake
_USUAL_PORTS = {"imap": {"tls": (993,), "starttls": (143,)}, "smtp": {"tls": (465,), "starttls": (587, 25)}}


READ_ONLY_MOUNT = "on a file system mounted read-only"  # how a folder no user may write is said, and told apart


def read_only_mount(path: Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (no user may write it, whatever its permissions)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _check_base_url(url: str, at: str) -> None:
    """Links in every digest start with web.base_url: without a scheme and a host they would all be dead."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
        bad_port = False
    except ValueError:
        bad_port = True
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or bad_port:
        raise ConfigError(f"{at}: web.base_url must be the absolute address users reach the feedback server at, "
                          f'with http:// or https:// (got {url!r}); for example: base_url = "https://digest.example.org"')


def config_problems(settings: Settings, data_dir_from: str | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) that `digest check` finds and loading cannot: the secret and CA files the servers in
    use need (an error: a run that connects would fail), a password given only by an environment variable that
    this shell lacks (a warning: the service may well have it).

    Loading leaves them alone (``digest parse`` needs no password). ``data_dir_from``: "--data-dir" or
    "DIGEST_DATA_DIR" when the data folder came from there, not from the file (then the file is not to blame)."""
    text = ""
    if settings.source != "(defaults)":
        try:
            text = Path(settings.source).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            text = ""

    def at(key: str) -> str:
        line = toml_line(text, key) if text else None
        return f"{settings.source}{f':{line}' if line else ''}"

    problems, warnings = [], []
    data = settings.data_path
    existing = next((d for d in (data, *data.parents) if d.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        read_only = existing.is_dir() and read_only_mount(existing)
        if existing.is_dir() and read_only and settings.db_path.exists():
            pass  # the store's own check says it, with its fix (remount it read-write): once is enough
        else:
            why, fix = ((f"{existing} is a file, not a folder", "create the folder or choose another")
                        if not existing.is_dir() else
                        (f"{existing} is {READ_ONLY_MOUNT}", "remount it read-write or choose another")
                        if read_only else
                        (f"{existing} is not writable by this user", "give this user write access to it or choose another"))
            where = (f"{data_dir_from}{'=' if data_dir_from.isupper() else ' '}{settings.data_dir}" if data_dir_from else
                     f"{at('data_dir')}: data_dir = {str(settings.data_dir)!r}")
            problems.append(f"{where} cannot hold the database ({why}); {fix} data_dir (or --data-dir)")
    servers = [("imap", settings.imap, True)] if settings.imap.host else []
    if settings.smtp.host and not settings.outbox:
        servers.append(("smtp", settings.smtp, bool(settings.smtp.username)))
    for name, section, needs_password in servers:
        # a password_env that names no variable (the password itself written there) is read_secret's error below
        if needs_password and not section.password_file and not os.environ.get(section.password_env) \
                and _ENV_NAME.fullmatch(section.password_env or ""):
            warnings.append(f"{name}.password: the environment variable {section.password_env} is not set in this "
                            "shell; the service needs it in its own environment (or set password_file)")
        elif needs_password:
            try:
                section.password()
            except ConfigError as exc:
                key = f"{name}.password_file" if section.password_file else f"{name}.password_env"
                problems.append(f"{at(key)}: {exc}")
        if section.ca_file and not Path(section.ca_file).expanduser().is_file():
            problems.append(f"{at(name + '.ca_file')}: {name}.ca_file: no such file {section.ca_file}; give the path "
                            "of the PEM file holding the server's CA certificate, or remove the key")
    for name, section in (("imap", settings.imap), ("smtp", settings.smtp)):
        usual = _USUAL_PORTS[name]
        other = next((mode for mode, ports in usual.items() if mode != section.security and section.port in ports), None)
        if section.host and section.security in usual and other:
            modes = {"tls": "implicit TLS", "starttls": "STARTTLS"}
            warnings.append(f"{at(name + '.port')}: {name}.port = {section.port} is the usual {modes[other]} port, but "
                            f'security = "{section.security}": set security = "{other}", or port = '
                            f"{usual[section.security][0]} for {modes[section.security]} (unless your provider "
                            "really uses this pair)")
    if not settings.imap.host:
        warnings.append(f"{settings.source_label}: imap.host is not set, so `digest poll` and `digest run` cannot read "
                        "alerts from a mailbox; set [imap] host, username and the password (see config.example.toml), "
                        "or store alert files with `digest ingest PATH`")
    base = urlsplit(settings.web.base_url)
    local = (base.hostname or "") in LOOPBACK  # links to this machine
    if not settings.smtp.host and not settings.outbox:
        warnings.append(f"{settings.source_label}: smtp.host is not set (nor outbox), so `digest send` and `digest run` "
                        "cannot deliver digests; set [smtp] host (see config.example.toml), or outbox = \"DIR\" to "
                        "write them to files")
    elif settings.smtp.host and not settings.outbox and not settings.web.reply_address and local:
        warnings.append(f"{at('web.base_url')}: web.base_url is {settings.web.base_url}, so the 👍/👎 and unsubscribe "
                        "links of every digest sent open the reader's own machine: right when the readers read "
                        "their mail on this machine (digest on your own computer, for you), else set it to the "
                        "address readers reach `digest serve` at (docs/feedback.md), or set web.reply_address to "
                        "vote by email")
    reply, account = settings.web.reply_address.strip().lower(), settings.imap.username.strip().lower()
    if reply and settings.imap.host and "@" in account and without_tag(reply) != without_tag(account):
        # votes by reply go to reply_address; only the polled mailbox is read: elsewhere they are never counted
        warnings.append(f"{at('web.reply_address')}: web.reply_address is {reply}, but the poller reads the mailbox "
                        f"of {account} (imap.username): replies with \"+1 -3\" and prepared vote emails go to {reply}, "
                        "so they count only if mail to it arrives in imap.folders (an alias or a forward there); "
                        f'else set reply_address = "{account}"')
    try:
        base_port = base.port  # None without one: a local proxy on port 80/443 may forward to web.port
    except ValueError:
        base_port = None
    if settings.web.enabled and local and base_port is not None and base_port != settings.web.port:
        # a port named on this machine, and not the one the server takes: the links lead where nothing listens
        warnings.append(f"{at('web.base_url')}: web.base_url is {settings.web.base_url}, but `digest run` and "
                        f"`digest serve` listen on port {settings.web.port} (web.port), so its links reach nothing; "
                        f"set web.port = {base_port}, or the port in base_url to {settings.web.port}")
    if settings.web.secret_key_file and not os.environ.get(settings.web.secret_key_env):
        try:
            web = settings.web
            if read_secret("web.secret_key", web.secret_key_env, web.secret_key_file, required=False) is None:
                warnings.append(f"{at('web.secret_key_file')}: web.secret_key_file {settings.web.secret_key_file} "
                                "is empty, so links are signed with the key generated in data_dir/secret.key")
        except ConfigError as exc:
            problems.append(f"{at('web.secret_key_file')}: {exc}")
    with contextlib.suppress(ConfigError, TokenError):
        from .tokens import secret_keys  # the keys as links are signed and checked with them

        web = settings.web
        configured = read_secret("web.secret_key", web.secret_key_env, web.secret_key_file, required=False)
        # every key listed verifies links (the newest signs them): a short one anywhere lets links be forged
        keys = secret_keys(configured) if configured else []
        short = [(i, k) for i, k in enumerate(keys) if len(k) < MIN_SECRET_CHARS]
        if short:
            where = f"${web.secret_key_env}" if os.environ.get(web.secret_key_env) else web.secret_key_file
            which = "; ".join(f"the {'newest' if i == 0 else f'older key {i + 1}'} is {len(k)} characters"
                              for i, k in short)
            warnings.append(f"{at('web.secret_key_file') if where == web.secret_key_file else 'web.secret_key'}: "
                            f"in {where}, {which}: a link shows what it signs, so a short key can be guessed offline "
                            f"and links forged (every listed key verifies them); use 32 random bytes (openssl rand "
                            f"-hex 32), and drop an old short key rather than keep it for its links")
    warnings += _relative_paths(settings, text, at)
    if settings.ranking.default_max_items > MAX_UNCLIPPED_ITEMS:
        warnings.append(f"{at('ranking.default_max_items')}: ranking.default_max_items = "
                        f"{settings.ranking.default_max_items}: an email of more than about {MAX_UNCLIPPED_ITEMS} "
                        f"papers passes Gmail's ~102 KB, where Gmail cuts it off (\"[Message clipped]\"), so the "
                        f"email shows the papers that fit and links to the others on the digest's web page")
    return problems, warnings


def _relative_paths(settings: Settings, text: str, at) -> list[str]:
    """A config file in another folder than the one digest runs in, with relative paths: they are taken from the
    folder digest runs in, so a command run elsewhere (`digest rank` from a project folder) reads other profiles,
    or keeps another store, than the service does."""
    if not text:
        return []
    here, home = Path.cwd().resolve(), Path(settings.source).resolve().parent
    if here == home:
        return []
    written = {}
    with contextlib.suppress(ConfigError):
        written = parse_toml(text, settings.source, ConfigError)
    keys = ["data_dir", "profiles_dir"] + (["outbox"] if settings.outbox else [])
    # --data-dir (an override, taken from here on purpose) is not the file's
    relative = [key for key in keys if not Path(getattr(settings, key)).expanduser().is_absolute()
                and written.get(key, getattr(Settings, key)) == getattr(settings, key)]
    if not relative:
        return []
    shown = ", ".join(f"{key} = {toml_repr(getattr(settings, key))} ({here / getattr(settings, key)})"
                      for key in relative)
    return [f"{at(relative[0])}: {shown}: relative paths are taken from the folder digest runs in ({here}), not "
            f"from the config file's ({home}), so a command run from another folder uses other ones; run digest "
            f"from {home} (a service: WorkingDirectory={home}), or write absolute paths"]


def load_settings(path: str | Path | None = None, *, local: bool = True, **overrides: Any) -> Settings:
    """Read ``config.toml`` (``path``, else ``$DIGEST_CONFIG``, else ./config.toml if present and ``local``, else
    the defaults)."""
    explicit = path or os.environ.get("DIGEST_CONFIG")
    candidate = Path(explicit) if explicit else Path("config.toml") if local else None
    table: dict = {}
    text = ""
    source = "(defaults)"
    if candidate is not None and candidate.exists():
        source = str(candidate)
        text = read_text_file(candidate, ConfigError, "cannot read the config file",
                              "pass a file with --config or $DIGEST_CONFIG")
        table = parse_toml(text, candidate, ConfigError)
    elif explicit:
        # most often a typo in --config or $DIGEST_CONFIG: never suggest creating a file under the typo's name
        siblings = [p.name for p in candidate.parent.glob("*.toml")] if candidate.parent.is_dir() else []
        close = difflib.get_close_matches(candidate.name, siblings, n=1)
        hint = f"did you mean {candidate.with_name(close[0])}? " if close else ""
        raise ConfigError(f"{candidate}: no such file (check the path given with --config or DIGEST_CONFIG; {hint}"
                          "to start a config, copy config.example.toml)")
    table = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    problems: list[str] = []
    settings = _build(Settings, table, "", source, text, problems)
    for section in (settings.imap, settings.smtp):
        name = "imap" if section is settings.imap else "smtp"
        if section.security == "plain" and section.host not in ("", *LOOPBACK):
            line = toml_line(text, f"{name}.security") if text else None
            problems.append(f"{source}{f':{line}' if line else ''}: {name}.security = \"plain\" is only allowed for "
                            f"localhost (host is {section.host!r}); use \"tls\" or \"starttls\"")
    if problems:  # every mistake of the file at once, one per line
        raise ConfigError(problems=problems)
    return dataclasses.replace(settings, source=source)
