"""Google Scholar alerts (``scholaralerts-noreply@google.com``, ``scholarcitations-noreply@google.com``).

One paper per ``a.gse_alrt_title`` (a DOM selector: the class name also appears in the <style> block).
The title link is ``scholar.google.<tld>/scholar_url?url=<target>&...``; the byline below it is
``authors<NBSP>- venue, year``; the ``gse_alrt_sni`` div is a truncated snippet (never an abstract).

Decision: ``section`` stays None (it is an arXiv notion); the alert type ("new citations", "related
research", ...) goes into ``comments`` as ``Google Scholar: <type>``, plus ``Cites: <title>`` when given.
``venue`` keeps the byline's venue and year as written (``Physiotherapy Theory and Practice, 2026``);
the year alone is not a date, so ``published`` is None.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from ..models import Paper
from .common import (
    Body,
    arxiv_id_from_url,
    clean_space,
    doi_from_url,
    soup_of,
    split_authors,
    text_of,
    unwrap_url,
)

SENDERS = {"scholaralerts-noreply@google.com", "scholarcitations-noreply@google.com"}
_SCHOLAR_LINK = re.compile(r"scholar\.google\.[a-z.]+/(scholar_url\?|citations\?[^\"']*view_citation)", re.I)
_TAG = re.compile(r"^\s*\[(PDF|HTML|CITATION|BOOK|B|C|DOC|PS)\]\s*", re.I)
# the alert kind in the ``folt=`` parameter of the mail's links: "art" new articles written by a followed author,
# "rel" new articles related to an author's research, "cit" new citations to an author's articles; "kw" and
# "kw-top" (fewer, most relevant results) a search query's alert, which is one paper's citations when the query is
# "cites:<id>" (a "Cited by" page followed: '"<title>" - new citations', the footer's "new results that cite
# <title>" linking to scholar?cites=<id>) and else "<query> - new results"
_FOLT = {
    "art": "new articles",
    "rel": "new related research",
    "cit": "new citations",
    "kw": "new results",
    "kw-top": "new results",
}
_QUERY_FOLT = ("kw", "kw-top")


# the label before the cited paper in a citation alert, in the UI languages seen ("Cites:", Japanese/Chinese
# "引用:"); a badge span ("First citation", "1 件目の引用") may stand before the title instead
_CITES_LABEL = re.compile(r"^\s*(?:Cites|Cite|Cita|Zitiert|Cytuje|Cita a|引用)\s*[:：]\s*", re.I)


def _has_class(tag, name: str) -> bool:
    """Scholar's class, also as Gmail rewrites it in forwarded copies (``m_5785...gse_alrt_sni``)."""
    return any(c.endswith(name) for c in tag.get("class") or ())


def _cited(table) -> str | None:
    """The cited paper's title in a citation alert's ``• Cites: <title>`` row, or None for another table."""
    cells = table.find_all("td")
    if len(cells) < 2 or text_of(cells[0]) != "•":
        return None
    spans = [sp for sp in cells[1].find_all("span") if "background" not in (sp.get("style") or "")]
    badge = len(spans) < len(cells[1].find_all("span"))
    for text in [text_of(sp) for sp in spans] or [text_of(cells[1])]:
        if _CITES_LABEL.match(text):
            return clean_space(_CITES_LABEL.sub("", text)) or None
    if badge and spans:
        return clean_space(text_of(spans[-1])) or None
    return None


def looks_like(html: str) -> bool:
    return "gse_alrt_title" in html or bool(_SCHOLAR_LINK.search(html))


# the alert type as subjects say it in other UI languages (seen in real Japanese alerts), and English forms
# without " - ": "1 new citation to articles by Yoonji Kim"
_SUBJECT_TYPES = (
    (re.compile(r"\bnew citations?\b|の論文からの引用|新しい引用", re.I), "new citations"),
    (re.compile(r"\bnew related research\b|関連する新しい研究", re.I), "new related research"),
    (re.compile(r"\bnew articles?\b|新しい論文", re.I), "new articles"),
    (re.compile(r"\bnew results?\b|新しい結果", re.I), "new results"),
    (re.compile(r"\brecommended articles?\b|おすすめの論文", re.I), "recommended articles"),
)


def _alert_type(subject: str, hrefs: list[str]) -> str | None:
    """From the ``folt=`` parameter of the mail's links (any link: in [CITATION]-only mails only the footer's
    tracking pixel has it), else from the subject. A search query's alert is "new results", or "new citations"
    when its query is one paper's citations (its subject says so, or the footer links to that paper's
    ``scholar?cites=`` page)."""
    for href in hrefs:
        folt = parse_qs(urlsplit(href).query).get("folt")
        if folt and folt[0] in _QUERY_FOLT:
            cites = any(_CITES_PAGE.search(h) for h in hrefs) or _subject_type(subject) == "new citations"
            return "new citations" if cites else _FOLT[folt[0]]
        if folt and folt[0] in _FOLT:
            return _FOLT[folt[0]]
    return _subject_type(subject)


# the footer's link to the followed paper's citing articles: "... new results that cite <a href=...>Title</a>"
_CITES_PAGE = re.compile(r"^https?://scholar\.google\.[a-z.]+/scholar\?(?:[^#]*&)?cites=\d", re.I)


def _subject_type(subject: str) -> str | None:
    # "<Name> - new citations": the part after the last " - " (a query may itself say "new citation ..."); a
    # phrase of a UI language not listed ("neue Ergebnisse") as written
    phrase = clean_space(subject.rsplit(" - ", 1)[1]) if " - " in subject else subject
    for pattern, kind in _SUBJECT_TYPES:
        if pattern.search(phrase):
            return kind
    return (phrase or None) if " - " in subject else None


def _split_byline(byline: str) -> tuple[list[str], str | None]:
    """``A Author, B Author…\\xa0- Venue, 2026`` -> (authors, ``Venue, 2026``); venue may be missing."""
    byline = byline.replace("\u2011", "-").strip()
    m = re.search(r"\xa0-\s|\s-\s|\xa0-$", byline)
    if m:
        authors, venue = byline[: m.start()], byline[m.end():]
    elif re.fullmatch(r"(?:19|20)\d{2}", byline):
        authors, venue = "", byline
    else:
        authors, venue = byline, ""
    # a bare initial is not an author: Scholar renders "Vanryckeghem, M. & Brutten, G." as
    # "G Vanryckeghem, M. & Brutten"
    names = [n for n in split_authors(authors) if not re.fullmatch(r"(?:[A-Z]\.\s*){1,3}|[A-Z]", n)]
    return names, clean_space(venue).strip(" -") or None


def _shared_titles(soup) -> dict[str, str]:
    """Target URL -> the longest title among the mail's ``scholar_share?url=...&rt=<title>`` links."""
    titles: dict[str, str] = {}
    for a in soup.find_all("a", href=True):
        if "scholar_share" not in a["href"]:
            continue
        query = parse_qs(urlsplit(unwrap_url(a["href"])).query)
        url, title = query.get("url", [""])[0], clean_space(query.get("rt", [""])[0])
        if url and len(title) > len(titles.get(url, "")):
            titles[url] = title
    return titles


_MOST_BLOCKS = 12  # a paper's byline, snippet and "Cites:" row, with room to spare


def _following_blocks(h3):
    """The sibling elements after the title's <h3> (or title link), up to the next paper's, and a dozen at most
    (a mail without <h3>s would otherwise have every paper read to the end of the mail: quadratic time)."""
    node = h3.find_next_sibling()
    for _ in range(_MOST_BLOCKS):
        if node is None or node.name == "h3" or (node.name == "a" and _has_class(node, "gse_alrt_title")):
            return
        yield node
        node = node.find_next_sibling()


def parse(body: Body) -> list[Paper]:
    if not body.html:
        return []
    soup = soup_of(body.html)
    anchors = soup.find_all(lambda tag: tag.name == "a" and _has_class(tag, "gse_alrt_title"))
    if not anchors:
        # forwarded copies (Gmail, Outlook) may drop the class attribute: fall back to title links in <h3>
        anchors = [a for a in soup.select("h3 a[href]") if _SCHOLAR_LINK.search(a["href"])]
    # the title links first, then every link and image of the mail
    links = [a.get("href", "") for a in anchors]
    links += [t.get("href") or t.get("src") or "" for t in soup.find_all(["a", "img"])]
    kind = _alert_type(body.subject, links)
    shared = _shared_titles(soup)
    # a citation alert for one paper names it in the subject ("\"Learning to ...\" - new citations"), also where
    # the body has no "Cites:" row (2019 mails); the 2026 footer links to its citing articles ("... new results
    # that cite <a href=".../scholar?cites=...">Learning to ...</a>"), also in a body read without its subject
    quoted = re.match(r'\s*["“](.+)["”]\s+-\s', body.subject or "")
    footer = next((text_of(a) for a in soup.find_all("a", href=True) if _CITES_PAGE.search(a["href"])), None)
    subject_cited = (clean_space(quoted.group(1)) if quoted else footer) if kind == "new citations" else None
    papers = []
    for a in anchors:
        href = a.get("href", "")
        target = unwrap_url(href)
        title = text_of(a)
        h3 = a.find_parent("h3")
        tag_text = ""
        if h3 is not None:
            span = h3.find("span")
            tag_text = text_of(span) if span is not None and span is not a else ""
        tag = _TAG.match(title) or _TAG.match(tag_text)
        title = _TAG.sub("", title).strip()
        if not title or "cleardot.gif" in target:
            continue
        if title.endswith(("…", "...")):
            # Scholar cuts long titles; its share links for the same paper carry a longer cut ("rt=")
            stem = title.rstrip("…. \xa0")
            longer = shared.get(target, "")
            if len(longer) > len(title) and longer.startswith(stem):
                title = longer
        byline = snippet = cites = None
        previous = byline_block = None
        container = h3 if h3 is not None else a
        for block in _following_blocks(container):
            boxed = block.name == "table" or block.find("table") is not None
            text = block.name in ("div", "p") and not boxed and bool(text_of(block))
            if _has_class(block, "gse_alrt_sni"):
                snippet = text_of(block)
            elif text and block.name == "div" and byline is None:
                byline, byline_block = block.get_text(""), block
            elif text and snippet is None and previous is not None and previous is byline_block:
                # the block right after the byline: the snippet of a copy whose classes were lost (an Outlook
                # forward, Word's HTML: <div><p class=MsoNormal><span>...</span></p></div>); a paper without one
                # ([CITATION]) has its icons or its end (<br>) there
                snippet = text_of(block)
            elif block.name == "font" and text_of(block):  # the layouts before 2018 (archived alerts)
                whole, coloured = text_of(block), block.find("span")
                if byline is None and coloured is not None and whole.startswith(text_of(coloured)):
                    # before ~2014: <font><span>byline</span><br>snippet</font>
                    byline = coloured.get_text("")
                    snippet = snippet or whole[len(text_of(coloured)):].strip() or None
                elif byline is None:
                    byline = block.get_text("")  # <font color=#006621>byline</font><br><font>snippet</font>
                elif snippet is None:
                    snippet = whole
            elif boxed and cites is None:
                cites = _cited(block if block.name == "table" else block.find("table"))
            previous = block
        authors, venue = _split_byline(byline or "")
        is_citation = bool(tag and tag.group(1).upper() == "CITATION") or "view_citation" in target
        comments = "; ".join(
            x for x in [f"Google Scholar: {kind}" if kind else None,
                        f"[{tag.group(1).upper()}]" if tag else None,
                        f"Cites: {cites or subject_cited}" if cites or subject_cited else None] if x
        ) or None
        papers.append(
            Paper(
                title=title,
                authors=tuple(authors),
                snippet=snippet or None,
                url=target,
                arxiv_id=None if is_citation else arxiv_id_from_url(target),
                doi=None if is_citation else doi_from_url(target),
                source="google_scholar",
                venue=venue,
                comments=comments,
            )
        )
    return papers
