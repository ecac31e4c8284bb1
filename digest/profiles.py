"""User profiles: ``profiles/NAME.toml``, edited by hand. The file stem is the user's id.

Loading is pure (text -> Profile). Every problem is a ``ProfileError`` naming the file, the key, the line
where we can find it, and the fix. A broken file never stops the other users: ``load_profiles`` returns the
good profiles, the errors, and falls back to the last good text of a broken file when it is given one.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path

from .config import MAX_UNCLIPPED_ITEMS, ascii_domain, valid_address
from .errors import ProfileError, parse_toml, read_text_file, toml_line, toml_repr
from .models import arxiv_ref, doi_ref, normalise_title

MAX_INTERESTS = 100  # facets a profile may have (each is embedded, and compared with every paper)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEND_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")  # "7:30" is "07:30"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TWELVE_HOUR = re.compile(r"^\s*(0?[1-9]|1[0-2])(?:[:.h]([0-5]\d))?\s*([ap])\.?\s*m\.?\s*$", re.I)


def _twelve_hour(text: str) -> str | None:
    """A time written the 12-hour way ("7:30pm", "7 PM", "12.15 a.m.") in 24-hour HH:MM, else None."""
    m = _TWELVE_HOUR.match(text)
    if m is None:
        return None
    hour = int(m[1]) % 12 + (12 if m[3].lower() == "p" else 0)
    return f"{hour:02d}:{m[2] or '00'}"


def is_user_id(name: str) -> bool:
    """A profile file's stem that names a user (lower case, no editor's lock or backup prefix)."""
    return bool(_USER.match(name))

# key -> (example shown in errors, type check)
TOP_KEYS = {
    "name": '"Ada Lovelace"',
    "email": '"ada@example.org"',
    "timezone": '"Europe/London"',
    "send_at": '"07:30"',
    "frequency": '"daily"  (or "weekdays", "weekly:mon", "weekly:mon,thu")',
    "max_items": "12",
    "relevance_floor": "0.2",
    "quiet_day": '"note"  (or "skip")',
    "paused": "false",
    "interests": '[{ label = "Protein design", description = "diffusion models for protein structure" }]',
    "seeds": '[{ arxiv = "2106.09685" }, { doi = "10.1038/s41586-021-03819-2" }, { title = "..." }]',
    "library": '"ada-zotero.bib"  (BibTeX, RIS or CSL JSON; a path relative to this file, or a list of them)',
    "boost": '{ keywords = ["diffusion"], authors = ["Yann LeCun"] }',
    "mute": '{ keywords = ["survey"], authors = [] }',
}
INTEREST_KEYS = {"label": '"Protein design"', "description": '"diffusion models for protein structure"', "weight": "1.0"}
SEED_KEYS = {"arxiv": '"2106.09685"', "doi": '"10.1038/s41586-021-03819-2"', "title": '"Attention is all you need"',
             "abstract": '"The dominant sequence transduction models ..."'}
# top-level keys of other TOML files that end up in a profiles folder (digest's config, a pyproject.toml)
_NOT_PROFILE_KEYS = {"imap", "smtp", "web", "model", "ranking", "data_dir", "profiles_dir", "outbox", "log_level",
                     "project", "build-system", "tool"}
LIST_KEYS = {"keywords": '["diffusion", "sparse attention"]', "authors": '["Yann LeCun"]'}


@dataclass(frozen=True)
class Interest:
    label: str
    description: str
    weight: float = 1.0

    @property
    def text(self) -> str:
        return f"{self.label}: {self.description}" if self.description else self.label


@dataclass(frozen=True)
class Seed:
    arxiv: str | None = None
    doi: str | None = None
    title: str | None = None
    abstract: str | None = None
    line: int | None = field(default=None, compare=False)  # of its arxiv (else doi) key in the profile, for messages

    @property
    def label(self) -> str:
        return self.title or (f"arXiv:{self.arxiv}" if self.arxiv else f"doi:{self.doi}")


@dataclass(frozen=True)
class Profile:
    user: str
    name: str
    email: str
    timezone: str = "UTC"
    send_at: str = "07:00"
    frequency: str = "daily"
    max_items: int | None = None  # None: the config's ranking.default_max_items
    relevance_floor: float | None = None
    quiet_day: str = "note"
    paused: bool = False
    interests: tuple[Interest, ...] = ()
    seeds: tuple[Seed, ...] = ()
    library: tuple[str, ...] = ()  # exported reference-manager files (absolute paths), read by load_profiles
    library_seeds: tuple[Seed, ...] = ()  # their entries, as seeds (see digest/library.py)
    library_line: int | None = field(default=None, compare=False)  # the line of `library` in the file
    boost_keywords: tuple[str, ...] = ()
    boost_authors: tuple[str, ...] = ()
    mute_keywords: tuple[str, ...] = ()
    mute_authors: tuple[str, ...] = ()
    path: str = field(default="", compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)  # problems that did not stop the file (warnings)

    @property
    def send_days(self) -> tuple[int, ...]:
        """Weekday numbers (Mon=0) on which a digest is due."""
        return frequency_days(self.frequency)


_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(name: str) -> int | None:
    """'mon', 'Mon', 'monday', 'Thurs' -> the weekday number (Mon=0); anything else -> None."""
    name = name.strip().lower()
    if len(name) >= 3:
        for i, full in enumerate(_DAY_NAMES):
            if full.startswith(name):
                return i
    return None


def frequency_days(frequency: str) -> tuple[int, ...]:
    frequency = frequency.strip().lower()
    if frequency == "daily":
        return tuple(range(7))
    if frequency == "weekdays":
        return tuple(range(5))
    if frequency.startswith("weekly:"):
        days = [_weekday(d) for d in frequency.split(":", 1)[1].split(",")]
        if days and None not in days:
            return tuple(sorted(set(days)))
    raise ValueError(frequency)


def is_send_day(profile: Profile, now: datetime | None = None) -> bool:
    """Whether the user's local day at ``now`` is one of their ``frequency``'s days."""
    return date.fromisoformat(local_period(profile, now)).weekday() in profile.send_days


def local_period(profile: Profile, now: datetime | None = None) -> str:
    """A digest's period: the user's local calendar date at ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    return now.astimezone(zoneinfo.ZoneInfo(profile.timezone)).date().isoformat()


def _same_authors(boosted: tuple[str, ...], muted: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (boosted, muted) pairs that name one author as the ranking matches authors ("Yu, Geng" and "Geng Yu",
    "Y LeCun" and "Yann LeCun"), leaving out those written alike, which the keyword check reports."""
    if not boosted or not muted:
        return []
    from .rank import author_match  # here: rank imports this module

    return [(b, m) for b in boosted for m in muted
            if b.lower() != m.lower() and (author_match(b, [m]) or author_match(m, [b]))]


class _Checker:
    """Collects the location of a problem so every message reads `file:line: key: what, e.g. example`."""

    def __init__(self, path: str, text: str):
        self.path, self.text = path, text
        self.errors: list[ProfileError] = []  # every problem of the file, so one `check` lists them all

    @contextlib.contextmanager
    def section(self):
        """A part of the file checked on its own: its problem is kept and the next part is checked too."""
        try:
            yield
        except ProfileError as exc:
            self.errors.append(exc)

    def problem(self, key: str, problem: str, example: str | None = None) -> None:
        """A problem of the file, kept; the checks go on (``fail`` is the same as an exception to raise)."""
        self.errors.append(self.fail(key, problem, example))

    def raise_errors(self) -> None:
        if self.errors:
            raise ProfileError("\n  ".join(map(str, self.errors)))

    def fail(self, key: str, problem: str, example: str | None = None) -> ProfileError:
        line = toml_line(self.text, key)
        where = f"{self.path}:{line}" if line else self.path
        hint = f"; for example: {key.split('.')[-1].split('[')[0]} = {example}" if example else ""
        return ProfileError(f"{where}: {key}: {problem}{hint}")

    def unknown(self, table: Mapping, allowed: Mapping[str, str], prefix: str = "") -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                fix = f'did you mean "{close[0]}"?' if close else f"allowed keys: {', '.join(allowed)}"
                if not prefix and key in ("keywords", "authors", "keyword", "author"):
                    # [keywords] boost = [...]: the tables are the other way round
                    plural = key.rstrip("s") + "s"
                    fix = (f"{plural} go under [boost] or [mute]: write [boost] then {plural} = [...] on the next "
                           f"line (and [mute] with its own {plural} = [...])")
                if prefix and key in TOP_KEYS:
                    # a classic TOML slip: a top-level key written below a [table] belongs to that table
                    fix = f"{key} is a top-level key: move it above the first [table] or [[table]] line"
                self.problem(f"{prefix}{key}", f"unknown key ({fix})")

    def string(self, table: Mapping, key: str, example: str, prefix: str = "", required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(prefix + key, "is required", example)
            return None
        if isinstance(value, date | dt_time):
            # send_at = 07:30:00 without quotes is a TOML time, not text
            raise self.fail(prefix + key, f"must be text in quotes (got the unquoted {value.isoformat()})", example)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(prefix + key, f"must be a non-empty string (got {toml_repr(value)})", example)
        return value.strip()

    def strings(self, table: Mapping, key: str, prefix: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(prefix + key, f"must be a list of strings (got {toml_repr(value)})", LIST_KEYS[key])
        return tuple(v.strip() for v in value)


# legacy zone names that are fixed offsets, though the places people mean by them change clocks in summer
_FIXED_OFFSET_ZONES = {"EST": '"America/New_York"', "MST": '"America/Denver" (or "America/Phoenix", which has no '
                       'daylight saving)'}


_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+\-−])\s*(\d{1,2})(?::?(\d\d))?", re.IGNORECASE)
_ETC_GMT = re.compile(r"Etc/GMT([+-])(\d{1,2})")


def _zone_hint(name: str) -> str:
    """'; did you mean "Europe/London"?' for a zone written in the wrong case or misspelled, else ''. An offset
    ("UTC+1", "+05:30") is not a zone: the hint says so, and how to write a fixed offset if that is really meant."""
    if offset := _OFFSET.fullmatch(name.strip()):
        sign, hours, minutes = offset.groups()
        behind = sign != "+"
        fixed = f'"Etc/GMT{"+" if behind else "-"}{int(hours)}"' if minutes in (None, "00") else None
        return ("; an offset from UTC is not a time zone: name your city's zone (e.g. \"Europe/Berlin\", "
                "\"Asia/Kolkata\"), which also follows summer time" +
                (f", or for a fixed offset write {fixed} (the sign of Etc/GMT zones is inverted, as POSIX "
                 "writes them)" if fixed else ""))
    zones = zoneinfo.available_timezones()
    by_lower = {z.lower(): z for z in zones}
    if name.upper() in _ABBREVIATIONS:
        return f"; {name.upper()} is an abbreviation, not a zone: name a city's zone, e.g. {_ABBREVIATIONS[name.upper()]}"
    # a city alone ("Chicago", "new york"): the zones named after it
    city = re.sub(r"\s+", "_", name.strip()).lower()
    cities = sorted(z for z in zones if "/" in z and z.rsplit("/", 1)[1].lower() == city and not z.startswith("Etc/"))
    if cities:
        return f'; did you mean "{cities[0]}"?' + (f" (or {', '.join(repr(c) for c in cities[1:3])})"
                                                   if len(cities) > 1 else "")
    close = [by_lower[name.lower()]] if name.lower() in by_lower else \
        difflib.get_close_matches(name, sorted(zones), n=1, cutoff=0.8)
    return f'; did you mean "{close[0]}"?' if close else ""


# time zone abbreviations people write for their zone (those that are not zones themselves): a likely city
_ABBREVIATIONS = {"CST": '"America/Chicago"', "CDT": '"America/Chicago"', "PST": '"America/Los_Angeles"',
                  "PDT": '"America/Los_Angeles"', "EDT": '"America/New_York"', "MDT": '"America/Denver"',
                  "BST": '"Europe/London"', "CEST": '"Europe/Berlin"', "JST": '"Asia/Tokyo"',
                  "AEST": '"Australia/Sydney"', "AEDT": '"Australia/Sydney"', "IST": '"Asia/Kolkata" (India) or '
                  '"Europe/Dublin" (Ireland)', "SGT": '"Asia/Singapore"', "KST": '"Asia/Seoul"'}


def _email(check: _Checker, data: Mapping) -> str:
    email = check.string(data, "email", TOP_KEYS["email"], required=True)
    local, _, domain = email.rpartition("@")
    if _EMAIL.match(email) and not local.isascii():
        raise check.fail("email", f"{toml_repr(email)} has a user name in non-ASCII letters, which only mail sent with "
                         "SMTPUTF8 can reach, and digest does not send that; give an ASCII address of the same "
                         "mailbox (most have one, an alias)", TOP_KEYS["email"])
    if _EMAIL.match(email) and not domain.isascii():
        try:  # an internationalised domain: its ASCII form (IDNA) reaches the same mailbox, with any server
            email = ascii_domain(email)
        except UnicodeError:
            raise check.fail("email", f"the domain of {toml_repr(email)} has no ASCII form (IDNA); check its "
                             "spelling", TOP_KEYS["email"]) from None
    if not _EMAIL.match(email) or not valid_address(email):
        raise check.fail("email", f"must be one email address, user@host (got {toml_repr(email)})", TOP_KEYS["email"])
    return email


def _timezone(check: _Checker, data: Mapping) -> str:
    timezone = check.string(data, "timezone", TOP_KEYS["timezone"]) or "UTC"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: "Europe" names a folder of the zone database, not a zone
        hint = _zone_hint(timezone)
        raise check.fail("timezone", f"unknown IANA time zone {timezone!r}{hint}",
                         None if hint else TOP_KEYS["timezone"]) from None
    return timezone


def _interest(check: _Checker, i: int, item) -> Interest:
    prefix = f"interests[{i}]."
    if not isinstance(item, dict):
        raise check.fail(f"interests[{i}]", "must be a table with label and description", TOP_KEYS["interests"])
    check.unknown(item, INTEREST_KEYS, prefix)
    label = check.string(item, "label", INTEREST_KEYS["label"], prefix, required=True)
    description = check.string(item, "description", INTEREST_KEYS["description"], prefix) or ""
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 5:
        raise check.fail(prefix + "weight", f"must be a number above 0 and at most 5 (got {toml_repr(weight)})",
                         INTEREST_KEYS["weight"])
    return Interest(label, description, float(weight))


def _seed(check: _Checker, i: int, item, notes: list[str]) -> Seed:
    prefix = f"seeds[{i}]."
    if not isinstance(item, dict):
        raise check.fail(f"seeds[{i}]", "must be a table with arxiv, doi or title", TOP_KEYS["seeds"])
    check.unknown(item, SEED_KEYS, prefix)
    seed = Seed(*(check.string(item, k, SEED_KEYS[k], prefix) for k in ("arxiv", "doi", "title", "abstract")))
    if not (seed.arxiv or seed.doi or seed.title):
        raise check.fail(f"seeds[{i}]", "needs an arxiv id, a doi or a title", TOP_KEYS["seeds"])
    for key, read, problem in (
            ("arxiv", arxiv_ref, "is not an arXiv id ({got}); an id looks like 2106.09685 or hep-th/9901001, "
                                   "an arxiv.org link works too"),
            ("doi", doi_ref, "is not a DOI ({got}); a DOI starts with 10. and has a slash, a doi.org link "
                               "works too")):
        value = getattr(seed, key)
        if not value:
            continue
        good = read(value)
        if good is None:
            message = problem.format(got=f"got {toml_repr(value)}")
            if not seed.title:
                raise check.fail(prefix + key, message, SEED_KEYS[key])
            # the title still finds the paper: serve it, and say what to fix
            notes.append(str(check.fail(prefix + key, message + "; the seed is used by its title meanwhile",
                                        SEED_KEYS[key])))
        seed = replace(seed, **{key: good})
    return replace(seed, line=toml_line(check.text, prefix + ("arxiv" if seed.arxiv else "doi"))
                   or toml_line(check.text, f"seeds[{i}]"))


def parse_profile(text: str, path: str | Path) -> Profile:
    """Validate one profile file's text. Raises ProfileError naming the file, key, line and the fix."""
    path = str(path)
    user = Path(path).stem
    check = _Checker(path, text)
    if not is_user_id(user):
        raise ProfileError(f"{path}: the file name must be a short lower-case user id like profiles/ada.toml")
    data = parse_toml(text, path, ProfileError)
    foreign = sorted(set(data) & _NOT_PROFILE_KEYS)
    if foreign and not set(data) & set(TOP_KEYS):
        raise ProfileError(f"{path}: not a profile (it has {', '.join(foreign)}, none of a profile's keys): the "
                           "profiles folder (profiles_dir in config.toml) must hold only profiles; move this file "
                           "out, or give the profiles a folder of their own")
    if not data:
        raise ProfileError(f"{path}: empty (only comments, or nothing): a profile needs at least an email and one "
                           "[[interests]] entry or [[seeds]] paper; start from a copy of profiles/ada.toml")
    check.unknown(data, TOP_KEYS)
    # each part is checked on its own (check.section), so a file with several mistakes gets them all at once
    email = ""
    with check.section():
        email = _email(check, data)
    name, timezone, send_at, frequency = user, "UTC", "07:00", "daily"
    with check.section():
        name = check.string(data, "name", TOP_KEYS["name"]) or user
        if any(ord(c) < 32 for c in name):
            raise check.fail("name", "must be one line: it greets the user and goes into the To: header (got "
                             f"{toml_repr(name)})", TOP_KEYS["name"])
    with check.section():
        timezone = _timezone(check, data)
    with check.section():
        given = check.string(data, "send_at", TOP_KEYS["send_at"]) or "07:00"
        if not _SEND_AT.fullmatch(given):
            meant = _twelve_hour(given)
            raise check.fail("send_at", f'must look like "07:30", 24-hour HH:MM (got {toml_repr(given)})',
                             f'"{meant}"' if meant else TOP_KEYS["send_at"])
        send_at = given.zfill(5)
    with check.section():
        given = check.string(data, "frequency", TOP_KEYS["frequency"]) or "daily"
        try:
            frequency_days(given)
        except ValueError:
            day = " needs its day or days: for example \"weekly:mon\" or \"weekly:mon,thu\"" \
                if given.strip().lower() in ("weekly", "weekly:") else ""
            raise check.fail("frequency", f"unknown frequency {given!r}{day}", None if day else TOP_KEYS["frequency"]) \
                from None
        frequency = given
    max_items = data.get("max_items")
    if max_items is not None and (not isinstance(max_items, int) or isinstance(max_items, bool)
                                  or not 1 <= max_items <= 100):
        check.problem("max_items", f"must be a whole number from 1 to 100 (got {toml_repr(max_items)})",
                      TOP_KEYS["max_items"])
        max_items = None
    floor = data.get("relevance_floor")
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor <= 1):
        check.problem("relevance_floor", f"must be a number from 0 to 1 (got {toml_repr(floor)})",
                      TOP_KEYS["relevance_floor"])
    quiet_day = "note"
    with check.section():
        quiet_day = check.string(data, "quiet_day", TOP_KEYS["quiet_day"]) or "note"
        if quiet_day not in ("note", "skip"):
            raise check.fail("quiet_day", f'must be "note" or "skip" (got {toml_repr(quiet_day)})', TOP_KEYS["quiet_day"])
    paused = data.get("paused", False)
    if not isinstance(paused, bool):
        check.problem("paused", f"must be true or false (got {toml_repr(paused)})", TOP_KEYS["paused"])

    interests = []
    raw_interests = data.get("interests", [])
    if not isinstance(raw_interests, list):
        check.problem("interests", "must be a list of [[interests]] tables", TOP_KEYS["interests"])
        raw_interests = []
    if len(raw_interests) > MAX_INTERESTS:
        # each interest is a text to embed and a facet every paper is compared with: a file of thousands (a list
        # pasted in by mistake, a generated file) would take minutes at each first ranking
        check.problem("interests", f"{len(raw_interests)} [[interests]] entries, more than the {MAX_INTERESTS} "
                      "a profile may have; merge close ones into one description, and give papers you want more of "
                      "as [[seeds]] or a library file instead")
        raw_interests = []
    for i, item in enumerate(raw_interests):
        with check.section():
            interests.append(_interest(check, i, item))

    seeds = []
    notes: list[str] = []
    if etc := _ETC_GMT.fullmatch(timezone):
        sign, hours = etc.groups()
        if int(hours):
            real = f"UTC{'-' if sign == '+' else '+'}{int(hours)}"
            notes.append(str(check.fail("timezone", f"{timezone!r} is {real} (the sign of Etc/GMT zones is "
                                                    f"inverted, as POSIX writes them): if you meant "
                                                    f"UTC{sign}{int(hours)}, write \"Etc/GMT{'-' if sign == '+' else '+'}"
                                                    f"{int(hours)}\", or better your city's zone, which also follows "
                                                    f"summer time")))
    elif timezone.lower() in ("localtime", "posixrules", "factory"):
        notes.append(str(check.fail("timezone", f"{timezone!r} is not a place: it follows whatever this server is "
                                                f"set to, so digests move if the server does; name your city's zone "
                                                f"instead", TOP_KEYS["timezone"])))
    if timezone in _FIXED_OFFSET_ZONES:
        notes.append(str(check.fail("timezone", f"{timezone!r} is a fixed offset from UTC without daylight saving "
                                                f"time, so in summer digests come an hour off; name your city's "
                                                f"zone instead", _FIXED_OFFSET_ZONES[timezone])))
    if max_items is not None and max_items > MAX_UNCLIPPED_ITEMS:
        notes.append(str(check.fail("max_items", f"{max_items} papers make an email of more than Gmail's ~102 KB "
                                                 f"(about {MAX_UNCLIPPED_ITEMS} fit), where Gmail cuts it off "
                                                 f"(\"[Message clipped]\"), so the email shows the papers that fit "
                                                 f"and links to the others on the digest's web page", TOP_KEYS["max_items"])))
    raw_seeds = data.get("seeds", [])
    if not isinstance(raw_seeds, list):
        check.problem("seeds", "must be a list of [[seeds]] tables", TOP_KEYS["seeds"])
        raw_seeds = []
    for i, item in enumerate(raw_seeds):
        with check.section():
            seeds.append(_seed(check, i, item, notes))
    library = data.get("library", [])
    if isinstance(library, str):
        library = [library]
    if not isinstance(library, list) or not all(isinstance(v, str) and v.strip() for v in library):
        check.problem("library", "must be a file name or a list of them (got "
                      f"{toml_repr(data.get('library'))})", TOP_KEYS["library"])
        library = [v for v in library if isinstance(v, str) and v.strip()] if isinstance(library, list) else []
    # a file of another format (or name) is the library's error, reported with the file: the rest of the
    # profile serves meanwhile
    resolved = []
    for file in library:
        try:
            resolved.append(str((Path(path).parent / Path(file.strip()).expanduser()).resolve()))
        except (RuntimeError, ValueError, OSError) as exc:  # "~nobody/a.bib" (no such user), a NUL byte
            check.problem("library", f"{toml_repr(file)} is no usable file name ({exc}); give the "
                          "path of the export file, relative to this profile or absolute",
                          TOP_KEYS["library"])
    library = tuple(resolved)
    if not data.get("interests") and not data.get("seeds") and not data.get("library"):
        check.errors.append(ProfileError(f"{path}: add at least one [[interests]] entry or one [[seeds]] paper, for "
                                         'example:\n[[interests]]\nlabel = "Protein design"\ndescription = '
                                         '"diffusion models for proteins"'))

    lists = {f"{table_key}_{key}": () for table_key in ("boost", "mute") for key in LIST_KEYS}
    for table_key in ("boost", "mute"):
        table = data.get(table_key, {})
        if not isinstance(table, dict):
            check.problem(table_key, "must be a table", TOP_KEYS[table_key])
            continue
        check.unknown(table, LIST_KEYS, f"{table_key}.")
        for key in LIST_KEYS:
            values = ()
            with check.section():
                values = check.strings(table, key, f"{table_key}.")
            kept = []
            for i, value in enumerate(values):
                if not value:
                    notes.append(str(check.fail(f"{table_key}.{key}", f"entry {i + 1} is empty; it is ignored: "
                                                f"remove it, or write the {key[:-1]} there", LIST_KEYS[key])))
                elif not re.search(r"\w", value):
                    # "," or "-" as a keyword matches nearly every abstract: a mute would empty the digest
                    notes.append(str(check.fail(f"{table_key}.{key}", f"{toml_repr(value)} (entry {i + 1}) has no "
                                                f"letter or digit, so it would match almost every paper; it is "
                                                f"ignored: write each {key[:-1]} as its own quoted string",
                                                LIST_KEYS[key])))
                elif value.lower() not in (v.lower() for v in kept):
                    kept.append(value)
            lists[f"{table_key}_{key}"] = tuple(kept)
    for key in LIST_KEYS:
        both = sorted({v.lower() for v in lists[f"boost_{key}"]} & {v.lower() for v in lists[f"mute_{key}"]})
        if both:
            notes.append(str(check.fail(f"mute.{key}", f"{', '.join(map(toml_repr, both))} is both boosted and "
                                        f"muted; the mute wins (papers that match are left out): keep it in one "
                                        f"of [boost] and [mute]")))
    for boosted, muted in _same_authors(lists["boost_authors"], lists["mute_authors"]):
        notes.append(str(check.fail("mute.authors", f"{toml_repr(muted)} and {toml_repr(boosted)} in [boost] "
                                    f"authors are one author to the ranking (the same surname and first "
                                    f"initial), so their papers are both boosted and muted; the mute wins (they "
                                    f"are left out): keep the author in one of [boost] and [mute]")))
    check.raise_errors()
    labels = [i.label.lower() for i in interests]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            notes.append(str(check.fail(f"interests[{i}].label", f"{toml_repr(interests[i].label)} is the label of "
                                        f"interests[{labels.index(label)}] too, so a reason naming it cannot tell "
                                        f"which one matched: give each interest its own label")))

    return Profile(user=user, name=name, email=email, timezone=timezone, send_at=send_at, frequency=frequency,
                   max_items=max_items, relevance_floor=None if floor is None else float(floor),
                   quiet_day=quiet_day, paused=paused, interests=tuple(interests), seeds=tuple(seeds),
                   library=library, library_line=toml_line(text, "library") if library else None, path=path,
                   notes=tuple(notes), **lists)


def load_profile(path: Path) -> Profile:
    return parse_profile(read_text_file(path, ProfileError), path)


@dataclass(frozen=True)
class LoadedProfiles:
    profiles: dict[str, Profile]
    errors: list[ProfileError]
    texts: dict[str, str]          # the text of every profile that loaded (to keep as its last good version)
    stale: tuple[str, ...] = ()    # users served from their last good version because the file is broken now
    warnings: list[str] = field(default_factory=list)  # library entries skipped (the rest of the library serves)
    unserved: tuple[str, ...] = ()  # users whose file did not load (or lost its address) with nothing serving them


def with_library(profile: Profile) -> tuple[Profile, list[ProfileError], list[str]]:
    """The profile with the seeds of its ``library`` files; a file that cannot be used is an error that leaves
    the rest of the profile (and that file's last good read, if any) serving; skipped entries are warnings."""
    if not profile.library:
        return profile, [], []
    from .library import read_library

    seeds, errors, warnings = [], [], []
    seen: set[tuple[str, str]] = set()  # a paper in two of the files (or a file named twice) counts once
    for name in profile.library:
        read = read_library(name)
        for seed in read.seeds:
            keys = {("arxiv", seed.arxiv), ("doi", seed.doi), ("title", normalise_title(seed.title or ""))} - {
                ("arxiv", None), ("doi", None), ("title", "")}
            if not keys & seen:
                seeds.append(seed)
            seen |= keys
        warnings.extend(read.problems)
        if read.error:
            kept = (f"; until it is fixed, its last good read ({len(read.seeds)} papers) keeps serving"
                    if read.stale else "")
            where = f"{profile.path}:{profile.library_line}" if profile.library_line else profile.path
            errors.append(ProfileError(f"{where}: library: {read.error}{kept}"))
    return replace(profile, library_seeds=tuple(seeds)), errors, warnings


def display_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it ("" for none)."""
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# the addresses of the example profiles (profiles/ada.toml, ben.toml): a copy of one that keeps its address
EXAMPLE_EMAILS = frozenset({"ada@example.org", "ben@example.org"})


def load_profiles(directory: Path, last_good: Mapping[str, str] | None = None) -> LoadedProfiles:
    """Load every ``*.toml`` in ``directory``. A broken file is reported and, if ``last_good`` has an earlier
    text for that user, that version keeps serving.

    Each address belongs to one user: when two profiles name the same email, the user whose last good version
    already had it keeps it (a file renamed with its text unchanged counts as the user it was; of several, the
    one whose last good version is latest in ``last_good``, which lists the least recently loaded first; else the
    first file by name) and the other file is the error,
    served from its own last good version if that has an address nobody else has, so no address ever gets
    two digests. A broken file's last good version never takes an address from a file that loads."""
    last_good = last_good or {}
    if directory.is_file():
        raise ProfileError(f"{directory}: a file, not a folder; give the folder that holds the profiles (e.g. "
                           f"--profiles {directory.parent or '.'}), or set profiles_dir in config.toml")
    if not directory.is_dir():
        where = "" if directory.is_absolute() else f" (looked for {directory.resolve()})"
        # the repository's examples (profiles/ada.toml), when this is not that folder itself
        example = Path(__file__).resolve().parent.parent / "profiles" / "ada.toml"
        start = f" (mkdir {directory} && cp {display_path(example)} {directory}/yourname.toml)" \
            if example.exists() and directory.resolve() != example.parent else ""
        raise ProfileError(f"{directory}: profiles directory not found{where}; create it and put a profile in it"
                           f"{start}, or set profiles_dir in config.toml (a relative path is taken from the folder "
                           "digest runs in)")
    errors: list[ProfileError] = []
    # user -> (path, text of the file if it loaded, else None, the profile: the file's or its last good version's)
    found: dict[str, tuple[Path, str | None, Profile]] = {}
    read: list[str] = []  # the users whose files were read
    for path in sorted(directory.glob("*.toml")):
        if path.name.startswith((".", "#", "~")):  # an editor's lock or backup file (Emacs ".#ada.toml"), not a user
            continue
        read.append(path.stem)
        try:
            text = read_text_file(path, ProfileError)
            found[path.stem] = (path, text, parse_profile(text, path))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with one file, the others keep working
            errors.append(exc if isinstance(exc, ProfileError) else ProfileError(
                f"{path}: cannot read ({exc})" if isinstance(exc, OSError) else
                f"{path}: cannot be loaded ({type(exc).__name__}: {exc}); compare it with profiles/ada.toml"))
            previous = _last_good(last_good, path)
            if previous is not None:
                found[path.stem] = (path, None, previous)

    misnamed = [_misnamed(path) for path in sorted(directory.iterdir())]

    # a file renamed (bob.toml -> robert.toml, its text the same): the new name had what the old one had, so the
    # reader keeps their address against another file that names it too
    gone = {" ".join(text.split()): user for user, text in last_good.items() if user not in read}

    def had(user: str, email: str) -> bool:
        previous = _last_good(last_good, found[user][0])
        if previous is None and found[user][1] is not None:
            renamed = gone.get(" ".join(found[user][1].split()))
            previous = _last_good(last_good, found[user][0].with_name(f"{renamed}.toml")) if renamed else None
        return previous is not None and previous.email.lower() == email

    recency = {user: i for i, user in enumerate(last_good)}
    by_email: dict[str, list[str]] = {}
    for user, (_, _, profile) in found.items():
        by_email.setdefault(profile.email.lower(), []).append(user)
    taken = set(by_email)
    fallbacks = []
    for email, users in by_email.items():
        if len(users) < 2:
            continue
        # a file that loads beats a broken file's last good version: a stand-in never displaces a valid profile
        owner = min(users, key=lambda u: (found[u][1] is None, not had(u, email), -recency.get(u, -1), u))
        for user in users:
            if user == owner:
                continue
            path, text, profile = found.pop(user)
            if text is None:
                errors.append(ProfileError(
                    f"{path}: cannot serve its last good version: that names {profile.email}, which "
                    f"{found[owner][0]} has now; {user} gets no digest until {path.name} is fixed (the error above)"))
                continue
            line = toml_line(text, "email")
            example = " (or move the example profiles out of the folder)" \
                if profile.email.lower() in EXAMPLE_EMAILS else ""
            errors.append(ProfileError(
                f"{path}{f':{line}' if line else ''}: email: {profile.email} is already used by "
                f"{found[owner][0]}; each user needs their own address{example}"))
            fallbacks.append((user, path))
    for user, path in fallbacks:  # served from the last good version, if its address is nobody else's
        previous = _last_good(last_good, path)
        if previous is not None and previous.email.lower() not in taken:
            taken.add(previous.email.lower())
            found[user] = (path, None, previous)

    profiles: dict[str, Profile] = {}
    texts: dict[str, str] = {}
    stale = []
    warnings: list[str] = [m for m in misnamed if m]
    for user, (_path, text, profile) in sorted(found.items(), key=lambda item: item[1][0]):
        profiles[user], library_errors, library_warnings = with_library(profile)
        errors.extend(library_errors)
        if text is None:
            stale.append(user)
        else:
            texts[user] = text
            warnings.extend([*profile.notes, *library_warnings])
    return LoadedProfiles(profiles, errors, texts, tuple(stale), warnings,
                          tuple(user for user in read if user not in profiles))


def _misnamed(path: Path) -> str | None:
    """A warning for a file meant as a profile that is not read as one: ``uma.TOML``, ``tess.toml.txt`` (an
    editor that adds .txt), ``ben.tml``; None for anything else (backups such as ``ada.toml.bak`` are quiet)."""
    name = path.name
    if name.startswith((".", "#", "~")) or path.suffix == ".toml":
        return None
    stem = name.split(".")[0]
    if not stem or not name.lower().endswith((".toml", ".toml.txt", ".tml", ".tmol")):
        return None
    return (f"{path}: not read: only files ending in .toml (lower case) are profiles; rename it to "
            f"{stem.lower()}.toml")


def _last_good(last_good: Mapping[str, str], path: Path) -> Profile | None:
    previous = last_good.get(path.stem)
    if previous is None:
        return None
    try:
        return parse_profile(previous, path)
    except ProfileError:
        return None
