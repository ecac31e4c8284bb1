"""Hugging Face daily/trending papers: the mails, and a trending page a user forwards as text.

Two shapes:
- links ``huggingface.co/papers/<arXiv id>`` (mails, HTML pages): the link text is the title and the id is
  the arXiv id;
- a copied page: blocks of ``title`` / optional metadata lines (``Published on ...``, ``Submitted by ...``,
  upvote counts) / ``abstract`` paragraph (see ``/work/shared/seed/hf-trending-papers.txt``).
The block reader is shared with the generic parser, which asks for at least two pairs.
"""

from __future__ import annotations

import re

from ..models import Paper
from .common import (
    ARXIV_ID,
    HF_URL,
    Body,
    arxiv_url,
    author_names,
    byline_names,
    clean_lines,
    clean_space,
    coined,
    html_to_text,
    is_meaningful_title,
    soup_of,
    tex_to_unicode,
    text_of,
)

SENDER_DOMAINS = ("huggingface.co",)
_ID_IN_TEXT = re.compile(rf"(?:huggingface\.co/papers/|arxiv\.org/(?:abs|pdf)/|arXiv:\s?)({ARXIV_ID})", re.I)
# lines of a copied paper card that are neither title nor abstract
_META = re.compile(
    r"^(published on\b.*|submitted by\b.*|upvotes?\b.*|\d[\d,.]*k?|[▲△⬆↑]\s?\d.*|·|•|\+\s?\d+|#\d+.*|"
    r"\d+ (authors?|comments?|upvotes?|likes?)\b.*|authors?:.*|github\b.*|arxiv page|pdf|"
    r"view (arxiv|pdf|paper).*|add to collection|community|(daily|trending) papers|"
    r"https?://\S+|[^\s/]+/\S+ · .*|\d+ (days?|hours?|minutes?) ago|"
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2}(, \d{4})?)$",
    re.I,
)


def looks_like(text: str) -> bool:
    """An HF papers link anywhere, or the page's own words at its top (a forwarded or pasted page starts with
    them; a document that merely mentions "trending papers" further down is not such a page)."""
    return bool(HF_URL.search(text)) or bool(
        re.search(r"byAK and the research community|hugging\s?face\W+(?:trending|daily) papers|"
                  r"(?:trending|daily) papers\W+(?:on |from |\W)*hugging\s?face", text[:2000], re.I))


# a link written into the text ("Advertisement <http://url1282.ealerts.heart.org/ls/click?upn=...>", as a mail
# program writes links in the text it makes of HTML): no words of its own, so it makes no paragraph long
_WRITTEN_URL = re.compile(r"<?https?://[^\s<>]*>?")


def is_abstract(block: str) -> bool:
    """A paragraph of prose: long, with sentences (its length counted without the links written into it)."""
    block = clean_space(_WRITTEN_URL.sub("", block)) if "://" in block else block
    return len(block) >= 250 or (len(block) >= 120 and bool(re.search(r"[.!?]\s+[A-Z]", block))
                                 and block.rstrip().endswith((".", "!", "?", ")")))


# a line that reads as code (backticks), or as prose: two sentences ending with a period ("It works. We show
# it."), or a sentence with a semicolon; titles may end in "?" or hold "vs. X" and "e.g. Y"
_PROSE_OR_CODE = re.compile(r"`|\b[a-z]{3,}[.!?]\s+[A-Z][a-z].*\.$|;.*\.$")


def pairs_from_blocks(text: str, *, source: str) -> list[Paper]:
    """Papers from ``title`` then ``abstract`` paragraphs, with metadata lines in between skipped."""
    text = text.replace("\r\n", "\n").replace("\u00a0", " ")
    blocks: list[list[str]] = []
    for raw in re.split(r"\n\s*\n", text):
        lines = [clean_space(x) for x in raw.split("\n") if clean_space(x)]
        if lines:
            blocks.append(lines)
    # abstracts are long: a text whose lines are all short (but for a few unbreakable addresses) was wrapped by
    # a mail program
    text_lines = [line for line in text.split("\n") if line.strip()]
    hard_wrapped = sum(len(_WRITTEN_URL.sub("", line)) > 80 for line in text_lines) <= max(2, len(text_lines) // 50)
    # laid out "Title / Authors / Abstract" (a block of several names somewhere): a single name is a byline too
    names_of = author_names if any(len(author_names(" ".join(b))) >= 2 for b in blocks) else byline_names
    papers: list[Paper] = []
    title: str | None = None
    ident: str | None = None
    abstract: list[str] = []
    authors: list[str] = []
    count: int | None = None  # the card's "+29 authors": how many there are in all
    open_card = False  # the last block was a card without its link: the next block may hold it

    def flush() -> None:
        if title and abstract:
            papers.append(Paper(title=title, authors=tuple(authors), **_abstract_or_snippet(" ".join(abstract)),
                                arxiv_id=ident, author_count=count, url=arxiv_url(ident) if ident else None,
                                source=source))

    for lines in blocks:
        ids = [m.group(1) for line in lines for m in [_ID_IN_TEXT.search(line)] if m]
        content = [x for x in lines if not _META.match(x)]
        joined = " ".join(content)
        if not content:
            if ids and title and not abstract:
                ident = ids[0]
            elif ids and open_card and papers and papers[-1].arxiv_id is None:
                # the link of the card just read, in a block of its own (a blank line before it)
                papers[-1] = papers[-1].with_(arxiv_id=ids[0], url=arxiv_url(ids[0]))
            open_card = False
            continue
        open_card = False
        card = _card(content, ids, names_of, source)
        if card is not None:  # a whole paper in one block: title, byline, upvotes, text, link
            open_card = card.arxiv_id is None
            flush()
            title, abstract, authors, count = None, [], [], None
            papers.append(card)
            continue
        # a card's first lines of the abstract, cut ("…"): long, or short after the card's byline
        if is_abstract(joined) or (title and not abstract and joined.endswith("…")
                                   and len(joined.split()) >= (4 if authors else 12)):
            if title:
                abstract.append(joined)
            continue
        # "Title / Authors / Abstract": the names are not the next title ("A. Smith, +29 authors · arXiv:2403.09611")
        byline, more = _byline(joined, names_of) if title and not abstract and not authors else ([], None)
        if byline:
            authors, count = byline, more
            ident = ident or (ids[0] if ids else None)
            continue
        # a short block: the title of the next paper (the last short block before an abstract wins)
        flush()
        title, abstract, authors, count = None, [], [], None
        # a title wrapped over lines (the whole text wrapped at 72-76 columns by a mail program) is whole again;
        # of other several-line blocks (a label, then the title) the last line is the title
        wrapped = hard_wrapped and all(len(x) >= 55 for x in content[:-1]) and len(joined) <= 300
        candidate = content[-1] if len(content) > 1 and len(content[-1]) > 10 and not wrapped else joined
        if source != "hf" and not ids and (_PROSE_OR_CODE.search(candidate) or len(candidate.split()) > 30):
            continue  # with no id to vouch for it, a sentence or a line of code is not a title
        if is_meaningful_title(candidate) or (source == "hf" and len(re.findall(r"\w+", candidate)) >= 2
                                             and not re.search(r"https?://|@", candidate)):
            title, ident = candidate, (ids[0] if ids else None)
    flush()
    return papers


# a byline's id after it: "Brandon McKinzie, Zhe Gan · arXiv:2403.09611"
_ID_AFTER = re.compile(rf"\s*[·•|]\s*arXiv:\s?{ARXIV_ID}$", re.I)
# "Brandon McKinzie, Zhe Gan, +29 authors": the names shown, and how many more there are
_MORE_AUTHORS = re.compile(r",?\s*(?:\+|and )\s?(\d+) (?:more )?authors?$", re.I)


def _card(content: list[str], ids: list[str], names_of, source: str) -> Paper | None:
    """A paper whose card is one block (a Daily Papers mail's text: ``title`` / authors / ``▲ 121`` / the first
    lines of the abstract / its ``huggingface.co/papers/<id>`` link), else None. It needs the link's id (or, when
    the link stands in the next block, a byline under the title), a first line that reads as a title and text
    after it that reads as prose, so a block of a page's other layouts (a label above a title, a title alone) is
    left to the block reader."""
    if len(content) < 2 or not is_meaningful_title(content[0]) or _PROSE_OR_CODE.search(content[0]) \
            or names_of(content[0]):  # a byline opens the block: the title came before it
        return None
    rest = content[1:]
    byline, more = _byline(rest[0], names_of)
    if len(rest) == 1 and more is None:
        byline = []  # a single line after the title is its text, unless it counts its authors ("+29 authors")
    if not (ids or (byline and len(rest) > 1)):
        return None
    if byline:
        rest = rest[1:]
    text = clean_space(" ".join(rest))
    if not (is_abstract(text) or (len(text.split()) >= 12 and text.endswith(".")) or text.endswith(("…", "..."))
            or (byline and not text)):
        return None
    return Paper(title=content[0], authors=tuple(byline), **_abstract_or_snippet(text),
                 arxiv_id=ids[0] if ids else None, url=arxiv_url(ids[0]) if ids else None, source=source,
                 author_count=more if byline else None)


def _byline(line: str, names_of) -> tuple[list[str], int | None]:
    """A card's author line read as names, and how many authors there are in all when it says how many more
    ("Brandon McKinzie, Zhe Gan, +29 authors · arXiv:2403.09611" -> 2 names, 31)."""
    shown = _ID_AFTER.sub("", line)
    names = names_of(_MORE_AUTHORS.sub("", shown))
    more = _MORE_AUTHORS.search(shown)
    return names, (len(names) + int(more[1]) if names and more else None)


def _abstract_or_snippet(text: str) -> dict[str, str | None]:
    """A card's text as the paper's abstract, or as its snippet when cut ("…": its first lines only)."""
    cut = text.endswith(("…", "..."))
    return {"abstract": None if cut else text or None, "snippet": text if cut else None}


def _card_heading(a) -> str | None:
    """The title of a card that is one link: its heading, else a bold line that reads as a title (not "Submitted
    by <b>akhaliq</b>", not the authors)."""
    heading = a.find(["h1", "h2", "h3", "h4", "h5", "h6"])
    if heading is not None and re.search(r"[^\W\d_]{2}", text_of(heading)):  # "DeepSeek-R1" is a title too
        return text_of(heading)
    for bold in a.find_all(["strong", "b"]):
        text = text_of(bold)
        if is_meaningful_title(text) and not author_names(text):
            return text
    return None


def _from_links(html: str) -> list[Paper]:
    soup = soup_of(html)
    best: dict[str, str] = {}
    order: list[str] = []
    for a in soup.find_all("a", href=True):
        m = HF_URL.search(a["href"])
        if not m:
            continue
        ident = m.group(1)
        if ident not in best:
            order.append(ident)
            best[ident] = ""
        # a card that is one link (thumbnail, title, authors, abstract, upvotes) names its title in a heading
        label = _card_heading(a) or text_of(a)
        # several links per card (title, thumbnail, "upvote"): keep the longest text that reads as a title
        # ... and a title: not a label ("Hugging Face", "View paper"), unless a short coined name ("DeepSeek-R1")
        titled = is_meaningful_title(label) or (len(label.split()) <= 2 and coined(label))
        if len(label) > len(best[ident]) and titled and not re.fullmatch(r"[\d\s.,k+]*|view|read|upvote", label, re.I):
            best[ident] = label
    return [Paper(title=best[i], arxiv_id=i, url=arxiv_url(i), source="hf") for i in order if best[i]]


def _from_text_links(text: str) -> list[Paper]:
    """Plain-text mails: ``Title`` on the line of, or the line before, a ``huggingface.co/papers/<id>`` URL."""
    lines = clean_lines(text)
    papers: list[Paper] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = HF_URL.search(line)
        if not m or m.group(1) in seen:
            continue
        before = clean_space(re.sub(r"[<(\[]?https?://\S+", "", line)).strip(" -:|[]()")
        at = next((j for j in range(i - 1, max(0, i - 3) - 1, -1) if lines[j]), None)
        prev = lines[at] if at is not None else ""
        if at is not None and (prev.endswith(("…", "...")) or is_abstract(prev)):
            # the end of a card's text (title / authors / upvotes / text / link): its title opens the card
            start = at
            while start > 0 and lines[start - 1]:
                start -= 1
            prev = lines[start] if start < at else ""
        title = before if is_meaningful_title(before) else prev if is_meaningful_title(prev) else ""
        if title:
            seen.add(m.group(1))
            papers.append(Paper(title=title, arxiv_id=m.group(1), url=arxiv_url(m.group(1)), source="hf"))
    return papers


def parse(body: Body) -> list[Paper]:
    return [_untexed(p) for p in _parse(body)]


def _untexed(paper: Paper) -> Paper:
    """Hugging Face shows arXiv's titles and abstracts as their authors typed them: ``$\\pi_0$: A Vision-Language-
    Action Flow Model``; the digest shows them as the arXiv parser does (TeX to Unicode: π₀)."""
    title, abstract = paper.title, paper.abstract
    if "$" in title or "\\" in title:
        title = tex_to_unicode(title) or title
    if abstract and ("$" in abstract or "\\" in abstract):
        abstract = tex_to_unicode(abstract) or abstract
    return paper if (title, abstract) == (paper.title, paper.abstract) else paper.with_(title=title, abstract=abstract)


def _parse(body: Body) -> list[Paper]:
    text = body.text or (html_to_text(body.html) if body.html else "")
    blocks = pairs_from_blocks(text, source="hf")
    links = _from_links(body.html) if body.html else _from_text_links(text)
    if not blocks:
        return links
    # enrich the page's title/abstract pairs with ids from the links, matched by title
    by_title = {clean_space(p.title).lower(): p for p in links}
    merged = []
    for p in blocks:
        link = by_title.pop(clean_space(p.title).lower(), None)
        merged.append(p.with_(arxiv_id=link.arxiv_id, url=link.url) if link and not p.arxiv_id else p)
    known = {p.arxiv_id for p in merged if p.arxiv_id}  # a link to a paper a block already gave (by its id)
    return merged + [p for p in by_title.values() if p.arxiv_id not in known]
