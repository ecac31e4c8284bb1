"""PubMed "My NCBI" saved-search mail (``efback@ncbi.nlm.nih.gov``): the new results of a saved PubMed search.

Each result is a numbered item: the title (a link to the PubMed record), the authors (``Prates AC,
Freitas-Junior R.``), the citation (``Br J Cancer. 2017 Mar 30. doi: 10.1038/bjc.2017.87. [Epub ahead of
print]``), ``PMID: 28359079 [...]``, and, when the search is set to the Abstract format, the abstract. The
HTML mail puts each on its own table row; the plain-text mail puts them on lines. Both are read from the
text, line by line: an item ends at its ``PMID:`` line (what follows it, up to the next item, is its abstract
or a "Similar articles" link). The title is the link text where the HTML has it, so a title that wraps over
lines in the text is still found whole.
"""

from __future__ import annotations

import re

from ..models import Paper
from .common import Body, clean_space, html_to_text, iso_date, soup_of, split_authors, text_of

SENDER_DOMAINS = ("ncbi.nlm.nih.gov",)
_RECORD_URL = re.compile(r"(?:ncbi\.nlm\.nih\.gov/pubmed/|pubmed\.ncbi\.nlm\.nih\.gov/)(\d{1,9})\b")
_PMID = re.compile(r"^\s*PMID:\s*(\d{1,9})\b")
_NUMBER = re.compile(r"^\s*(\d{1,4})[.)]\s*(.*)$")
_DOI = re.compile(r"\bdoi:\s*(10\.\d{4,9}/\S+?)\.?(?=\s|$)", re.I)
# rows that are links or labels, not part of a paper's record
_NOISE = re.compile(r"^(similar articles|free (pmc )?article|free books? & documents|\[epub ahead of print\]|"
                    r"review\.?|erratum.*|comment in.*|update of.*|related citations.*)$", re.I)


def looks_like(text: str) -> bool:
    return "My NCBI" in text and bool(re.search(r"^\s*PMID:\s*\d", text, re.M))


def _items(lines: list[str]) -> list[list[str]]:
    """The lines of each numbered result, from its number to the line before the next number after a PMID."""
    items: list[list[str]] = []
    current: list[str] | None = None
    closed = True  # the current item has had its PMID line: the next numbered line starts a new item
    for line in lines:
        number = _NUMBER.match(line)
        if number and (closed or current is None):
            current = [number.group(2)] if number.group(2) else []
            items.append(current)
            closed = False
            continue
        if current is None:
            continue
        current.append(line)
        if _PMID.match(line):
            closed = True
    return items


def _paper(lines: list[str], titles: dict[str, str]) -> Paper | None:
    pmid_at = next((i for i, line in enumerate(lines) if _PMID.match(line)), None)
    if pmid_at is None:
        return None
    pmid = _PMID.match(lines[pmid_at]).group(1)
    record = [line for line in lines[:pmid_at] if line and not _NOISE.match(line)]
    if not record:
        return None
    title = titles.get(pmid)
    if title is not None:
        # drop the title's lines (it may have wrapped) from the record: what is left is authors, citation
        words = len(title.split())
        taken, count = 0, 0
        while taken < len(record) and count < words:
            count += len(record[taken].split())
            taken += 1
        rest = record[taken:]
    else:
        # plain text: the title runs up to the line that ends with its final period (or ? / !)
        end = next((i for i, line in enumerate(record) if re.search(r"[.?!\]]$", line)), 0)
        title = " ".join(record[: end + 1])
        rest = record[end + 1:]
    citation_at = next((i for i, line in enumerate(rest) if _DOI.search(line) or re.search(r"\b(19|20)\d{2}\b", line)),
                       None)
    authors_text = " ".join(rest[:citation_at] if citation_at is not None else rest[:1])
    citation = " ".join(rest[citation_at:]) if citation_at is not None else ""
    doi = _DOI.search(citation)
    venue = citation.split(". ", 1)[0].strip() if citation else ""
    abstract_lines = [line for line in lines[pmid_at + 1:] if line and not _NOISE.match(line)]
    abstract = clean_space(" ".join(abstract_lines)) if len(" ".join(abstract_lines)) >= 200 else None
    return Paper(
        title=re.sub(r"(?<![.\s])\.$", "", clean_space(title)),  # PubMed ends every title with a period
        authors=tuple(split_authors(authors_text.rstrip("."))),
        abstract=abstract,
        url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
        doi=doi.group(1) if doi else None,
        source="pubmed",
        published=iso_date(citation),
        venue=venue if venue and len(venue) <= 120 and not re.match(r"\d", venue) else None,
        comments=f"PMID: {pmid}",
    )


def parse(body: Body) -> list[Paper]:
    titles: dict[str, str] = {}
    if body.html:
        for a in soup_of(body.html).find_all("a", href=True):
            m = _RECORD_URL.search(a["href"])
            title = text_of(a)
            if m and title and len(title.split()) >= 2:
                titles.setdefault(m.group(1), title)
        text = html_to_text(body.html)
    else:
        text = body.text or ""
    lines = [clean_space(line) for line in text.splitlines()]
    papers = []
    for item in _items(lines):
        paper = _paper(item, titles)
        if paper is not None and paper.title:
            papers.append(paper)
    return papers
