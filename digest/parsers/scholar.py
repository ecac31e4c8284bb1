"""Google Scholar alerts (``scholaralerts-noreply@google.com``, ``scholarcitations-noreply@google.com``).

One paper per ``a.gse_alrt_title`` (a DOM selector: the class name also appears in the <style> block).
The title link is ``scholar.google.<tld>/scholar_url?url=<target>&...``; the byline below it is
``authors<NBSP>- venue, year``; the ``gse_alrt_sni`` div is a truncated snippet (never an abstract).
Scholar sends HTML alone; the text a mail program makes of it (a plain-text forward) is read where it writes
out each title's link (:func:`parse_text`), and not at all without them.

Decision: ``section`` stays None (it is an arXiv notion); the alert type ("new citations", "related
research", ...) goes into ``comments`` as ``Google Scholar: <type>``, plus ``Cites: <title>`` when given.
``venue`` keeps the byline's venue and year as written (``Physiotherapy Theory and Practice, 2026``);
the year alone is not a date, so ``published`` is None.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from urllib.parse import parse_qs, urlsplit

from ..models import Paper
from .common import (
    Body,
    arxiv_id_from_url,
    clean_space,
    doi_from_url,
    joined_lines,
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
    hrefs = [url for href in hrefs for url in _nested(href)]  # behind Outlook's safe links too
    for href in hrefs:
        folt = parse_qs(urlsplit(href).query).get("folt")
        if folt and folt[0] in _QUERY_FOLT:
            cites = any(_CITES_PAGE.search(h) for h in hrefs) or _subject_type(subject) == "new citations"
            return "new citations" if cites else _FOLT[folt[0]]
        if folt and folt[0] in _FOLT:
            return _FOLT[folt[0]]
    return _subject_type(subject)


def _nested(href: str, depth: int = 3) -> list[str]:
    """The link and the links it carries as parameters (a wrapper's ``url=``), outermost first: Scholar's own
    link, with its ``folt=``, may sit inside Outlook's safe link (which ``unwrap_url`` would unwrap past it)."""
    found = [href]
    if depth:
        with contextlib.suppress(ValueError):
            for values in parse_qs(urlsplit(href).query).values():
                found += [url for value in values if value.startswith(("http://", "https://"))
                          for url in _nested(value, depth - 1)]
    return found


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
    byline = byline.replace("\u2011", "-").strip(" \t\r\n")  # (not the no-break space before a venue alone)
    m = re.search(r"\xa0-\s|\s-\s|\xa0-$|^\xa0?-\s", byline)
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


def _shared_titles(hrefs: list[str]) -> dict[str, str]:
    """Target URL -> the longest title among the mail's ``scholar_share?url=...&rt=<title>`` links."""
    titles: dict[str, str] = {}
    for href in hrefs:
        if "scholar_share" not in href:
            continue
        query = parse_qs(urlsplit(unwrap_url(href)).query)
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


def _whole_title(title: str, target: str, shared: dict[str, str]) -> str:
    """Scholar cuts long titles ("…"); its share links for the same paper carry a longer cut ("rt=")."""
    if title.endswith(("…", "...")):
        stem = title.rstrip("…. \xa0")
        longer = shared.get(target, "")
        if len(longer) > len(title) and longer.startswith(stem):
            return longer
    return title


def _is_citation(tag: re.Match | None, target: str) -> bool:
    """A [CITATION] entry (or a link to a citation's record): a reference with no paper behind it, no text."""
    return bool(tag and tag.group(1).upper() == "CITATION") or "view_citation" in target


def _paper(title: str, tag: re.Match | None, target: str, byline: str | None, snippet: str | None,
           cites: str | None, kind: str | None) -> Paper:
    authors, venue = _split_byline(byline or "")
    is_citation = _is_citation(tag, target)
    comments = "; ".join(
        x for x in [f"Google Scholar: {kind}" if kind else None,
                    f"[{tag.group(1).upper()}]" if tag else None,
                    f"Cites: {cites}" if cites else None] if x
    ) or None
    return Paper(
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


def parse(body: Body) -> list[Paper]:
    if not body.html:
        return parse_text(body) if body.text else []
    soup = soup_of(body.html)
    anchors = soup.find_all(lambda tag: tag.name == "a" and _has_class(tag, "gse_alrt_title"))
    if not anchors:
        # forwarded copies (Gmail, Outlook) may drop the class attribute: fall back to title links in <h3>
        anchors = [a for a in soup.select("h3 a[href]") if _SCHOLAR_LINK.search(a["href"])]
    # the title links first, then every link and image of the mail
    links = [a.get("href", "") for a in anchors]
    links += [t.get("href") or t.get("src") or "" for t in soup.find_all(["a", "img"])]
    kind = _alert_type(body.subject, links)
    shared = _shared_titles(links)
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
        title = _whole_title(title, target, shared)
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
        papers.append(_paper(title, tag, target, byline, snippet, cites or subject_cited, kind))
    return papers


# ---------------------------------------------------------------- the text a mail program made of an alert

# a title link as mail programs write a link in the text they make of HTML (a plain-text forward: Gmail and
# Thunderbird "Title <https://...>", the address on a line of its own when it is long; Outlook "Title<https://...>")
_TEXT_TITLE_LINK = re.compile(
    r"<(https?://scholar\.google\.[a-z.]+/(?:scholar_url\?|citations\?[^\s<>#]*view_op=view_citation)[^\s<>]*)>",
    re.I)
_TEXT_LINK = re.compile(r"<(https?://[^\s<>]+)>")
# a byline that ends as one does: "A Author, B Author… - Venue, 2026", "A Karmakar - 2019"
_YEAR_END = re.compile(r"\b(?:19|20)\d{2}$")
_DASH = re.compile(r"(?:^|[\s\xa0])-\s")


def _byline_end(line: str) -> bool:
    """The line ends as a byline does: a year, after a " - " (or the year alone). Two searches, not one pattern
    with ".*" between them: that is quadratic on a line of " - - - ..." (anyone can send a mail)."""
    year = _YEAR_END.search(line)
    if year is None:
        return False
    dash = _DASH.search(line)
    return year.start() == 0 or (dash is not None and dash.end() <= year.start())
_FOOTER = re.compile(r"^(?:This (?:message|alert) (?:was|is) sent by Google Scholar|List (?:my )?alerts|Cancel alert)",
                     re.I)
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S[^*\n]*?)\*")  # <b>query words</b> as a text is written: *words*
_ICON = re.compile(r"\[image:[^\]]*\]\s*$")  # a linked icon as Gmail writes it: "[image: Save]"
_MOST_TITLE_LINES = 6


def _plain(text: str) -> str:
    return clean_space(_EMPHASIS.sub(r"\1", text))


def _apart(line: str) -> bool:
    """A line that belongs to no title, byline or snippet: blank, a link or an icon, the "•" of a "Cites:" row,
    the footer."""
    line = line.strip()
    return not line or "<http" in line or line.endswith(">") or line.startswith(("[image:", "•")) \
        or bool(_FOOTER.match(line))


def _stops_title(line: str, *, last: bool) -> bool:
    """A line above a title link that is not part of the title: one :func:`_apart`, or (unless it is the title's
    ``last`` line, which may end in Scholar's cut "…") the end of the paper before: its snippet's "…", its
    byline."""
    if _apart(line):
        return True
    line = line.strip()
    return not last and (line.endswith(("…", "...")) or _byline_end(line))


def _wrap_width(lines: list[str]) -> int:
    """The width a mail program wrapped the text at (Gmail 78, Thunderbird 72): its longest line that is no link."""
    return max((len(line.rstrip()) for line in lines if "<http" not in line), default=0)


def parse_text(body: Body) -> list[Paper]:
    """An alert as text (a plain-text forward), read only where each paper's title link is written out: the title
    above its link, the byline the line below it (and its end, when the mail program wrapped it), then the
    snippet up to the paper's icons, its "• Cites:" row or the next title. Without the links (Apple Mail's text)
    nothing is read: where a title ends and a snippet starts is then a guess, and a wrong paper is worse than
    none. A title link without a line below it makes the whole text unread ([]) for the same reason."""
    text = (body.text or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        return bisect.bisect_right(starts, offset) - 1

    found = [m for m in _TEXT_TITLE_LINK.finditer(text) if "cleardot.gif" not in unwrap_url(m.group(1))]
    if not found:
        return []
    hrefs = [m.group(1) for m in found] + [m.group(1) for m in _TEXT_LINK.finditer(text)]
    kind = _alert_type(body.subject, hrefs)
    shared = _shared_titles(hrefs)
    quoted = re.match(r'\s*["“](.+)["”]\s+-\s', body.subject or "")
    subject_cited = clean_space(quoted.group(1)) if quoted and kind == "new citations" else None
    width = _wrap_width(lines)
    # each title: the lines above its link, and the text before the link on its line
    titles: list[tuple[int, str]] = []  # (the title's first line, its text)
    for m in found:
        at = line_of(m.start())
        first, words = at, [text[starts[at]:m.start()]]
        while first > 0 and at - first < _MOST_TITLE_LINES \
                and not _stops_title(lines[first - 1], last=first == at and not words[0].strip()):
            first -= 1
            words.insert(0, lines[first])
        titles.append((first, joined_lines("\n".join(w.strip() for w in words))))
    papers = []
    for n, m in enumerate(found):
        target = unwrap_url(m.group(1))
        tag = _TAG.match(_plain(titles[n][1]))
        title = _whole_title(_TAG.sub("", _plain(titles[n][1])).strip(), target, shared)
        k = line_of(m.end() - 1)
        end = titles[n + 1][0] if n + 1 < len(found) else len(lines)
        following = [line.strip() for line in [text[m.end():starts[k + 1] - 1], *lines[k + 1:end]] if line.strip()]
        if not title or not following or _apart(following[0]):
            return []  # a title link without its byline below: not the alert's layout
        byline, rest = following[0], following[1:]
        wrapped = f"{byline} {rest[0]}" if rest and not _apart(rest[0]) else ""
        if wrapped and not _byline_end(byline) and not byline.endswith("…") \
                and len(byline) + 1 + len(rest[0].split()[0]) > width \
                and (_byline_end(wrapped) or wrapped.endswith("…")):
            # the byline's end (its venue's, its year), wrapped to the next line: its first word would not have
            # fitted on the line, and the byline ends there as bylines do
            byline, rest = wrapped, rest[1:]
        snippet: list[str] = []
        cites = None
        for i, line in enumerate(rest):
            if line.startswith("•"):  # "• Cites: <title>": the "•" may be a line of its own, the title wrapped
                after = rest[i + 1:]
                row = [line.lstrip("• \t")] + after[:next((j for j, x in enumerate(after) if _apart(x)), len(after))]
                row = _ICON.sub("", " ".join(row).replace("\u202a", "").replace("\u202c", ""))
                cites = clean_space(_CITES_LABEL.sub("", row)) if _CITES_LABEL.match(row) else None
                break
            if _apart(line):
                break
            snippet.append(line)
        # a snippet ends in Scholar's "…": a heading after it (the alert's name, where no icons follow) is not part
        cut = max((i for i, line in enumerate(snippet) if line.endswith(("…", "..."))), default=None)
        snippet = snippet[:cut + 1] if cut is not None else snippet
        papers.append(_paper(title, tag, target, byline, None if _is_citation(tag, target) else _plain(joined_lines("\n".join(
            snippet))) or None, cites or subject_cited, kind))
    return papers
