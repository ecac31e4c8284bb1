"""Journal table-of-contents and article alerts: Nature Portfolio, Cell Press (Elsevier) and AHA (Atypon).

Their links are opaque trackers except Elsevier's, so DOIs come from the visible text where the mail
prints them (Nature ``doi:10.1038/...``, AHA ``https://doi.org/10.1161/...``); Cell Press mails show no
DOI at all, only the article page (a PII), which we recover from the ``/CL0/<encoded target>/`` wrapper.
The article type (Editorial, Review, ...) goes into ``comments``.
"""

from __future__ import annotations

import re

from ..models import Paper
from .common import (
    DOI_RE,
    Body,
    clean_space,
    doi_from_url,
    doi_url,
    iso_date,
    soup_of,
    split_authors,
    strip_tracking,
    text_of,
    unwrap_url,
)

NATURE_DOMAINS = ("nature.com", "springernature.com")
CELLPRESS_DOMAINS = ("notification.elsevier.com",)
AHA_DOMAINS = ("ealerts.heart.org", "heart.org")


def looks_like_nature(html: str) -> bool:
    return "article-headline" in html and ("nature.com" in html or "springernature" in html)


def looks_like_cellpress(html: str) -> bool:
    return "click.notification.elsevier.com" in html or bool(
        re.search(r"(cell\.com/[\w-]+/fulltext/S|sciencedirect\.com/science/article/pii/)", html))


def looks_like_aha(html: str) -> bool:
    return "issue-item" in html and "article-meta" in html


# ---------------------------------------------------------------- Nature Portfolio


def parse_nature(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    papers: list[Paper] = []
    seen: set[str] = set()
    for headline in soup.select("td.article-headline"):
        title = text_of(headline)
        if not title or re.match(r"in this issue", title, re.I):
            continue
        # the smallest enclosing table that also holds this article's date/doi line
        box = headline.find_parent("table")
        while box is not None and box.select_one("td.article-date") is None:
            box = box.find_parent("table")
        date_td = box.select_one("td.article-date") if box is not None else None
        date_text = text_of(date_td)
        m = re.search(r"doi:\s*(10\.\d{4,9}/\S+)", date_text)
        doi = m.group(1) if m else None
        if doi is None or doi.lower() in seen:
            continue
        seen.add(doi.lower())
        contributors = box.select_one("td.article-contributors")
        venue = date_td.find("i") if date_td is not None else None
        link = headline.find("a", href=True)
        article_type = clean_space(date_text.split("|", 1)[0]) if "|" in date_text else None
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(text_of(contributors))) if contributors is not None else (),
            url=doi_url(doi) if doi else (link["href"] if link else None),
            doi=doi,
            source="nature",
            published=iso_date(date_text),
            venue=text_of(venue) or None,
            comments=article_type,
        ))
    return papers


# ---------------------------------------------------------------- Cell Press

_PII = re.compile(r"(?:/fulltext/|/abstract/|/pii/)(S[\dX()\-]{15,})", re.I)
_LABELS = re.compile(r"^(open access|free access|free|article|review|\s*)$", re.I)


def parse_cellpress(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    by_pii: dict[str, Paper] = {}
    for a in soup.find_all("a", href=True):
        target = unwrap_url(a["href"])
        m = _PII.search(target)
        title = text_of(a)
        if not m or not title or "/issue" in target:
            continue
        pii = re.sub(r"[()\-]", "", m.group(1)).upper()
        # the rows after the title row: authors first, then the highlight/eTOC blurb
        row = a.find_parent("tr")
        rows = [text_of(r) for r in row.find_next_siblings("tr")] if row is not None else []
        rows = [r for r in rows if not _LABELS.match(r)]
        authors = split_authors(rows[0]) if rows else []
        blurb = rows[1] if len(rows) > 1 else None
        paper = Paper(
            title=title,
            authors=tuple(authors),
            snippet=blurb,
            url=strip_tracking(target),
            doi=doi_from_url(target),
            source="cellpress",
        )
        old = by_pii.get(pii)
        # the "Featured" box repeats TOC items with "Pinglay et al."; keep the richer TOC entry
        if old is None or (len(paper.authors), bool(paper.snippet)) > (len(old.authors), bool(old.snippet)):
            by_pii[pii] = paper
    return list(by_pii.values())


# ---------------------------------------------------------------- AHA / Atypon


def parse_aha(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    papers: list[Paper] = []
    seen: set[str] = set()
    metas = soup.select("tr.article-meta") or soup.select("tr.issue-item")
    for meta in metas:
        if meta.select_one("tr.article-meta"):
            continue  # malformed mail HTML nests rows: use the innermost block only
        cite = meta.select_one(".cite-info")
        m = DOI_RE.search(text_of(cite) if cite is not None else text_of(meta))
        link = meta.find("a", href=True)
        title = text_of(link)
        if not m or not title:
            continue  # advertisement blocks (powerinbox, jeeng) carry no DOI
        doi = m.group(1).rstrip(".")
        if doi.lower() in seen:
            continue
        seen.add(doi.lower())
        loa = meta.select_one(".loa")
        venue = clean_space(cite.find(string=True) or "").strip(" .") if cite is not None else None
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(text_of(loa))) if loa is not None else (),
            url=doi_url(doi),
            doi=doi,
            source="aha",
            venue=venue or None,
        ))
    return papers
