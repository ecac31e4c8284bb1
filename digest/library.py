"""Seed papers from a reference manager: the ``library`` key of a profile.

Zotero, Mendeley, JabRef, EndNote and Google Scholar export a library as BibTeX (``.bib``), RIS (``.ris``) or
CSL JSON (``.json``); PubMed as MEDLINE (``.nbib``), EndNote also in its tagged format (``.enw``). A file is read
by the format its text shows when its name says another or none (EndNote names a RIS export ``.txt``). Every
entry with a title becomes a seed paper: its title and abstract (what the model reads), its DOI and arXiv id. A
whole library ranks better than a few hand-picked seeds (benchmarks/README.md,
*How far is the online target*: 0.663 against 0.606 online P@10 on the same users).

``read_library(path)`` never raises: a file that cannot be used comes back with ``error`` set (and, when this
process read a good version of it before, that version's seeds with ``stale`` set, so a half-saved export
does not empty a user's profile); entries it had to skip are listed in ``problems`` with their line (and, in RIS
and CSL JSON, their number) and the reason. Reads are cached by the file's modification time and size, so a
library is parsed again only when it changes.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from .models import normalise_arxiv_id, normalise_doi, normalise_title
from .parsers.common import DOI_RE, arxiv_id_from_url, doi_from_url, tex_to_unicode
from .profiles import Seed

MAX_BYTES = 200 * 10**6  # a 20,000-paper export with abstracts is ~40 MB
FORMATS = {".bib": "BibTeX", ".bibtex": "BibTeX", ".ris": "RIS", ".json": "CSL JSON", ".nbib": "MEDLINE",
           ".enw": "EndNote tagged"}
EXPORT_HINT = "export it from your reference manager as BibTeX (.bib), RIS (.ris) or CSL JSON (.json)"
# what each format's text starts its entries with: a file is read by what it holds when its name does not say
# (EndNote saves a RIS export as .txt) or says another format than it holds (a PubMed .nbib renamed .ris)
_LOOKS = {
    "BibTeX": re.compile(r"^[ \t]*@[A-Za-z]+\s*[{(]", re.M),
    "RIS": re.compile(r"^TY {1,2}- ", re.M),
    "MEDLINE": re.compile(r"^PMID- ?\d", re.M),
    "EndNote tagged": re.compile(r"^%0 \S", re.M),
    "CSL JSON": re.compile(r"\A\s*[\[{]"),
}
# formats it cannot read, and what to export instead
_OTHER_FORMATS = {
    "an EndNote XML export": (re.compile(r"<records>\s*<record>"), "in EndNote, File > Export with the output style "
                                                             "\"RefMan (RIS) Export\", and name the file .ris"),
    "a Zotero RDF export": (re.compile(r"<rdf:RDF\b"), "in Zotero, export the library as BibTeX, RIS or CSL JSON instead"),
}
_ARXIV_TEXT = re.compile(r"arxiv(?:\s+preprint)?[:\s/]*(?:arxiv[:\s]*)?(?:abs/)?"
                         r"(\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?", re.I)
_BARE_ARXIV = re.compile(r"\s*(?:abs/)?(\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?\s*")
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)  # arXiv's own DOIs carry the id


@dataclass(frozen=True)
class LibraryRead:
    path: Path
    seeds: tuple[Seed, ...] = ()
    problems: tuple[str, ...] = ()  # skipped entries: "FILE:LINE: what, and the fix"
    error: str | None = None        # the file as a whole could not be used
    stale: bool = False             # seeds are from an earlier good read of this file (see error)


_cache: dict[Path, tuple[tuple[int, ...], LibraryRead]] = {}
_lock = threading.Lock()


def read_library(path: str | Path) -> LibraryRead:
    """The seed papers of one exported library (see the module docstring)."""
    path = Path(path)
    named = FORMATS.get(path.suffix.lower())
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return _failed(path, f"{path}: cannot read the library ({getattr(exc, 'strerror', None) or exc}); check "
                             "the path (relative paths start at the profile's folder) or " + EXPORT_HINT)
    if not S_ISREG(stat.st_mode):  # reading a named pipe would wait for ever, a device (/dev/zero) without end
        what = "a folder" if S_ISDIR(stat.st_mode) else "not a regular file (a named pipe or a device)"
        return _failed(path, f"{path}: {what}; name the exported file itself, or " + EXPORT_HINT)
    if stat.st_size > MAX_BYTES:
        return _failed(path, f"{path}: {stat.st_size / 1e6:.0f} MB is more than a library export "
                             f"({MAX_BYTES // 10**6} MB at most); export the library without attachments or notes")
    with _lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        text = _lines(_decoded(path.read_bytes()))
    except UnicodeDecodeError:
        return _failed(path, f"{path}: not UTF-8 text; export the library again with the UTF-8 encoding")
    except OSError as exc:
        return _failed(path, f"{path}: cannot read the library ({exc.strerror})")
    fmt = _format(named, text)
    if fmt is None or not _LOOKS[fmt].search(text):
        other = next(((name, fix) for name, (looks, fix) in _OTHER_FORMATS.items() if looks.search(text[:20_000])),
                     None)
        if other is not None:
            return _failed(path, f"{path}: {other[0]}, which is not read here: {other[1]}")
        if fmt is None:
            return _failed(path, f"{path}: not a library export this reads (BibTeX, RIS, CSL JSON, PubMed's MEDLINE "
                                 f".nbib, EndNote's tagged .enw); " + EXPORT_HINT)
    try:
        seeds, problems = {"BibTeX": _bibtex, "RIS": _ris, "CSL JSON": _csl_json, "MEDLINE": _medline,
                           "EndNote tagged": _endnote}[fmt](text, path)
    except ValueError as exc:  # this module's own messages name the file; a library's (rare) ones do not
        return _failed(path, str(exc) if str(exc).startswith(str(path)) else f"{path}: cannot read this {fmt} "
                                                                          f"file ({exc}); " + EXPORT_HINT)
    except Exception as exc:  # noqa: BLE001 - a library must never stop the profiles from loading
        return _failed(path, f"{path}: cannot read this {fmt} file ({type(exc).__name__}: {exc}); " + EXPORT_HINT)
    if not seeds:
        return _failed(path, f"{path}: no {fmt} entry with a title found"
                             + (f" ({len(problems)} skipped, the first: {problems[0]})" if problems else "")
                             + "; " + EXPORT_HINT)
    result = LibraryRead(path, _unique(seeds), tuple(problems))
    with _lock:
        _cache[path] = (stamp, result)
    return result


def _format(named: str | None, text: str) -> str | None:
    """The format to read: the one whose entries start first in the text (an abstract may hold a line like
    another format's: "@Risk (...)"), else the one the file's name says (whose reader then says what is wrong)."""
    found = [(m.start(), fmt) for fmt, looks in _LOOKS.items() if (m := looks.search(text))]
    return min(found)[1] if found else named


def _lines(text: str) -> str:
    """Line ends as "\n", also a classic Mac's lone CR (as reading a file as text does)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decoded(data: bytes) -> str:
    """UTF-8 (with or without a byte-order mark), UTF-16 as EndNote and Windows tools write it, or the encoding
    a JabRef file names in its first line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    head = data[:400]
    if len(head) >= 4 and head[1::2].count(0) > 0.9 * len(head[1::2]):  # UTF-16 LE without a mark: "T\0Y\0"
        return data.decode("utf-16-le")
    if len(head) >= 4 and head[0::2].count(0) > 0.9 * len(head[0::2]):
        return data.decode("utf-16-be")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # JabRef names the encoding it wrote in its header: "% Encoding: windows-1252" (JabRef 2.x after a line
        # "% This file was created with JabRef 2.10.")
        if (named := re.search(rb"^%\s*Encoding:\s*([\w.-]+)", data[:1000], re.M)) is None:
            raise
        try:
            return data.decode(named.group(1).decode("ascii"))
        except (LookupError, UnicodeError):
            raise UnicodeDecodeError("utf-8", data, 0, 1, "not UTF-8, nor the encoding it names") from None


def _failed(path: Path, error: str) -> LibraryRead:
    """A failed read keeps serving the last good read of this file, if any (marked stale)."""
    with _lock:
        cached = _cache.get(path)
    if cached is None:
        return LibraryRead(path, error=error)
    return replace(cached[1], error=error, stale=True)


def _unique(seeds: list[Seed]) -> tuple[Seed, ...]:
    """The same paper exported twice counts once (by its title: chapters of one book can share a DOI)."""
    seen: set[str] = set()
    out = []
    for seed in seeds:
        key = normalise_title(seed.title or "")
        if key not in seen:
            seen.add(key)
            out.append(seed)
    return tuple(out)


_BRACED_MATH = re.compile(r"\{(\$[^$]*\$)\}")
_INLINE_MATH = re.compile(r"\\\(((?:[^\\]|\\[^()]){0,500}?)\\\)")
# Zotero writes < and > as these (pylatexenc would drop them)
_ZOTERO_MACROS = {"{\\textless}": "<", "{\\textgreater}": ">", "\\textless{}": "<", "\\textgreater{}": ">"}


def _text(value) -> str:
    """A field's text: a string, a number, or a list of them (anything else, say a JSON object, is no text)."""
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, bool) or value is None or (isinstance(value, float) and value != value):  # NaN
        return ""
    return str(value) if isinstance(value, str | int | float) else ""


# the rich text of CSL JSON (Zotero) and of RIS exports: <i>in vivo</i>, CO<sub>2</sub>, &amp;; abstracts as
# publishers deliver them: <p>, <h2>Summary</h2>, <br/>, JATS (<jats:p>, <jats:title>Abstract</jats:title>)
# a tag as markup writes it: its name, then attributes with values (<span style="...">, <jats:italic toggle="yes">)
# or nothing: "a<b and c>d" or "0<p and q>1" in a title is no tag
_ATTRIBUTES = r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s<>"']+))*\s*/?>"""
_MARKUP = re.compile(rf"</?(?:i|b|em|strong|sub|sup|sc|span|nocase|u|a){_ATTRIBUTES}", re.I)
_BLOCK_MARKUP = re.compile(rf"</?(?:p|div|br|h[1-6]|li|ul|ol|section|jats:[\w-]++|mml:[\w-]++){_ATTRIBUTES}", re.I)
_HEADING = re.compile(r"\A\s*<(h[1-6]|jats:title)\b[^<>]*>\s*(?:abstract|summary)\s*</\1\s*>", re.I)


def _unmarked(value) -> str:
    text = _text(value)
    if "<" not in text and "&" not in text:
        return text
    text = _BLOCK_MARKUP.sub(" ", _MARKUP.sub("", _HEADING.sub("", text)))
    return html.unescape(" ".join(text.split()))


def _add(seeds: list[Seed], problems: list[str], seed: Seed, where: str) -> None:
    """A seed, unless it has neither a title left (``title={{}}``, only TeX that means nothing) nor an id."""
    if seed.title or seed.arxiv or seed.doi:
        seeds.append(seed)
    else:
        problems.append(f"{where} has an empty title and no DOI or arXiv id; skipped (give it a title)")


def _clean(value) -> str | None:
    """Text as a reader sees it: TeX accents to Unicode, BibTeX's case-protecting braces dropped."""
    text = _text(value).strip()
    if not text:
        return None
    marked = any(macro in text for macro in _ZOTERO_MACROS)
    for macro, char in _ZOTERO_MACROS.items():
        text = text.replace(macro, char)
    if marked:  # HTML that Zotero wrote with the macros above: <p>, <i>Otx2</i>
        text = _unmarked(text)
    if "\\" in text:
        # math as DBLP writes it, \(\Sigma\), and TeX that Google Scholar or Mendeley escaped once more:
        # "$$\backslash$alpha $", "{\$}$\backslash$sqrt{\{}n{\}}{\$}" (a "$\backslash$" alone is a backslash)
        text = text.replace("{\\$}", "$").replace("$$\\backslash$", "$\\").replace("{\\{}", "{").replace("{\\}}", "}")
        text = _INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text)
        text = re.sub(r"(\$\\[A-Za-z]+)\s+\$", r"\1$", text)  # Scholar's "$\backslash$alpha $" -> "$\alpha$"
    if "\\" not in text and "$" not in text:
        # braces only (Zotero protects capitals: {AlphaFold}): no TeX to convert, and much faster than pylatexenc
        return " ".join(text.replace("{", "").replace("}", "").split()) or None
    return tex_to_unicode(_BRACED_MATH.sub(r"\1", _outer_group_dropped(text))) or None


def _outer_group_dropped(text: str) -> str:
    """``{Whole title with $math$}`` -> its inside: a group around math would be cut in two by the TeX
    conversion (which keeps math verbatim and converts the text between)."""
    while text.startswith("{") and text.endswith("}"):
        depth = 0
        for i, char in enumerate(text):
            depth += (char == "{") - (char == "}")
            if depth == 0 and i < len(text) - 1:
                return text  # the first brace closes before the end: not one group around everything
        text = text[1:-1]
    return text


def _seed(title, abstract, doi, links: list) -> Seed:
    """One entry's fields (any JSON or parser value: converted to text here) as a seed."""
    # TeX escapes in DOIs (Mendeley writes 10.1007/978-3-319-10590-1{\_}53)
    doi_match = DOI_RE.search(re.sub(r"[{}\\]", "", _text(doi)))
    doi = normalise_doi(doi_match.group(1)) if doi_match else None
    arxiv = None
    if doi and (m := _ARXIV_DOI.match(doi)):
        arxiv = m.group(1)
    for link in map(_text, links):
        if arxiv:
            break
        arxiv = arxiv_id_from_url(link) or ((m := _ARXIV_TEXT.search(link)) and m.group(1)) or None
    return Seed(arxiv=normalise_arxiv_id(arxiv), doi=doi, title=_clean(title), abstract=_clean(abstract))


def _bibtex(text: str, path: Path) -> tuple[list[Seed], list[str]]:
    import bibtexparser
    from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock, Entry

    # the parser logs each broken entry as a warning; they are reported here, with their line and the fix
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)
    library = bibtexparser.parse_string(text)
    macros = {block.key.lower(): str(block.value) for block in library.strings}  # without their quotes already
    problems = []
    entries = list(library.entries)
    for block in library.failed_blocks:
        line = (block.start_line or 0) + 1
        error = getattr(block, "error", None)
        end = getattr(error, "end_index", 0)
        if error is not None and (end is None or end >= len(text)):
            # the parser reached the end of the file inside this entry: a cut-off file (Better BibTeX's
            # auto-export rewriting it, a copy still running), not a typo: keep the last good read instead
            raise ValueError(f"{path}:{line}: the file ends inside this entry, so it looks cut off (still being "
                             "written?); if the entry is complete, close its braces; else export the library again")
        if isinstance(block, DuplicateBlockKeyBlock):
            # two entries under one key (a hand-merged file): both are papers the user keeps, so both count
            duplicate = getattr(block, "ignore_error_block", None)
            if isinstance(duplicate, Entry):
                entries.append(duplicate)
            problems.append(f"{path}:{line}: entry key {block.key!r} is used twice (both entries are read); "
                            "give each entry its own key")
            continue
        if isinstance(block, DuplicateFieldKeyBlock) and isinstance(getattr(block, "ignore_error_block", None),
                                                                     Entry):
            # a field given twice (a hand-merged entry): the entry is read with the field's last value
            entry = block.ignore_error_block
            entries.append(entry)
            twice = ", ".join(sorted(getattr(block, "duplicate_keys", ()) or ())) or "a field"
            problems.append(f"{path}:{line}: @{entry.entry_type}{{{entry.key}}} gives {twice} twice (the last one "
                            "is read); keep one")
            continue
        reason = str(getattr(error, "abort_reason", "") or error or "").strip().splitlines()
        why = reason[0].strip() if reason else "syntax error"
        problems.append(f"{path}:{line}: entry skipped, it cannot be read ({why}); check its braces and quotes")
    seeds = []
    for entry in entries:
        fields = {k.lower(): v for k, v in entry.fields_dict.items()}
        get = {k: _joined(f.value, macros) if isinstance(f.value, str) and "#" in f.value else f.value
               for k, f in fields.items()}.get
        title = get("title")
        if not title or not str(title).strip():
            problems.append(f"{path}:{entry.start_line + 1}: @{entry.entry_type}{{{entry.key}}} has no title; "
                            "skipped (add a title field)")
            continue
        links = [get(k) or "" for k in ("eprint", "url", "journal", "note", "howpublished", "archiveprefix")]
        eprint, prefix = _text(get("eprint")), _text(get("archiveprefix") or get("eprinttype")).lower()
        # the arXiv id: eprint with archivePrefix arXiv, or an eprint that is one without it; Mendeley's arxivId;
        # Semantic Scholar's journal = {ArXiv}, volume = {abs/2005.14165}
        for candidate in (eprint if prefix in ("arxiv", "") else "", _text(get("arxivid")),
                          _text(get("volume")) if _text(get("journal")).strip().lower() == "arxiv" else ""):
            if m := _BARE_ARXIV.fullmatch(candidate):
                links.insert(0, f"arXiv:{m.group(1)}")
        # (not from a note: "Comment on https://doi.org/..." names another paper)
        doi = get("doi") or (eprint if prefix == "jstor" and eprint.startswith("10.") else None) \
            or doi_from_url(_text(get("url")))
        _add(seeds, problems, _seed(title, get("abstract"), doi, links),
             f"{path}:{entry.start_line + 1}: @{entry.entry_type}{{{entry.key}}}")
    return seeds, problems


_WORD = re.compile(r"[^\s#{}\"]+")


def _group(value: str, i: int) -> tuple[str, int]:
    """The inside of the ``{...}`` or ``"..."`` starting at ``value[i]``, and the index after it."""
    depth = 0
    for j in range(i + 1, len(value)):
        char = value[j]
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif depth == 0 and char == ("}" if value[i] == "{" else '"'):
            return value[i + 1:j], j + 1
    raise ValueError("unclosed")


def _joined(value: str, macros: dict[str, str]) -> str:
    """A value BibTeX joins with ``#`` (``"Deep " # nat``, with ``@string{nat = "Nature"}``), joined; any other
    value (``C# for {S}cience``) as it is. bibtexparser resolves a macro only when it is the whole value."""
    parts, i = [], 0
    try:
        while True:
            i = len(value) - len(value[i:].lstrip())
            if i < len(value) and value[i] in '{"':
                part, i = _group(value, i)
            elif (word := _WORD.match(value, i)) and (word[0].lower() in macros or word[0].isdigit()):
                part, i = macros.get(word[0].lower(), word[0]), word.end()
            else:
                return value
            parts.append(part)
            i = len(value) - len(value[i:].lstrip())
            if i == len(value):
                return "".join(parts) if len(parts) > 1 else value
            if value[i] != "#":
                return value
            i += 1
    except ValueError:
        return value


def _ris(text: str, path: Path) -> tuple[list[Seed], list[str]]:
    import rispy

    if not re.search(r"^TY  - ", text, re.M):
        # "TY - JOUR" with one space before the dash, as some exporters write it (the standard has two); not in
        # a file that has the standard's, where "US - based cohorts" is a line of an abstract
        text = re.sub(r"^([A-Z][A-Z0-9]) - ", r"\1  - ", text, flags=re.M)
    if not _LOOKS["RIS"].search(text):
        raise ValueError(f"{path}: not a RIS file: no entry starts with a \"TY  -\" line; " + EXPORT_HINT)
    try:
        entries = rispy.loads(text)
    except Exception as exc:  # rispy raises bare errors on broken tags
        raise ValueError(f"{path}: not a RIS file ({exc}); " + EXPORT_HINT) from None
    tags = [line for line in text.splitlines() if line.strip()]
    if tags and not re.match(r"^ER\s+-", tags[-1]):
        # rispy drops an entry without its closing ER: say so, instead of serving a library with papers missing
        raise ValueError(f"{path}: the file ends inside an entry (no closing \"ER  -\" line at the end), so it "
                         "looks cut off (still being written?); export the library again")
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("TY  - ")]
    seeds, problems = [], []
    for i, entry in enumerate(entries, 1):
        # where an entry starts, when each "TY" line began one (else its number)
        where = f"{path}:{starts[i - 1]}: entry {i}" if len(starts) == len(entries) else f"{path}: entry {i}"
        other = entry.get("unknown_tag") or {}  # tags rispy does not name: CT (a title), BT (a book's title)
        title = entry.get("title") or entry.get("primary_title") or entry.get("translated_title") \
            or other.get("CT") or other.get("BT")
        if not title:
            problems.append(f"{where} (TY  - {entry.get('type_of_reference', '?')}) has no title "
                            "(TI, T1, CT or BT); skipped")
            continue
        # the links (UR, L1: often arXiv's PDF), not the abstract or notes: they may cite other papers' ids
        pdf = entry.get("file_attachments1") or []
        journal = [entry.get(k) or "" for k in ("journal_name", "secondary_title", "alternate_title3")]
        links = [*(entry.get("urls") or []), *([pdf] if isinstance(pdf, str) else pdf),
                 *(j for j in journal if "arxiv" in _text(j).lower())]  # "arXiv preprint arXiv:2401.00001"
        abstract = entry.get("abstract") or entry.get("notes_abstract")
        _add(seeds, problems, _seed(_unmarked(title), _unmarked(abstract), entry.get("doi"), links), where)
    return seeds, problems


def _csl_json(text: str, path: Path) -> tuple[list[Seed], list[str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); " + EXPORT_HINT) from None
    if isinstance(items, dict) and isinstance(items.get("items"), list):
        items = items["items"]
    if not isinstance(items, list):
        raise ValueError(f"{path}: a CSL JSON library is a list of items ([{{\"title\": ...}}, ...]); "
                         + EXPORT_HINT)
    starts = _item_lines(text)
    seeds, problems = [], []
    for i, item in enumerate(items, 1):
        where = f"{path}:{starts[i - 1]}: item {i}" if len(starts) == len(items) else f"{path}: item {i}"
        if not isinstance(item, dict) or not item.get("title"):
            problems.append(f"{where} has no \"title\"; skipped")
            continue
        links = [_text(item.get(k)) for k in ("URL", "number", "archive_location", "note", "container-title")]
        _add(seeds, problems, _seed(_unmarked(item.get("title")), _unmarked(item.get("abstract")), item.get("DOI"),
                                    links), where)
    return seeds, problems


def _item_lines(text: str) -> list[int]:
    """The line each item of a JSON library (a list) starts on; [] for anything else (items then go by number)."""
    decoder, space = json.JSONDecoder(), re.compile(r"[ \t\n\r]*")
    i = space.match(text).end()
    if not text.startswith("[", i):
        return []
    lines, line, counted = [], 1, 0
    i += 1
    try:
        while True:
            i = space.match(text, i).end()
            if text.startswith("]", i):
                return lines
            line, counted = line + text.count("\n", counted, i), i
            lines.append(line)
            _, i = decoder.raw_decode(text, i)
            i = space.match(text, i).end()
            if text.startswith(",", i):
                i += 1
    except ValueError:
        return []


def _tagged(text: str, tag: re.Pattern, start: str) -> list[tuple[int, dict[str, list[str]]]]:
    """(line, {tag: values}) per record of a tagged text format (MEDLINE, EndNote's tagged export): a record
    begins with its ``start`` tag; a line without a tag continues the value before it."""
    records: list[tuple[int, dict[str, list[list[str]]]]] = []
    last: list[str] | None = None  # the pieces of the value being read (joined once at the end: linear time)
    for number, line in enumerate(text.splitlines(), 1):
        if m := tag.match(line):
            key, value = m.group(1).strip(), m.group(2).strip()
            if key == start:
                records.append((number, {}))
            if records:
                last = [value]
                records[-1][1].setdefault(key, []).append(last)
        elif line.strip() and last is not None:
            last.append(line.strip())
        else:  # a blank line ends a value (and, in these formats, a record)
            last = None
    return [(number, {key: [" ".join(pieces) for pieces in values] for key, values in record.items()})
            for number, record in records]


def _records(text: str, path: Path, tag: re.Pattern, start: str, fields: dict[str, str],
             fmt: str) -> tuple[list[Seed], list[str]]:
    seeds, problems = [], []
    for line, record in _tagged(text, tag, start):
        first = {name: (record.get(key) or [None])[0] for name, key in fields.items()}
        ids = [v for key in ("LID", "AID", "%R") for v in record.get(key, [])]
        doi = first.get("doi") or next((v.rsplit(" ", 1)[0] for v in ids if v.endswith("[doi]")), None)
        if not doi:
            doi = next((v for v in ids if v.startswith("10.")), None)
        links = [*record.get("%U", []), *ids]
        if not first["title"]:
            problems.append(f"{path}:{line}: a record without a title ({fmt}); skipped")
            continue
        _add(seeds, problems, _seed(first["title"], first["abstract"], doi, links), f"{path}:{line}")
    return seeds, problems


_MEDLINE_TAG = re.compile(r"^([A-Z]{2,4})\s*- (.*)$")
_ENDNOTE_TAG = re.compile(r"^(%[0-9A-Z@!#$&()*+^~>])\s?(.*)$")


def _medline(text: str, path: Path) -> tuple[list[Seed], list[str]]:
    """PubMed's "Citation manager" export (.nbib): PMID, TI (title), AB (abstract), LID/AID "... [doi]"."""
    return _records(text, path, _MEDLINE_TAG, "PMID", {"title": "TI", "abstract": "AB"}, "MEDLINE")


def _endnote(text: str, path: Path) -> tuple[list[Seed], list[str]]:
    """EndNote's tagged export (.enw, .txt): %0 (type) starts a record, %T title, %X abstract, %R DOI, %U URL."""
    return _records(text, path, _ENDNOTE_TAG, "%0", {"title": "%T", "abstract": "%X", "doi": "%R"}, "EndNote tagged")


# -- export -------------------------------------------------------------------------------------------------
_TEX_SPECIAL = re.compile(r"([&%#_$])")


def _tex(text: str) -> str:
    """Plain text as a BibTeX field value: special characters escaped, stray braces dropped, UTF-8 and
    ``$...$`` math (when its braces balance) kept as they are."""
    out = []
    for i, part in enumerate(re.split(r"(\$[^$]+\$)", " ".join(text.split()))):
        if i % 2 and part.count("{") == part.count("}"):
            out.append(part)
        else:
            out.append(_TEX_SPECIAL.sub(r"\\\1", part.replace("\\", "").replace("{", "").replace("}", "")))
    return "".join(out)


_SUFFIX = {"jr", "sr", "ii", "iii", "iv"}


def _bib_name(name: str) -> tuple[str, str]:
    """(BibTeX name, family name): "Edward G. Allen Jr" -> ("Allen, Jr, Edward G.", "Allen"), so a reference
    manager does not file him under "Jr"."""
    parts = name.split()
    if len(parts) >= 3 and parts[-1].rstrip(".").lower() in _SUFFIX:
        return f"{parts[-2]}, {parts[-1]}, {' '.join(parts[:-2])}", parts[-2]
    return name, parts[-1] if parts else ""


def _venue_and_year(venue: str | None) -> tuple[str, str]:
    """Google Scholar writes the year into the venue ("Nature Communications, 2026", or only "2026")."""
    m = re.fullmatch(r"(.*?)(?:^|,\s*)((?:19|20)\d\d)\s*", venue or "")
    if m:
        return m.group(1).strip(" ,"), m.group(2)
    # a proceedings' name opens with its year ("2019 IEEE International Conference on Software …")
    opening = re.match(r"((?:19|20)\d\d)\s+\S", venue or "")
    return (venue or "").strip(), opening.group(1) if opening else ""


def _arxiv_year(arxiv_id: str | None) -> str:
    """The year of an arXiv id's first version: "2407.21018" -> "2024", "hep-th/9901001" -> "1999"."""
    m = re.match(r"(?:[a-z-]+(?:\.[A-Z]{2})?/)?(\d{2})(\d{2})[.\d]", arxiv_id or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        return ""
    yy = int(m.group(1))
    return str(1900 + yy if yy >= 91 else 2000 + yy)


def to_bibtex(papers) -> str:
    """Papers (``digest.models.Paper``) as a BibTeX file, e.g. a user's 👍 papers for their reference manager
    (or for a profile's ``library``: ``read_library`` reads it back with the same titles and ids)."""
    import bibtexparser
    from bibtexparser.model import Entry, Field

    library = bibtexparser.Library()
    keys: set[str] = set()
    for paper in papers:
        names = [_bib_name(a) for a in paper.authors if a.strip()]
        surname = re.sub(r"[^a-z]", "", (names[0][1] if names else "").lower())
        venue, venue_year = _venue_and_year(paper.venue)
        # a journal's year where the byline gives one; else an arXiv paper's first version's, which its id says
        # (2407.21018: July 2024): the date the alert gave is a listing's (a replaced old paper) or the day a page
        # was forwarded
        year = venue_year or _arxiv_year(paper.arxiv_id) or (paper.published or "")[:4]
        words = [w for w in re.findall(r"[a-z]+", paper.title.lower()) if len(w) > 3] or ["paper"]
        # surname + year + first word (Google Scholar's style); without authors, the title's first two words
        key = base = f"{surname}{year}{words[0]}" if surname else f"{words[0]}{year}{''.join(words[1:2])}"
        n = 1
        while key in keys:
            n += 1
            key = f"{base}{n}"
        keys.add(key)
        fields = [Field("title", "{" + _tex(paper.title) + "}")]  # double braces: keep the capitals as written
        if names:
            written = [_tex(name) for name, _ in names]
            if (paper.author_count or 0) > len(written):
                written.append("others")  # BibTeX's own "et al."
            fields.append(Field("author", " and ".join(written)))
        if year:
            fields.append(Field("year", year))
        # a venue Scholar cut short ("2019 IEEE International Conference on Software …") is no journal's name
        # a reference manager could match: kept as a note
        cut = venue.endswith("…") or venue.startswith("…")
        if venue:
            fields.append(Field("note" if cut else "journal", _tex(venue)))
        if paper.doi:
            fields.append(Field("doi", paper.doi))
        if paper.arxiv_id:
            fields += [Field("eprint", paper.arxiv_id), Field("archiveprefix", "arXiv")]
        if paper.url:
            fields.append(Field("url", paper.url))
        if paper.abstract:
            fields.append(Field("abstract", _tex(paper.abstract)))
        library.add(Entry("article" if venue and not cut else "misc", key, fields))
    text = bibtexparser.write_string(library)
    return text if text.endswith("\n") or not text else text + "\n"
