"""PubMed "My NCBI" saved-search mail (``efback@ncbi.nlm.nih.gov``): the new results of a saved PubMed search.

A result is the title (a link to the PubMed record), the authors (``Prates AC, Freitas-Junior R.``), the
citation (``Br J Cancer. 2017 Mar 30. doi: 10.1038/bjc.2017.87. [Epub ahead of print]``), then
``PMID: 28359079 [...]``; searches set to the Abstract format put the citation first and the abstract (after
an "Author information" block) before the PMID. Whatever follows a PMID line (a "Similar articles" link, the
mail's footer) is not part of the paper.

HTML mails are read per record link: the title is the link's text (inline markup such as ``<i>BRCA1</i>-mutated``
joined as written) and the result is the largest element around it that holds no other record link, so
numbering is not needed (the 2020 layout has none). Plain-text mails are read per numbered item (``1.``,
``2.``, ... in sequence, a new item only after the previous one's PMID line), so a numbered list or a line
starting "3.5 weeks" inside an abstract does not start a result.
"""

from __future__ import annotations

import re

from ..models import Paper, normalise_title
from .common import TEXT_LINK, Body, clean_space, html_to_text, iso_date, soup_of, split_authors

SENDER_DOMAINS = ("ncbi.nlm.nih.gov",)
_RECORD_URL = re.compile(r"(?:ncbi\.nlm\.nih\.gov/pubmed/|pubmed\.ncbi\.nlm\.nih\.gov/)(\d{1,9})\b")
_PMID = re.compile(r"^\s*PMID:\s*(\d{1,9})\b")
_NUMBER = re.compile(r"^\s*(\d{1,4})[.)](?:\s+(.*))?$")
_DOI = re.compile(r"\bdoi:\s*(10\.\d{4,9}/\S+?)\.?(?=\s|$)", re.I)
# "Br J Cancer. 2017 Mar 30." / "PDQ Cancer Information Summaries [Internet]. Bethesda (MD): ...; 2002-."
_CITATION = re.compile(r"\bdoi:\s*10\.|^[^.]{2,120}\.\s.*\b(?:19|20)\d{2}\b")
# rows that are links or labels, not part of a paper's record
_NOISE = re.compile(r"^(similar articles|free (pmc )?article|free books? & documents|\[epub ahead of print\]|"
                    r"review\.?|erratum.*|comment in.*|update of.*|related citations.*|"
                    r"(copyright|©|dois?:|pmcid:|conflict of interest).*)$", re.I)
_AFFILIATION = re.compile(r"^(author information:|\(\d+\))", re.I)


def looks_like(text: str) -> bool:
    text = html_to_text(text) if "<" in text[:2000] and "</" in text else text
    return "My NCBI" in text and bool(re.search(r"^\s*PMID:\s*\d", text, re.M))


def _looks_like_authors(line: str) -> bool:
    """``Prates AC, Freitas-Junior R.`` or a group (``PDQ Adult Treatment Editorial Board.``), not a sentence."""
    names = [n for n in re.split(r",\s*|\s+and\s+", line.rstrip(".")) if n.strip()]
    return bool(names) and len(line) < 2000 and not line.endswith(":") and all(len(n.split()) <= 6 for n in names)


def _is_citation(line: str) -> bool:
    return bool(_CITATION.search(line))


def _paper(pmid: str | None, title: str, lines: list[str], before: list[str] = ()) -> Paper | None:
    """A result from its title and the lines after it, up to its PMID line (``before``: the lines above the
    title in its element, where the Abstract format puts the citation)."""
    title = clean_space(title)
    if not title:
        return None
    # the Abstract format's citation heads the record (``before``): an abstract's sentence with a year in it
    # ("... published between 2004 and 2019") is no citation
    citation = next((line for line in before if _is_citation(line)), None) \
        or next((line for line in lines if _is_citation(line)), None) or ""
    authors_text, abstract = "", []
    for line in lines:
        if line == citation or _AFFILIATION.match(line):
            continue
        if not authors_text and not abstract and _looks_like_authors(line):
            authors_text = line
        elif authors_text.endswith(",") and not abstract and _looks_like_authors(line):
            authors_text += " " + line  # a list of authors wrapped over lines (a text mail without blank lines)
        elif len(line) >= 80 or abstract:
            abstract.append(line)
    doi = _DOI.search(citation)
    venue = citation.split(". ", 1)[0].strip() if citation else ""
    text = clean_space(" ".join(abstract))
    return Paper(
        title=re.sub(r"(?<![.\s])\.$", "", title),  # PubMed ends every title with a period
        authors=tuple(split_authors(re.sub(r"\(\d+(,\d+)*\)", "", authors_text).rstrip("."))),
        abstract=text if len(text) >= 200 else None,
        url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else None,
        doi=doi.group(1) if doi else None,
        source="pubmed",
        published=iso_date(citation),
        venue=venue if venue and len(venue) <= 120 and not re.match(r"\d", venue) else None,
        comments=f"PMID: {pmid}" if pmid else None,
    )


def _until_pmid(lines: list[str]) -> tuple[list[str], str | None]:
    """The record's lines (noise dropped) up to its PMID line, and the PMID."""
    out = []
    for line in lines:
        if m := _PMID.match(line):
            return out, m.group(1)
        if line and not _NOISE.match(line):
            out.append(line)
    return out, None


def _lines(text: str) -> list[str]:
    return [clean_space(line) for line in text.splitlines()]


# ---------------------------------------------------------------- HTML


def _record_ids(node) -> set[str]:
    return {m.group(1) for x in node.find_all("a", href=True) if (m := _RECORD_URL.search(x["href"]))}


def _record_box(a, pmid: str, known: dict[int, set[str]]):
    """The largest element around a record link that links to no other record: that result's rows.

    ``known``: the records each element links to, kept over a mail's records (the results of a list share their
    ancestors: reading them again for each result took time quadratic in the number of results)."""
    box = a
    while box.parent is not None and box.parent.name not in ("body", "html", "[document]"):
        if id(box.parent) not in known:
            known[id(box.parent)] = _record_ids(box.parent)
        if not known[id(box.parent)] <= {pmid}:
            break
        box = box.parent
    return box


def _from_html(html: str) -> list[Paper]:
    links: dict[str, tuple] = {}  # PMID -> (its first link with a title, the title)
    for a in soup_of(html).find_all("a", href=True):
        m = _RECORD_URL.search(a["href"])
        title = clean_space(a.get_text(""))
        if m and len(title.split()) >= 2:
            links.setdefault(m.group(1), (a, title))
    papers = []
    known: dict[int, set[str]] = {}
    for pmid, (a, title) in links.items():
        box = _record_box(a, pmid, known)
        lines = _lines(html_to_text(str(box)))
        key = normalise_title(title)[:40]
        at = next((i for i, line in enumerate(lines) if key and key in normalise_title(line)), None)
        if at is None:
            continue
        # the title may wrap over lines: skip the lines that are part of it
        end = at
        while end + 1 < len(lines) and lines[end + 1] and normalise_title(lines[end + 1]) in normalise_title(title):
            end += 1
        record, found = _until_pmid(lines[end + 1:])
        before = [line for line in lines[:at] if line and not _NUMBER.match(line)]
        paper = _paper(found or pmid, title, record, before)
        if paper is not None:
            papers.append(paper)
    return papers


# ---------------------------------------------------------------- plain text


def _items(lines: list[str]) -> list[list[str]]:
    """Each numbered result's lines, from its number to its PMID line."""
    items: list[list[str]] = []
    current: list[str] | None = None
    closed, expected = True, None
    for line in lines:
        number = _NUMBER.match(line)
        # a result's title starts with a capital or a digit; a list in a footer ("2. to compare ...") does not
        if number and closed and (expected is None or int(number.group(1)) == expected) and \
                not re.match(r"[a-z]", number.group(2) or ""):
            current = [number.group(2)] if number.group(2) else []
            items.append(current)
            closed, expected = False, int(number.group(1)) + 1
        elif current is not None and not closed:
            current.append(line)
            closed = bool(_PMID.match(line))
    return items


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs; without blank lines, a title runs to its final period (or ? !)."""
    if any(not line for line in lines):
        out, block = [], []
        for line in [*lines, ""]:
            if line:
                block.append(line)
            elif block:
                out.append(" ".join(block))
                block = []
        return out
    for end, line in enumerate(lines):
        if re.search(r"(?<!\b[A-Z])\.$|[?!]$", line):  # not at an initial or "U.S."
            return [" ".join(lines[: end + 1]), *lines[end + 1:]]
    return lines


def _from_text(text: str) -> list[Paper]:
    papers = []
    for item in _items(_lines(TEXT_LINK.sub("", text))):
        lines, pmid = [], None
        for line in item:
            if m := _PMID.match(line):
                pmid = m.group(1)
                break
            if not _NOISE.match(line):
                lines.append(line)  # blank lines too: they separate the fields where the mail has them
        paragraphs = _paragraphs(lines)
        if not paragraphs:
            continue
        before = []
        if _is_citation(paragraphs[0]) and len(paragraphs) > 1:  # the Abstract format: citation, then title
            before, paragraphs = paragraphs[:1], paragraphs[1:]
        paper = _paper(pmid, paragraphs[0], paragraphs[1:], before)
        if paper is not None:
            papers.append(paper)
    return papers


def parse(body: Body) -> list[Paper]:
    if body.html:
        papers = _from_html(body.html)
        if papers:
            return papers
    return _from_text(body.text if body.text is not None else html_to_text(body.html or ""))
