"""arXiv daily listing mails (``no-reply@arXiv.org``) and bare listing text.

The body is a sequence of entries ``\\\\`` / ``arXiv:<id>`` / metadata / ``\\\\`` / abstract / ``\\\\ ( url , size)``.
Sections are switched by rule lines: ``%-%-`` (cross-lists), ``%%--%%--`` (replacements), ``%%%---`` (end);
each entry also says its own (``(*cross-listing*)`` on its id line, ``replaced with revised version`` in place
of its Date: line), which decides where the rules are missing.
We walk the lines with a small state machine rather than splitting on ``^arXiv:``, because abstracts can
contain a line that starts with ``arXiv:`` (FORMATS.md trap a).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta

from ..models import CUT_MARK, Paper
from .common import ARXIV_ID, Body, arxiv_url, clean_space, split_authors, tex_to_unicode

SENDER_DOMAIN = "arxiv.org"
SUBJECT_RE = re.compile(r"daily Subj-class mailing|daily .*received", re.I)

_ID_LINE = re.compile(rf"^(?:arXiv:|Paper(?:\s*\(\*cross-listing\*\))?:)\s*({ARXIV_ID})(.*)$", re.I)
_END_LINE = re.compile(r"^\\\\\s*\(\s*(\S+)")
_RULE_CROSS = re.compile(r"^(%-){8,}")
_RULE_REPLACED = re.compile(r"^(%%--){5,}")
_RULE_END = re.compile(r"^(%%%---){4,}")
_DASHES = re.compile(r"^-{40,}$")
_FIELDS = (
    "Date", "Title", "Authors", "Categories", "Comments", "MSC-class", "ACM-class", "Journal-ref",
    "Report-no", "DOI", "License", "Proxy", "From", "Subj-class",
)
_FIELD_LINE = re.compile(rf"^({'|'.join(re.escape(f) for f in _FIELDS)}):\s?(.*)$")
_WINDOW = re.compile(r"received from .{0,200}?\bto\s+\w{3}\s+(\d{1,2})\s+(\w{3})\s+(\d{2,4})", re.I)
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def looks_like(text: str) -> bool:
    """A listing body: the arXiv frame, or at least one ``\\\\`` + ``arXiv:<id>`` entry with a Title (``Paper:
    <id>`` in the pre-2007 mailings)."""
    if "Send any comments regarding submissions directly to submitter" in text:
        return True
    return bool(re.search(rf"^\\\\[ \t\r]*\n\s*(?:arXiv|Paper):\s*{ARXIV_ID}", _normalise(text), re.M)) \
        and "Title:" in text


def empty_listing(text: str) -> bool:
    """A whole listing without entries (a small category on a quiet day): its frame, from the ``Submissions to:``
    window to the closing ``%%%---`` rule, and not one ``arXiv:<id>`` line. Not a layout change, so no error."""
    text = _normalise(text)
    return bool(_WINDOW.search(text)) and any(_RULE_END.match(line) for line in text.splitlines()) \
        and not _has_entry_lines(text)


def _has_entry_lines(text: str) -> bool:
    """An id line, or an entry's Title:/Authors: lines (entries whose id line is laid out anew: a layout change,
    not an empty day)."""
    return any(_ID_LINE.match(line.strip()) for line in text.splitlines()) \
        or bool(re.search(r"^\s*(?:Title|Authors):", text, re.M))


def header_only(text: str) -> bool:
    """A listing cut right after its frame: the frame's text, no entry and no closing ``%%%---`` rule."""
    text = _normalise(text)
    lines = text.splitlines()
    return "Send any comments regarding submissions directly to submitter" in text \
        and not any(_RULE_END.match(line) for line in lines) and not _has_entry_lines(text)


# an entry's opening lines quoted ("> \\\\" then "> arXiv:2411.01234"): a listing forwarded as a quote
_QUOTED_ENTRY = re.compile(rf"^>[> ]*\\\\[ \t]*\n>[> ]*(?:arXiv|Paper):\s*{ARXIV_ID}", re.M)


def _normalise(text: str) -> str:
    # hand-copied bodies turn the 2-space indent into NBSP (trap d); CRLF and CR from the wire
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    if _QUOTED_ENTRY.search(text):
        # a listing quoted with "> " (the forward's own unquoting left it, e.g. where a mail program wrapped the
        # quoted lines without quoting their ends): its lines as they were, the indents of the fields kept
        text = re.sub(r"^>(?:[ \t]?>)*[ \t]?", "", text, flags=re.M)
    return text


def announcement_date(text: str, mail_date: datetime | None) -> str | None:
    """The listing date: the weekday after the end of the ``received from ... to ...`` window, else the Date."""
    m = _WINDOW.search(text)
    if m and m.group(2).lower()[:3] in _MONTHS:
        year = int(m.group(3))
        year = year + 2000 if year < 100 else year
        try:
            day = date(year, _MONTHS.index(m.group(2).lower()[:3]) + 1, int(m.group(1)))
        except ValueError:
            day = None
        if day is not None:
            day += timedelta(days=1)
            while day.weekday() >= 5:  # Friday's window is announced on Monday
                day += timedelta(days=1)
            return day.isoformat()
    if mail_date is not None:
        return mail_date.date().isoformat()
    # listing files begin with their own Date: line; an entry's Date: (below the first "\\") is its submission's
    head = re.split(r"^\\\\\s*$", text, maxsplit=1, flags=re.M)[0]
    m = re.search(r"^Date:\s*\w{3},\s+(\d{1,2})\s+(\w{3})\s+(\d{2,4})\s+\d", head, re.M)
    if m and m.group(2).lower()[:3] in _MONTHS:
        year = int(m.group(3))
        year = year + 2000 if year < 100 else year
        return date(year, _MONTHS.index(m.group(2).lower()[:3]) + 1, int(m.group(1))).isoformat()
    return None


# "ATLAS Collaboration: G. Aad, B. Abbott": a collaboration before its members, which would be one "author"
# "ATLAS Collaboration: G. Aad"
_COLLABORATION = re.compile(r"\b(Collaborations?|Consortium|Consortia)\s*:\s*", re.I)


def _collaborations_apart(authors: str | None) -> str | None:
    """The Authors field with each collaboration named before its members made a name of its own."""
    return _COLLABORATION.sub(r"\1, ", authors) if authors else authors


def _entry_to_paper(arxiv_id: str, fields: dict[str, str], abstract: list[str], section: str,
                    url: str | None, published: str | None) -> Paper:
    def field(name: str) -> str | None:
        value = clean_space(fields.get(name))
        return value or None

    title = tex_to_unicode(field("Title")) or arxiv_id
    authors = [tex_to_unicode(a) or a for a in split_authors(_collaborations_apart(tex_to_unicode(field("Authors"))))]
    # "A, B, et al. (97 additional authors not shown)": the names are cut, the count is kept
    more = re.search(r"\(\s*(\d+)\s+additional\s+authors?\s+not\s+shown\s*\)", field("Authors") or "", re.I)
    abstract_text = tex_to_unicode(" ".join(abstract)) if abstract else None
    comments = tex_to_unicode(field("Comments"))
    # TeX as in the other fields: "Compositio Math. 159 (2023) 1380--1430" (an en dash), "Math. Ann. (G\\"ottingen)"
    extra = [f"{k}: {tex_to_unicode(field(k))}" for k in ("Journal-ref", "MSC-class", "ACM-class", "Report-no")
             if field(k)]
    if extra:
        comments = "; ".join(([comments] if comments else []) + extra)
    categories = tuple((field("Categories") or "").split())
    return Paper(
        title=title,
        authors=tuple(authors),
        author_count=len(authors) + int(more.group(1)) if more else None,
        abstract=abstract_text or None,
        url=url if url and "arxiv.org/abs/" in url else arxiv_url(arxiv_id),
        arxiv_id=arxiv_id,
        doi=(field("DOI") or "").split()[0] if field("DOI") else None,
        source="arxiv",
        section=section,
        published=published,
        venue=tex_to_unicode(field("Journal-ref")),
        categories=categories,
        comments=comments,
    )


def parse_entries(text: str, mail_date: datetime | None = None) -> list[Paper]:
    """Every entry of every section, in order, duplicates included (see :func:`parse`)."""
    text = _normalise(text)
    published = announcement_date(text, mail_date)
    lines = [line.rstrip() for line in text.split("\n")]
    papers: list[Paper] = []
    section = "new"
    i, n = 0, len(lines)

    def next_nonblank(j: int) -> int:
        while j < n and not lines[j].strip():
            j += 1
        return j

    while i < n:
        line = lines[i].strip()
        if _RULE_END.match(line):
            break
        if _RULE_REPLACED.match(line):
            section = "replaced"
        elif _RULE_CROSS.match(line):
            section = "cross"
        elif line == "\\\\":
            j = next_nonblank(i + 1)
            m = _ID_LINE.match(lines[j].strip()) if j < n else None
            if m:
                i = _read_entry(lines, j, m, section, published, papers)
                continue
        i += 1
    return papers


def _read_entry(lines: list[str], j: int, m: re.Match, section: str, published: str | None,
                papers: list[Paper]) -> int:
    """Read one entry whose id line is ``lines[j]``; append it and return the index after it."""
    n = len(lines)
    arxiv_id = m.group(1)
    fields: dict[str, str] = {}
    current: str | None = None
    k = j + 1
    # metadata, until the "\\" that opens the abstract or the "\\ ( url" that closes an abstract-less entry
    while k < n:
        raw = lines[k]
        stripped = raw.strip()
        if stripped == "\\\\" or _END_LINE.match(stripped) or _DASHES.match(stripped):
            break
        fm = _FIELD_LINE.match(raw)
        if stripped.lower().startswith("replaced with revised version"):
            current = "Date"
            fields["Date"] = stripped
        elif fm and not raw[:1].isspace():
            current = fm.group(1)
            fields[current] = fm.group(2)
        elif stripped and current:
            fields[current] += " " + stripped  # wrapped field: join with one space
        k += 1
    abstract: list[str] = []
    url = None
    if k < n and lines[k].strip() == "\\\\":
        k += 1
        while k < n:
            stripped = lines[k].strip()
            if _END_LINE.match(stripped) or _DASHES.match(stripped) or _RULE_CROSS.match(stripped) \
                    or _RULE_REPLACED.match(stripped) or _RULE_END.match(stripped):
                break
            if stripped:
                abstract.append(stripped)
            k += 1
    if k < n:
        em = _END_LINE.match(lines[k].strip())
        if em:
            url = em.group(1)
            k += 1
    if fields.get("Date", "").lower().startswith("replaced with revised version"):
        # a replacement says so in place of its Date: line, also without the %%-- rule (a listing copied by hand
        # or cut to its entries), and also when its id line is marked as a cross-list
        section = "replaced"
    elif section == "new" and "cross-list" in m.group(0).lower():
        section = "cross"  # "arXiv:2602.12181 (*cross-listing*)": marked on its id line, also without the rule
    papers.append(_entry_to_paper(arxiv_id, fields, abstract, section, url, published))
    return k


def cut_entry(text: str) -> str | None:
    """The id of the listing's last entry when the text stops inside it (no closing ``\\\\ ( url , size)`` line nor
    rule after it: a listing cut short by a partial download or save); None for a whole listing."""
    lines = [line.strip() for line in _normalise(text).split("\n")]
    last = None
    for i, line in enumerate(lines):
        if line == "\\\\":
            j = next((k for k in range(i + 1, len(lines)) if lines[k]), len(lines))
            m = _ID_LINE.match(lines[j]) if j < len(lines) else None
            if m:
                last = (j, m.group(1), lines[j].lower().startswith("paper"))
    if last is None or last[2]:  # the pre-2007 "Paper:" form has no closing line to look for
        return None
    after = lines[last[0] + 1:]
    closed = any(_END_LINE.match(line) or _DASHES.match(line) or _RULE_CROSS.match(line) or _RULE_REPLACED.match(line)
                 or _RULE_END.match(line) for line in after)
    return None if closed else last[1]


def parse(body: Body) -> list[Paper]:
    """Every entry of a listing mail, in order, with its section.

    A paper listed twice in one mail (seen: as new and again as a cross-list) stays twice here, so
    `digest parse` shows each section complete; the store merges the copies into one paper.
    """
    text = body.text
    if text is None and body.html:
        from .common import html_to_text

        text = html_to_text(body.html)
    if not text:
        return []
    papers = parse_entries(text, body.date)
    cut = cut_entry(text)
    if cut and papers and papers[-1].arxiv_id == cut and papers[-1].abstract:
        # the text stops inside this abstract: say so where it is shown (a complete copy's abstract replaces it)
        papers[-1] = dataclasses.replace(papers[-1], abstract=papers[-1].abstract.rstrip(" .…") + CUT_MARK)
    return papers
