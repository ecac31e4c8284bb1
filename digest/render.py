"""Rendering: one context dict -> subject, plain text and HTML (CSS inlined for mail clients).

Pure: no I/O beyond reading the templates. Paper text and links come from the outside world and are
untrusted: the HTML environment autoescapes everything, and a link is used only if it is http(s).

The context (built by ``pipeline.compose``)::

    date, date_label, items, quiet, n_candidates, profile_file, unsubscribe_url, user, reply_address, page_url,
    n_more (runners-up on the page), n_below (papers below the floor on the page), n_loose (papers that cleared the
    floor but were held back as loose matches)
    items[i]: title, url, authors, sources, where, text, reason, score, up_url, down_url, reply_up, reply_down

``reply_up`` / ``reply_down`` (mailto links), ``reply_address`` and ``page_url`` (the digest's own web page,
where several papers can be voted on at once) may be empty: then they are not shown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, urlsplit

import css_inline
import jinja2
import markupsafe

from .models import Paper, ScoredPaper

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SOURCE_NAMES = {"arxiv": "arXiv", "google_scholar": "Google Scholar", "hf": "Hugging Face", "nature": "Nature",
                "cellpress": "Cell Press", "sciencedirect": "ScienceDirect",
                "rsc": "Royal Society of Chemistry", "acs": "ACS Publications", "aaas": "AAAS",
                "aha": "AHA Journals", "wiley": "Wiley Online Library", "biorxiv": "bioRxiv", "medrxiv": "medRxiv",
                "pubmed": "PubMed", "generic": "email"}
TEXT_LIMIT = 280  # characters of abstract/snippet per item: three or four lines on a desktop, a glance on a phone
TITLE_LIMIT = 300  # a "title" longer than this is a parser accident, not something to show in full
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# what no value shown in a digest may carry: control characters other than tab and newline (a title with ESC
# sequences would colour a text-mode mail reader's terminal; NUL is not allowed in mail at all)
# control characters, and the bidirectional overrides and isolates that can make a title display as another
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> object:
    """Every ``{{ value }}`` of the templates goes through here (our own Markup is left as it is)."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return _UNPRINTABLE.sub("", value)
    return value


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _env(directory: str, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             finalize=printable)
    env.filters["plural"] = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")
    return env


def short_authors(authors: Sequence[str], limit: int = 3, count: int | None = None) -> str:
    """``A, B, C et al. (7 authors)``; empty when the alert named nobody (better nothing than a placeholder).

    ``count`` is the number of authors when the alert named only some of them (``Paper.author_count``)."""
    names = [shorten(a, 80) for a in authors if a and a.strip()]
    total = max(len(names), count or 0)
    if not names or total <= limit and len(names) == total:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" et al. ({total} authors)"


def shorten(text: str | None, limit: int = TEXT_LIMIT) -> str:
    """Whitespace collapsed, cut at a word boundary (or mid-word for one huge token) with an ellipsis."""
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"


def safe_url(url: str | None) -> str:
    """The URL if it is an absolute http(s) link, else ''. Alert emails are untrusted: no javascript:, data:,
    relative or malformed links reach a digest."""
    if not url:
        return ""
    url = url.strip()
    if _CONTROL.search(url) or " " in url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def paper_url(paper: Paper) -> str:
    """Where the title links to: the arXiv abstract page, the alert's own link, the DOI, else a search for the
    title (so every item can be opened, even from an alert that carried no link): arXiv's title search for a
    Hugging Face paper (they are arXiv papers), Google Scholar's for the others."""
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{quote(paper.arxiv_id, safe='/.')}"
    url = safe_url(paper.url)
    if url:
        return url
    if paper.doi:
        return f"https://doi.org/{quote(paper.doi, safe='/.()-_;:')}"
    title = quote(" ".join(paper.title.split()), safe="")
    return _ARXIV_SEARCH.format(title) if paper.source == "hf" else _SEARCH + title


_SEARCH = "https://scholar.google.com/scholar?q="  # where the title of a paper with no link of its own leads
_ARXIV_SEARCH = "https://arxiv.org/search/?query={}&searchtype=title"


# table-of-contents headings that only say "a research paper": not worth a reader's glance
_PLAIN_KINDS = {"article", "articles", "research article", "research articles", "original article", "original articles",
                "original research", "research", "new online", "research paper", "research papers", "paper",
                "papers", "full paper", "full papers"}
_JOURNAL_SOURCES = {"nature", "cellpress", "sciencedirect", "rsc", "acs", "aaas", "aha", "wiley"}


def where_line(paper: Paper, sources: Sequence[str]) -> str:
    """``Nature Medicine · News & Views · via Nature``: where the paper appeared, what kind of piece it is (when a
    journal's contents say it is not a plain research article), and which alerts brought it."""
    names = list(dict.fromkeys(SOURCE_NAMES.get(s, s) for s in sources))
    parts = []
    venue = " ".join((paper.venue or "").split())
    if venue and venue.lower() not in {n.lower() for n in names}:
        parts.append(shorten(venue, 80))
    elif not venue and "arxiv" in sources and paper.categories:
        parts.append(paper.categories[0])  # "cs.CL": the arXiv listing's own field
    kind = " ".join((paper.comments or "").split())
    # the stored comments are the first sender's (arXiv's "12 pages", PubMed's "PMID: ..."): a kind only from a journal
    if paper.source in _JOURNAL_SOURCES and kind and len(kind) <= 40 and kind.lower() not in _PLAIN_KINDS:
        parts.append(kind)
    if names:
        parts.append("via " + ", ".join(names))
    link = paper_url(paper)
    if link.startswith(_SEARCH):
        parts.append("no link in the alert: the title searches Google Scholar")
    elif link.startswith(_ARXIV_SEARCH.split("?")[0]):
        parts.append("no link in the alert: the title searches arXiv")
    return " · ".join(parts)


def item_context(item: ScoredPaper, sources: Sequence[str], up_url: str, down_url: str, *,
                 reply_up: str = "", reply_down: str = "") -> dict:
    """The template context of one picked paper (every value a plain string or number)."""
    paper = item.paper
    return {
        "title": shorten(paper.title, TITLE_LIMIT) or "(untitled)",
        "url": paper_url(paper),
        "authors": short_authors(paper.authors, count=paper.author_count),
        "sources": ", ".join(dict.fromkeys(SOURCE_NAMES.get(s, s) for s in sources)),
        "where": where_line(paper, sources),
        "text": shorten(paper.abstract or paper.snippet),
        "reason": item.reason,
        "score": item.score,
        "up_url": up_url,
        "down_url": down_url,
        "reply_up": reply_up,
        "reply_down": reply_down,
    }


def date_label(day: date) -> str:
    """``Sat 5 Dec 2026``: a digest's day as its header shows it."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def _preheader(items: Sequence[dict], quiet: bool) -> str:
    """The preview line mail apps show under the subject: the first titles, not the header boilerplate."""
    if quiet or not items:
        return "Nothing cleared your relevance bar today."
    return shorten(" · ".join(i["title"] for i in items[:3]), 150)


# Gmail shows the first ~102 KB of a message's HTML and hides the rest behind "[Message clipped]": the last papers'
# 👍/👎 links and the footer's unsubscribe link with them. Measured as the HTML part is carried (quoted-printable:
# every "=" of an attribute is three bytes, an emoji twelve), with room to spare.
HTML_BUDGET = 96_000


def html_size(html: str) -> int:
    """Bytes of ``html`` as the message carries it: encoded as ``send.build_message`` encodes it, CRLF lines."""
    part = EmailMessage()
    part.set_content(html, subtype="html")
    payload = part.get_payload()
    return len(payload) + payload.count("\n")


def _html(ctx: dict, subject: str, templates: Path, shown: int, email_votes: bool) -> str:
    """digest.html with its CSS inlined, showing the first ``shown`` items (the others are linked to on the page),
    with or without each item's vote-by-email links."""
    items = ctx["items"][:shown]
    if not email_votes:
        items = [{**item, "reply_up": "", "reply_down": ""} for item in items]
    html = _env(str(templates), True).get_template("digest.html").render({**ctx, "subject": subject, "shown": items})
    # keep the <style> block too: it carries the dark-mode and phone media queries that cannot be inlined
    return css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(html)


def render_digest(context: dict, templates: Path = TEMPLATES, budget: int = HTML_BUDGET) -> Rendered:
    """Fill subject.txt, digest.txt and digest.html from one context dict; inline the HTML's CSS.

    An HTML part over ``budget`` bytes (a long digest) first loses the items' vote-by-email links (several hundred
    bytes each; the footer and the text part still say how to vote by reply), then its last items, which a closing
    row links to on the digest's page: so the footer, with the unsubscribe link, is never clipped away. The text
    part always has every item."""
    items = [{"reply_up": "", "reply_down": "", **item} for item in context.get("items", [])]
    ctx = {"reply_address": "", "user": "", "page_url": "", "n_more": 0, "n_below": 0, "n_loose": 0, **context,
           "items": items}
    day = ctx.get("date")
    if isinstance(day, date):
        ctx.setdefault("date_label", date_label(day))
        ctx.setdefault("date_short", f"{day:%a} {day.day} {day:%b}")
    ctx.setdefault("date_short", ctx.get("date_label", ""))
    ctx.setdefault("quiet", not items)
    ctx["preheader"] = _preheader(items, ctx["quiet"])
    text_env = _env(str(templates), False)
    subject = " ".join(text_env.get_template("subject.txt").render(ctx).split())
    text = text_env.get_template("digest.txt").render(ctx)
    shown, email_votes = len(items), any(i["reply_up"] or i["reply_down"] for i in items)
    html = _html(ctx, subject, templates, shown, email_votes)
    if email_votes and html_size(html) > budget:
        email_votes = False
        html = _html(ctx, subject, templates, shown, email_votes)
    while shown > 1 and (size := html_size(html)) > budget:
        # items are about the same size: aim straight at the budget, then step down one at a time
        shown = max(1, min(shown - 1, int(shown * budget / size)))
        html = _html(ctx, subject, templates, shown, email_votes)
    return Rendered(subject, text, html)
