"""Journal table-of-contents and article alerts: Nature Portfolio (journal TOCs and the weekly Nature issue
alert), Cell Press (Elsevier), ScienceDirect (Elsevier's other journals), AHA (Atypon), Wiley Online Library
(Atypon), the Royal Society of Chemistry, ACS Publications and the AAAS (Science, Science Advances, ...).

Their links are opaque trackers except Elsevier's, so DOIs come from the visible text where the mail
prints them (Nature ``doi:10.1038/...``, AHA ``https://doi.org/10.1161/...``); Cell Press mails show no
DOI at all, only the article page (a PII), which we recover from the ``/CL0/<encoded target>/`` wrapper.
The Nature issue alert and Wiley's alerts print no DOI at all: those papers are known by their title.
The article type or section (Editorial, Review, Original Article, ...) goes into ``comments``.
"""

from __future__ import annotations

import re
from itertools import islice

from bs4 import Tag

from ..models import Paper
from .common import (
    DOI_RE,
    NAME_PARTICLES,
    TOC_FURNITURE,
    Body,
    Preceding,
    author_names,
    byline_names,
    clean_space,
    doi_from_url,
    doi_url,
    is_meaningful_title,
    iso_date,
    soup_of,
    split_authors,
    strip_tracking,
    text_of,
    unwrap_url,
    without_honorifics,
)
from .generic import from_doi_blocks

NATURE_DOMAINS = ("nature.com", "springernature.com")
CELLPRESS_DOMAINS = ("notification.elsevier.com",)
# ScienceDirect's alerts come from the same domain as Cell Press's (cellpress@...), from their own address
SCIENCEDIRECT_SENDERS = {"sciencedirect@notification.elsevier.com", "sciencedirect@elsevier.com"}
RSC_DOMAINS = ("rsc.org",)
ACS_DOMAINS = ("acspubs.org", "acs.org")
AAAS_DOMAINS = ("sciencepubs.org", "aaas.org", "science.org")
AHA_DOMAINS = ("ealerts.heart.org", "heart.org")
WILEY_DOMAINS = ("wiley.com",)


_ISSUE_LINE = re.compile(r"Volume\s+\d+\s+Issue\s+\d+")
_NATURE_ALERT = re.compile(r"^\s*Nature alert\b", re.I)  # "Nature alert for 01st October 2026"


def looks_like_nature(html: str) -> bool:
    # a journal TOC (td.article-headline), or the weekly issue alert ("Volume 658 Issue 8134" at the top, every
    # link a Springer Nature tracker); other nature.com mail (Nature Briefing) has the trackers but no issue line
    return ("article-headline" in html and ("nature.com" in html or "springernature" in html)) \
        or ("links.springernature.com" in html and _ISSUE_LINE.search(html) is not None)


def looks_like_cellpress(html: str) -> bool:
    return "click.notification.elsevier.com" in html or bool(
        re.search(r"(cell\.com/[\w-]+/fulltext/S|sciencedirect\.com/science/article/pii/)", html))


def looks_like_sciencedirect(html: str) -> bool:
    # every link of ScienceDirect's alerts carries its campaign ("dgcid=raven_sd_aip_email", "raven_sd_search_...")
    return "raven_sd_" in html or ("sciencedirect.com" in html and "_piikey" in html)


def looks_like_rsc(html: str) -> bool:
    return "ItemTitleLink" in html or ("rsc.org" in html and "DOILabel" in html)


def looks_like_acs(html: str) -> bool:
    # ACS's campaign links (app.acspubs.org) and its DOIs (10.1021/...) printed in the mail
    return ("acspubs.org" in html or "pubs.acs.org" in html) and "10.1021/" in html


def looks_like_aaas(html: str) -> bool:
    return "aaas.sciencepubs.org" in html


def looks_like_aha(html: str) -> bool:
    return "issue-item" in html and "article-meta" in html


def looks_like_wiley(html: str) -> bool:
    # Atypon's template (other publishers use it too) and Wiley's name or links
    return "issue-item__title" in html and "wiley" in html.lower()


def _section_of(node) -> str | None:
    """The section heading an item sits under ("ORIGINAL ARTICLE" -> "Original Article"), if any."""
    text = text_of(node)
    if not text or len(text) > 60:
        return None
    return text.title() if text.isupper() else text


# ---------------------------------------------------------------- Nature Portfolio


# the DOI on an item's date line: "doi:10.1038/...", as some journals' TOCs print it "DOI: 10.1038/...", or as a
# link "https://doi.org/10.1038/..."; an item without it is not read, so a spelling missed loses every paper
_NATURE_DOI = re.compile(r"(?:\bdoi:\s*|\bdoi\.org/)(10\.\d{4,9}/\S+)", re.I)


def parse_nature(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    if soup.select_one("td.article-headline") is None:
        # the weekly issue alert; not other nature.com mail (Nature Briefing, a newsletter of news stories)
        if _NATURE_ALERT.match(body.subject or "") or _ISSUE_LINE.search(text_of(soup)):
            return _parse_nature_issue(soup, body)
        return []
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
        m = _NATURE_DOI.search(date_text)
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


# the weekly issue alert ("Nature alert for 1st October 2026"): pointers to a section, not papers
_NATURE_POINTER = re.compile(r"^(this (issue|week)['’]s\b|see (all|more)\b|view (all|more|the)\b|more from\b)", re.I)


def _is_nature_heading(tag) -> bool:
    return tag.name in ("h2", "h3") or (
        tag.name in ("td", "span") and "uppercase" in (tag.get("style") or "") and tag.find("a") is None)


_NATURE_LABEL_STANDFIRST = re.compile(r"^\s*(?:letters? to the editor|correspondence|editorial|"
                                      r"amendments? (?:&|and) corrections?|author correction|correction)\s*\.?\s*$",
                                      re.I)


def _parse_nature_issue(soup, body: Body) -> list[Paper]:
    """The weekly Nature issue alert: under headings (Editorial, New Online, News, Articles, ...), each item is
    a title link, a one-line standfirst and the author(s) in bold. There are no DOIs, only tracker links."""
    papers: list[Paper] = []
    seen: set[str] = set()
    published = iso_date(body.subject) or (body.date.date().isoformat() if body.date else None)
    heading_before = Preceding(_is_nature_heading)
    for a in soup.find_all("a", href=True):
        title = text_of(a)
        cell = a.find_parent("td")
        if len(re.findall(r"[^\W\d_]{2,}", title)) < 3 or _NATURE_POINTER.match(title) or cell is None \
                or len(cell.find_all("a", href=True)) != 1 or title.lower() in seen:
            continue  # an item's cell holds its one link; navigation and footers hold several or none
        rest = [s for s in cell.find_all("span") if s.find("a") is None and s.find_parent("a") is None
                and a not in s.descendants]
        bold = [s for s in rest if "bold" in (s.get("style") or "") or s.find_parent(["b", "strong"])]
        if not bold and cell.find(style=True) is None:
            # a copy without its styles (a forward, a gateway that cleans HTML) has no bold to tell the authors by:
            # there they are the item's last line when it reads as a byline (a standfirst is a sentence)
            bold = [s for s in rest[-1:] if byline_names(text_of(s))]
        standfirst = next((text_of(s) for s in rest if s not in bold and text_of(s)), None)
        if standfirst is None and (not bold or not is_meaningful_title(title)):
            # a bare link (a banner, "Subscribe to Nature") is not an item; with a standfirst below it, a news
            # headline is one even where the rule against link labels would say no ("My PI is not offering ...")
            continue
        seen.add(title.lower())
        heading = heading_before(a)
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(" and ".join(text_of(b) for b in bold if text_of(b)))),
            # a Correspondence item's "standfirst" is the label "Letter to the Editor", not its text
            snippet=None if standfirst and _NATURE_LABEL_STANDFIRST.match(standfirst) else standfirst,
            url=strip_tracking(unwrap_url(a["href"])),
            source="nature",
            published=published,
            venue="Nature" if _NATURE_ALERT.match(body.subject or "") else None,
            comments=_section_of(heading) if heading is not None else None,
        ))
    return papers


# ---------------------------------------------------------------- Cell Press

_FORWARD_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|wg|tr)\s*:\s*|\s*\[[^\]]*\]\s*)+", re.I)
_PII = re.compile(r"(?:/fulltext/|/abstract/|/pii/)(S[\dX()\-]{15,})", re.I)
_LABELS = re.compile(r"^(open access|free access|free|article|review|\s*)$", re.I)


# the grey 18px headings of the table of contents ("Leading Edge", "Articles", "Forum"); the boxes above the
# contents repeat some of its items under headings that say nothing about the article's kind
_CELL_HEADING = re.compile(r"font-size:\s*18px", re.I)
_CELL_BOXES = {"featured content", "online now", "announcements", "table of contents", "spotlight", ""}


def _is_cell_heading(tag) -> bool:
    return tag.name == "td" and _CELL_HEADING.search(tag.get("style") or "") is not None


def _cellpress_section(link, heading_before: Preceding) -> str | None:
    heading = heading_before(link)
    text = clean_space(text_of(heading)) if heading is not None else ""
    if heading is None or heading.find("a") is not None or len(text) > 40 or text.lower() in _CELL_BOXES:
        return None
    return text


# words of running text, never of an author row (whose particles are "van", "de", "la", ... and whose "and" is a
# separator)
_PROSE_WORDS = {"the", "of", "in", "is", "are", "was", "were", "we", "this", "that", "these", "with", "for", "from",
                "to", "on", "by", "an", "our", "which", "how", "here", "show", "shows", "can", "into", "their", "its"}


def _cellpress_authors_and_blurb(rows: list[str]) -> tuple[list[str], str | None]:
    """The authors and the blurb of an item from the rows after its title. An item without an author row (an
    editorial, a retraction) has its blurb first, which split at its commas made a sentence's pieces the paper's
    "authors": a first row that reads as prose is the blurb. Any other first row is the authors, names the strict
    name grammar does not know included ("Juan dela Cruz", "李华", a consortium)."""
    if not rows:
        return [], None
    if not author_names(rows[0]) and _reads_as_prose(rows[0]):
        return [], rows[0]
    return split_authors(rows[0]), rows[1] if len(rows) > 1 else None


def _reads_as_prose(row: str) -> bool:
    """A sentence or a title ("Gut microbes shape host metabolism via bile acids.", "Correction: ..."), not a
    list of names: words of running text, a colon or a closing full stop (not an initial's), or most of its
    comma-separated parts holding several lower-case words that are no name particles ("A pan-cancer atlas of T
    cell states"; "Jane Doe, danah boyd" and "..., on behalf of the ENIGMA Consortium" stay names)."""
    row = re.sub(r",?\s*(?:on behalf of|for) the\b[^,]*$", "", row)  # "..., on behalf of the ENIGMA Consortium"
    words = re.findall(r"[^\W\d_]+", row)
    if sum(w in _PROSE_WORDS for w in words) >= 2 or ":" in row or re.search(r"[^\W\d_]{2}\.\s*$", row):
        return True
    parts = split_authors(row) or [row]
    wordy = [p for p in parts if sum(w.islower() and w not in NAME_PARTICLES for w in re.findall(r"[^\W\d_]+", p)) >= 2]
    return len(wordy) * 2 > len(parts)


def parse_cellpress(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    # "Cell: January 22, 2026 (Volume 189, Issue 2)", "Cell Stem Cell Online Now E-mail Alert - January 22, 2026",
    # "Neuron In Press E-mail Alert - ..."
    subject = _FORWARD_PREFIX.sub("", body.subject or "")
    m = re.match(r"\s*(.+?)(?::\s+(?=[A-Z][a-z]+ (?:\d{1,2}, )?\d{4})|\s+(?:Online Now|In Press)\b)", subject)
    venue = clean_space(m.group(1)) if m else None
    published = iso_date(body.subject)
    by_pii: dict[str, Paper] = {}
    heading_before = Preceding(_is_cell_heading)
    for a in soup.find_all("a", href=True):
        target = unwrap_url(a["href"])
        m = _PII.search(target)
        title = text_of(a)
        if not m or not title or "/issue" in target:
            continue
        pii = re.sub(r"[()\-]", "", m.group(1)).upper()
        # the rows after the title row: authors first, then the highlight/eTOC blurb
        row = a.find_parent("tr")
        # the next two rows that are not labels (reading every row to the table's end made a long table quadratic)
        following = (text_of(r) for r in (row.next_siblings if row is not None else ()) if getattr(r, "name", "") == "tr")
        rows = list(islice((r for r in following if not _LABELS.match(r)), 2))
        authors, blurb = _cellpress_authors_and_blurb(rows)
        paper = Paper(
            title=title,
            authors=tuple(authors),
            snippet=blurb,
            url=strip_tracking(target),
            doi=doi_from_url(target),
            source="cellpress",
            published=published,
            venue=venue,
            comments=_cellpress_section(a, heading_before),
        )
        old = by_pii.get(pii)
        # the "Featured" box repeats TOC items with "Pinglay et al."; keep the richer TOC entry, with the
        # section heading whichever copy has one
        if old is None or (len(paper.authors), bool(paper.snippet)) > (len(old.authors), bool(old.snippet)):
            by_pii[pii] = paper.with_(comments=paper.comments or (old.comments if old else None))
        elif not old.comments and paper.comments:
            by_pii[pii] = old.with_(comments=paper.comments)
    return list(by_pii.values())


# ---------------------------------------------------------------- ScienceDirect

_SD_PII = re.compile(r"(?:_piikey=|/pii/)(S[\dX]{16})\b", re.I)
_SD_DATE = re.compile(r"\b(available online|publication date|published|in press|volume)\b|\b\d{4}\b", re.I)


def _sd_cited_venue(line: str) -> str | None:
    """The journal of a citation line ("Mayo Clinic Proceedings, Volume 93, Issue 8, Pages 991-1008")."""
    m = re.match(r"(.+?),\s*(?:Volume|In press)\b", line, re.I)
    return m.group(1).strip() if m else None


def parse_sciencedirect(body: Body) -> list[Paper]:
    """ScienceDirect's alerts (new articles in a journal, a new issue, a saved search): per paper an ``<h2>``
    link to the article (through Elsevier's click wrapper, to ``...citationSearch&_piikey=<PII>`` or
    ``/science/article/pii/<PII>``), then a paragraph of lines: the kind ("Research article"), the date
    ("Available Online 04 April 2026"), the authors. No DOI is printed: the article is known by its PII."""
    if not body.html:
        return []
    soup = soup_of(body.html)
    # "Alert: Applied Catalysis B: Environment and Energy" above a journal's new articles
    heading = clean_space(text_of(soup.find("h1")))
    m = re.match(r"(?:journal |volume |issue )?alert:\s*(.+)$", heading, re.I)
    venue = m.group(1) if m else None
    by_pii: dict[str, Paper] = {}
    for a in soup.find_all("a", href=True):
        target = unwrap_url(a["href"])
        m = _SD_PII.search(target)
        title = text_of(a)
        if not m or not is_meaningful_title(title) or TOC_FURNITURE.match(title):
            continue
        pii = m.group(1).upper()
        if pii in by_pii:
            continue
        block = a.find_parent(("h1", "h2", "h3", "h4", "p", "td")) or a
        # the paragraph of lines after the title; in the 2018-19 layout, three paragraphs (kind, citation, authors)
        metas = []
        for sibling in (block.next_siblings if block.name != "td" else ()):  # lazily: a long list is not read again
            if not isinstance(sibling, Tag) or sibling.name == "br":
                continue
            if sibling.name != "p" or len(metas) == 3 or any(_SD_PII.search(unwrap_url(x["href"]))
                                                            for x in sibling.find_all("a", href=True, limit=3)):
                break  # the next item (its title in a paragraph of its own), or the end of this one's lines
            metas.append(sibling)
        lines = [clean_space(x) for meta in metas for x in meta.get_text("\n").split("\n")]
        lines = [x for x in lines if x]
        # by position: the kind ("Research article", "Editorial") before the date line, the authors after it
        dated = next((i for i, x in enumerate(lines) if _SD_DATE.search(x)), None)
        head, tail = (lines[:dated], lines[dated + 1:]) if dated is not None else (lines[:1], lines[1:])
        kind = head[0] if head and len(head[0]) <= 40 and not re.search(r"\d", head[0]) else None
        authors = next((names for x in tail for names in [author_names(x)] if names), [])
        by_pii[pii] = Paper(
            title=title,
            authors=tuple(authors),
            url=f"https://www.sciencedirect.com/science/article/pii/{pii}",
            doi=doi_from_url(target),
            source="sciencedirect",
            published=iso_date(lines[dated]) if dated is not None else None,
            venue=venue or _sd_cited_venue(lines[dated] if dated is not None else ""),
            comments=kind,
        )
    return list(by_pii.values())


# ---------------------------------------------------------------- Royal Society of Chemistry


def parse_rsc(body: Body) -> list[Paper]:
    """The Royal Society of Chemistry's contents alerts: ``div.Item`` blocks under ``div.GroupHeading``
    sections ("Review Article", "Papers"), the title in ``a.ItemTitleLink`` (a tracker), the authors in
    ``div.ItemAuthors`` and the DOI printed in ``div.ItemCitation`` ("Energy Environ. Sci., 2026, 19, 2106
    DOI:10.1039/D5EE07078C"). Covers and the contents list are items too, and the news at the end has no DOI."""
    if not body.html:
        return []
    soup = soup_of(body.html)
    # "Energy & Environmental Science 2026, Volume 19, Issue 7" (the page title, and the subject's end)
    named = _FORWARD_PREFIX.sub("", text_of(soup.find("title")) or (body.subject or ""))
    m = re.match(r"(?:.*?\bcontents alert for\s+)?(.+?)(?:\s*[-–,]?\s*\b\d{4}\b.*)?$", clean_space(named), re.I)
    venue = m.group(1).strip(" -–,") if m and m.group(1) else None
    if venue:  # "Chemical Science Latest Articles", "Chemical Science - Advance Articles"
        venue = re.sub(r"[\s:–-]+(latest|advance|accepted|new)\s+(articles|manuscripts)\b.*$", "", venue, flags=re.I)
    papers: list[Paper] = []
    seen: set[str] = set()
    heading_before = Preceding(lambda t: t.name == "div" and "GroupHeading" in (t.get("class") or ()))
    for item in soup.select("div.Item"):
        link = item.select_one("a.ItemTitleLink") or item.find("a", href=True)
        title = text_of(link)
        doi = DOI_RE.search(text_of(item.select_one(".ItemCitation")) or text_of(item))
        if not doi or not is_meaningful_title(title) or TOC_FURNITURE.match(title) or doi.group(0).lower() in seen:
            continue
        seen.add(doi.group(0).lower())
        heading = heading_before(item)
        abbreviated = text_of(item.select_one(".ItemAbrrevTitle"))
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(text_of(item.select_one(".ItemAuthors")))),
            url=doi_url(doi.group(0)),
            doi=doi.group(0),
            source="rsc",
            venue=venue or abbreviated or None,
            comments=_section_of(heading) if heading is not None else None,
        ))
    return papers


# ---------------------------------------------------------------- ACS Publications


def parse_acs(body: Body) -> list[Paper]:
    """ACS Publications' article alerts ("Recent article highlights from ACS Applied Nano Materials", ASAP and
    issue alerts): per article a table of rows (title linked to a tracker, authors, "DOI: 10.1021/..."), read by
    the item reader for tables of contents that print their DOIs (``generic.from_doi_blocks``)."""
    if not body.html:
        return []
    soup = soup_of(body.html)
    # "Recent article highlights from ACS Applied Nano Materials" (heading and subject), or "ACS Nano: ASAP"
    named = clean_space(text_of(soup.find("h1")) or body.subject or "")
    m = re.search(r"\bfrom\s+(.+)$", named) or re.match(
        r"(.+?)(?::\s*(?:asap|just accepted|latest|new)\b|,\s*volume\b)", _FORWARD_PREFIX.sub("", named), re.I)
    venue = m.group(1).strip() if m else None
    return [p.with_(source="acs", venue=p.venue or venue) for p in from_doi_blocks(soup)]


# ---------------------------------------------------------------- AAAS: Science and its family

_BYLINE = re.compile(r"^\s*by\s+(?=\S)", re.I)
_SCIENCE_TITLE = re.compile(r"\b(Science(?:\s+(?:Advances|Immunology|Robotics|Signaling|Translational Medicine))?)\b")
_SMALL_WORDS = {"and", "of", "the", "in", "for", "on", "to", "a", "an"}


def _headline_case(text: str) -> str:
    """"DISEASES AND DISORDERS" -> "Diseases and Disorders"."""
    words = text.lower().split()
    return " ".join(w if i and w in _SMALL_WORDS else w[:1].upper() + w[1:] for i, w in enumerate(words))


def parse_aaas(body: Body) -> list[Paper]:
    """The AAAS journals' table-of-contents mails (Science, Science Advances, ...): per item a row with the kind
    and subject ("Research Article | EPIDEMIOLOGY"), a row with the title linked through an encrypted tracker
    (no DOI anywhere), a byline row ("By Fuminari Miura, Ka Yin Leung, et al."), then the one-sentence
    summary. Items are found by their byline, so sponsored blocks (no byline) are left out."""
    if not body.html:
        return []
    soup = soup_of(body.html)
    named = _SCIENCE_TITLE.search(_FORWARD_PREFIX.sub("", body.subject or "")) or next(
        (m for img in soup.find_all("img", alt=True) for m in [_SCIENCE_TITLE.fullmatch(img["alt"].strip())] if m),
        None)
    venue = named.group(1) if named else None
    papers: list[Paper] = []
    seen: set[str] = set()
    for row in soup.find_all("tr"):
        cells = row.find_all("td", recursive=False)
        byline = text_of(cells[0]) if len(cells) == 1 else ""
        if not _BYLINE.match(byline) or len(byline) > 2000:
            continue
        title_row = row.find_previous_sibling("tr")
        link = title_row.find("a", href=True) if title_row is not None else None
        title = text_of(link)
        if not is_meaningful_title(title) or title.lower() in seen:
            continue
        seen.add(title.lower())
        kicker = title_row.find_previous_sibling("tr")
        labels = [t for t in (text_of(s) for s in kicker.find_all("span")) if t.strip("|")] \
            if kicker is not None else []
        after = row.find_next_sibling("tr")
        summary = text_of(after) if after is not None and after.find("a") is None else ""
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(_BYLINE.sub("", byline))),
            snippet=summary or None,
            url=strip_tracking(unwrap_url(link["href"])),
            source="aaas",
            venue=venue,
            comments=labels[0] if labels else None,
            categories=tuple(_headline_case(x) for x in labels[1:2]),
        ))
    return papers


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
        # "Circulation. https://doi.org/..." or, in issue TOCs, "Hypertension. 2026;83: e26031": the journal only
        venue = clean_space(cite.find(string=True) or "") if cite is not None else None
        venue = re.split(r"\.\s+(?=\d{4}\b)", venue)[0].strip(" .") if venue else None
        papers.append(Paper(
            title=title,
            authors=tuple(split_authors(text_of(loa))) if loa is not None else (),
            url=doi_url(doi),
            doi=doi,
            source="aha",
            venue=venue or None,
        ))
    return papers


# ---------------------------------------------------------------- Wiley Online Library (Atypon)

# the sections of an issue that picture papers listed again below, or hold the issue's front matter
_WILEY_PICTURES = re.compile(r"^((inside )?(front |back )?cover( (image|picture|profile|feature))?|frontispiece|"
                             r"issue information)s?\s*$", re.I)


def parse_wiley(body: Body) -> list[Paper]:
    """Wiley content alerts (Early View, new articles in an issue, issue TOC): ``div.issue-item`` blocks with
    the title in ``a.issue-item__title``, authors in ``.loa`` and "First Published: 29 September 2026" or
    "Version of Record online: ..." below. No DOIs are printed and the links are trackers."""
    if not body.html:
        return []
    soup = soup_of(body.html)
    series = soup.select_one(".series-title") or soup.select_one(".journal-title b")  # Early View: td.journal-title
    venue = text_of(series) or None
    if venue is None:  # "New Articles Alert: Journal of Computer Assisted Learning, Vol. 42, ..."
        m = re.search(r"(?:alert|early view)[^:]*:\s*([^,]+)", body.subject or "", re.I)
        venue = clean_space(m.group(1)) if m else None
    papers: list[Paper] = []
    seen: set[str] = set()
    own_before = Preceding(lambda t: "toc__heading" in (t.get("class") or ()))
    heading_before = Preceding(lambda t: t.name in ("p", "h2", "h3", "h4") and text_of(t).isupper()
                               and len(text_of(t)) <= 60)
    for item in soup.select("div.issue-item"):
        if item.select_one("div.issue-item"):
            continue  # nested blocks: the innermost one is the item
        link = item.select_one("a.issue-item__title")
        title = text_of(link)
        if not is_meaningful_title(title) or TOC_FURNITURE.match(title) or title.lower() in seen:
            continue
        seen.add(title.lower())
        names = [without_honorifics(text_of(s).rstrip(",").strip()) for s in item.select(".loa span")
                 if s.find("span") is None]
        names = [n for n in names if n] or split_authors(text_of(item.select_one(".loa")))
        meta = text_of(item.select_one("p.rlist--inline"))
        own = item.select_one(".toc__heading") or own_before(item)
        if own is not None and _WILEY_PICTURES.match(text_of(own)):
            continue  # "Cover Picture", "Back Cover": a picture of a paper listed below as itself
        heading = own or heading_before(item)
        href = unwrap_url(link["href"]) if link is not None and link.get("href") else None
        blurb = item.select_one(".toc-item__abstract p, .abstract-preview p, .abstract-preview__text")
        papers.append(Paper(
            title=title,
            authors=tuple(names),
            snippet=text_of(blurb) or None,
            url=strip_tracking(href) if href else None,
            doi=doi_from_url(href),
            source="wiley",
            published=iso_date(meta.rpartition(":")[2]) if meta else None,
            venue=venue,
            comments=_section_of(heading) if heading is not None else None,
        ))
    return papers
