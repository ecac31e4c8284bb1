"""bioRxiv / medRxiv alerts (``openRxiv-mailer@alerts.highwire.org``, ``cshljnls-mailer@alerts.highwire.org``).

Each entry ends with a line ``bioRxiv posted 22 January 2026 doi:10.64898/...``; the authors are the line
before it and the title the line before those. We read the text part, or the HTML turned into one line per
block, so both the plain and the HTML alternative work. Both the old ``10.1101`` and the 2026 openRxiv
``10.64898`` prefixes occur.
"""

from __future__ import annotations

import re

from ..models import Paper
from .common import Body, clean_lines, clean_space, doi_url, html_to_text, iso_date, split_authors

SENDERS = {"openrxiv-mailer@alerts.highwire.org", "cshljnls-mailer@alerts.highwire.org"}
# "bioRxiv posted 22 January 2026, doi: 10.1101/...": what tells a bioRxiv/medRxiv alert by its text alone
_POSTED_ON = r"posted\s+(?P<date>\d{1,2}\s+\w+\s+\d{4}|\w+\s+\d{1,2},?\s+\d{4})?"
_ITS_DOI = r".{0,400}?doi:?\s*(?:https?://doi\.org/)?(?P<doi>10\.\d{4,9}/[^\s<>\"]+)"
_POSTED = re.compile(rf"\b(bioRxiv|medRxiv)\s+{_POSTED_ON}{_ITS_DOI}", re.I)
# an entry's line in an alert from the servers' own mailer: that, or the citation form they print under a
# preprint ("bioRxiv 2026.01.20.700468; doi: https://doi.org/10.64898/..."), which a colleague's mail citing a
# preprint has too (so it does not make a mail without the sender's address one of these alerts)
_ENTRY = re.compile(rf"\b(bioRxiv|medRxiv)\s+(?:{_POSTED_ON}|(?=(?:19|20)\d\d\.\d\d\.\d\d\.\d+(?:v\d+)?;)){_ITS_DOI}",
                    re.I)
_JUNK = re.compile(r"^(\[?abstract\]?|\[pdf\]|\[abstract\]\s*\[(full text|pdf)\].*|-+|---)$", re.I)


def looks_like(text: str) -> bool:
    return bool(_POSTED.search(text))


def _entries(text: str) -> list[Paper]:
    lines = clean_lines(text)
    papers: list[Paper] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = _ENTRY.search(line)
        if not m:
            continue
        doi = m.group("doi").rstrip(".")
        if doi.lower() in seen:
            continue
        # text before "bioRxiv posted" on the same line (some layouts print it inline) is the author list
        inline = clean_space(line[: m.start()])
        if not inline and i > 0 and not lines[i - 1]:
            # the plain-text layout: title, authors and this line are paragraphs apart, and a paragraph may be
            # wrapped over several lines (a client that wraps at 76 characters, format=flowed undone or not)
            before = _paragraphs(lines[max(0, i - 24):i])
        else:
            before = [x for x in lines[max(0, i - 12):i] if x and not _JUNK.match(x)]
        authors_line = inline or (before.pop() if before else "")
        title = before.pop() if before else ""
        if not title:
            continue
        seen.add(doi.lower())
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(authors_line)),
            url=doi_url(doi),
            doi=doi,
            source="biorxiv" if m.group(1).lower() == "biorxiv" else "medrxiv",
            published=iso_date(m.group("date")),
            venue=m.group(1),
        ))
    return papers


def _paragraphs(lines: list[str]) -> list[str]:
    """The paragraphs (runs of lines between blank or junk lines) of ``lines``, each joined into one line."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line and not _JUNK.match(line):
            current.append(line)
        elif current:
            # a line broken after a word's hyphen ("post-" / "allopolyploidization") joins without a space
            paragraphs.append("".join(c if not i or re.search(r"\w-$", current[i - 1]) else " " + c
                                      for i, c in enumerate(current)))
            current = []
    return paragraphs


def parse(body: Body) -> list[Paper]:
    candidates = []
    if body.text:
        candidates.append(_entries(body.text))
    if body.html:
        candidates.append(_entries(html_to_text(body.html)))
    return max(candidates, key=len, default=[])
