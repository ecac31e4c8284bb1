"""The exception hierarchy. Every message says what is wrong, where (file, key, line) and how to fix it.

    DigestError
     +-- ConfigError        config.toml or a profile file is invalid
     |    +-- ProfileError  one profile file is invalid (the other users go on)
     +-- ParseError         an email looked like a paper alert but could not be parsed, or is no email at all
     +-- MailboxError       the IMAP server refused us: login, TLS, STARTTLS, a folder (see ingest.py)
     +-- StoreError         the database is unusable (e.g. written by a newer version)
     +-- DeliveryError      a digest could not be delivered (SMTP or outbox)
     +-- TokenError         a feedback link or reply token is altered, forged, expired or for another user
"""

import functools
import re


class DigestError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""

    exit_code = 1


class ConfigError(DigestError):
    """A configuration problem; several at once (every mistake of a config.toml) print one per line."""

    exit_code = 2

    def __init__(self, message: str = "", problems: list[str] | None = None):
        self.problems = problems or [message]
        super().__init__(message or "\n".join(self.problems))


class ProfileError(ConfigError):
    pass


class ParseError(DigestError):
    pass


class MailboxError(DigestError):
    """The IMAP account cannot be used as configured (login, TLS, STARTTLS, folder). Not retried."""


class StoreError(DigestError):
    """The database file cannot be used (damaged, another program's, from a newer digest, nowhere to keep it):
    a setup error like a config one, so a service manager does not restart into it (exit 2)."""

    exit_code = 2


class DeliveryError(DigestError):
    """``permanent``: the server refused the message (5xx), so it is not tried again for this period.
    ``attempts``: how many SMTP sessions were tried before giving up (0 when none could start).
    ``unconfirmed``: the last attempt handed the message over (DATA) and the connection broke before the server's
    reply, and no further handover was allowed: the server may well have it, so it is not sent again.
    ``too_large``: refused for its size (nothing went out), so a smaller digest may be composed instead."""

    def __init__(self, message: str, *, permanent: bool = False, attempts: int = 0, unconfirmed: bool = False,
                 too_large: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.attempts = attempts
        self.unconfirmed = unconfirmed
        self.too_large = too_large


class TokenError(DigestError):
    pass


def toml_repr(value) -> str:
    """A value as it is written in a TOML file: ``true``, ``"text"``, ``[1, 2]`` (for "got ..." in messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_repr(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def read_text_file(path, error: type[DigestError], cannot_read: str = "cannot read", fix: str = "") -> str:
    """A config or profile file's text; not UTF-8, a folder or unreadable is one ``error`` naming the file."""
    try:
        if path.is_fifo() or path.is_socket():  # reading a named pipe would block forever
            raise error(f"{path}: not a regular file (a named pipe or socket); move it away"
                        f"{'; ' + fix if fix else ''}")
        # utf-8-sig: Windows editors (Notepad) may start the file with a byte-order mark, which TOML forbids
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raw = exc.object if isinstance(exc.object, bytes) else b""
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise error(f"{path}: UTF-16 text (as Windows Notepad saves \"Unicode\"); save the file as UTF-8") \
                from None
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at column {column}, e.g. "
                    "Latin-1 from an older editor); save the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: {cannot_read} ({exc.strerror}){'; ' + fix if fix else ''}") from None


_NAME = r"""(?:[\w\-]+|"[^"\n]*"|'[^'\n]*')"""  # a bare or quoted key
_DOTTED = rf"{_NAME}(?:\s*\.\s*{_NAME})*"
_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]\s*(#.*)?$")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")


def _key_name(written: str) -> str:
    """``"mute" . 'keywords'`` -> ``mute.keywords``: the key as the error messages name it."""
    return ".".join(part.strip().strip("\"'") for part in re.findall(_NAME, written))


_PATH = re.compile(r"(?:([\w\-]+)(?:\[(\d+)\])?\.)?([\w\-]+)(?:\[(\d+)\])?")


def toml_line(text: str, key: str) -> int | None:
    """The line of ``key`` in a TOML text, where the value that is wrong actually sits.

    ``key`` is a path as the error messages name it: ``paused`` (top level), ``mute.keywords`` (key of a
    table), ``interests[2].weight`` (key of the third ``[[interests]]``), ``interests[2]`` (that table's
    header), ``imap`` (a table). Keys are looked for inside the right table, so ``keywords`` under ``[mute]``
    is not reported at the ``keywords`` of ``[boost]``. None when the key is not written in the file (a default,
    or a layout this does not follow). The text is read once (``_toml_index``), so naming a line for each of
    thousands of seeds stays linear."""
    m = _PATH.fullmatch(key)
    if not m:
        return None
    table, leaf = m.group(1), m.group(3)
    index, leaf_index = (int(g) if g is not None else None for g in (m.group(2), m.group(4)))
    found = _toml_index(text)
    if table is None:
        # the [[leaf]] (the first, or the one numbered), the [leaf] table, or a top-level leaf = / leaf.x =
        lines = [found.get(("array", leaf, leaf_index)), found.get(("top", leaf))]
        if leaf_index is None:
            lines.append(found.get(("table", leaf)))
    else:
        # the sub-table [table.leaf], leaf = inside [table] (or the numbered [[table]]), a dotted table.leaf =
        lines = [found.get(("table", f"{table}.{leaf}")), found.get(("in", table, index, leaf)),
                 found.get(("top-dotted", f"{table}.{leaf}"))]
    lines = [line for line in lines if line is not None]
    if lines:
        return min(lines)
    # not written in the file (a required key that is missing), an inline table (boost = {keywords = [...]}) or
    # a dotted layout: the line of the table entry itself, else of the table
    if table is not None and index is not None:
        return toml_line(text, f"{table}[{index}]") or toml_line(text, table)
    return toml_line(text, table) if table is not None else None


@functools.lru_cache(maxsize=16)
def _toml_index(text: str) -> dict[tuple, int]:
    """Every place ``toml_line`` looks for, with the first line it is written on, from one pass over ``text``."""
    found: dict[tuple, int] = {}
    current, current_index = None, None
    counts: dict[str, int] = {}
    in_string = None  # the quotes of a multi-line string being read: its lines are text, not TOML
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = None
            continue
        if header := _ARRAY_HEADER.match(line):
            current = _key_name(header.group(1))
            current_index = counts.get(current, 0)
            counts[current] = current_index + 1
            found.setdefault(("array", current, None), number)
            found.setdefault(("array", current, current_index), number)
            continue
        if header := _HEADER.match(line):
            current, current_index = _key_name(header.group(1)), None
            found.setdefault(("table", current), number)
            continue
        if not (assign := _ASSIGN.match(line)):
            continue
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2:
                in_string = quotes
        name = _key_name(assign.group(1))
        if current is None:
            found.setdefault(("top", name.split(".")[0]), number)
            found.setdefault(("top-dotted", name), number)
        else:
            found.setdefault(("in", current, None, name), number)
            if current_index is not None:
                found.setdefault(("in", current, current_index, name), number)
    return found


def parse_toml(text: str, path, error: type[DigestError]) -> dict:
    """``text`` as TOML; a syntax error is one ``error`` naming the file, line, the key written there and the
    usual fix for that kind of slip."""
    import tomllib

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise error(f"{path}: not valid TOML: brackets nested too deep to read; look for a run of [ or {{") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        lines = text.splitlines()
        where = re.search(r"\(at line (\d+), column \d+\)", message)
        number = int(where[1]) if where else len(lines) if "(at end of document)" in message and lines else None
        line = lines[number - 1] if number and number <= len(lines) else ""
        key = _ASSIGN.match(line)
        about = f" (the line of {_key_name(key[1])})" if key else ""
        at = f"{path}:{number}" if number else str(path)
        raise error(f"{at}: not valid TOML{about}: {message}; {_toml_fix(message, line)}") from None


def _toml_fix(message: str, line: str) -> str:
    """The usual fix for a TOML syntax error, from the reader's message and the line it names."""
    if "(at end of document)" in message:
        return "the file ends inside a value: a [ or a quote is still open"
    if message.startswith("Cannot overwrite a value") and re.match(r"\s*\[\[", line):
        return ("this [[block]] has a [block] of the same name above it, with single brackets: each interest or "
                "seed is its own [[interests]] or [[seeds]] block, with double brackets, all of them")
    if message.startswith("Cannot overwrite a value"):
        return "a key is written twice: keep one of the two lines"
    if message.startswith("Cannot declare") and "twice" in message:
        return ("a [table] is declared twice: merge the two into one (each interest or seed is its own "
                "[[interests]] or [[seeds]] block, with double brackets)")
    if "\\" in line and ("escape" in message.lower() or "hex value" in message.lower()):
        return ("a backslash in \"...\" starts an escape: write a Windows path in single quotes ('C:\\Users\\...') or "
                "double each backslash")
    if "“" in line or "”" in line or "‘" in line or "’" in line:
        return "use straight quotes (\") around text, not typographic ones (“”)"
    if message.startswith(("Invalid value", "Expected newline or end of document")):
        return ("text goes in quotes (send_at = \"07:30\", timezone = \"Europe/London\"), true and false are lower "
                "case, and numbers use a point (0.2)")
    return "check quotes and brackets on that line"
