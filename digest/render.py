"""Rendering: one context dict -> subject, plain text and HTML (CSS inlined for mail clients).

Pure: no I/O beyond reading the templates. Paper text comes from the outside world and is untrusted; the
HTML environment autoescapes everything.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import css_inline
import jinja2

from .models import Paper, ScoredPaper

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SOURCE_NAMES = {"arxiv": "arXiv", "google_scholar": "Google Scholar", "hf": "Hugging Face", "nature": "Nature",
                "cellpress": "Cell Press", "aha": "AHA Journals", "biorxiv": "bioRxiv", "generic": "email"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _env(directory: str, autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=autoescape,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def short_authors(authors: Sequence[str], limit: int = 3) -> str:
    names = [a for a in authors if a]
    if not names:
        return "Unknown authors"
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" et al. ({len(names)} authors)"


def shorten(text: str | None, limit: int = 420) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def paper_url(paper: Paper) -> str:
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    if paper.url:
        return paper.url
    if paper.doi:
        return f"https://doi.org/{paper.doi}"
    return ""


def item_context(item: ScoredPaper, sources: Sequence[str], up_url: str, down_url: str) -> dict:
    paper = item.paper
    return {
        "title": " ".join(paper.title.split()),
        "url": paper_url(paper),
        "authors": short_authors(paper.authors),
        "sources": ", ".join(SOURCE_NAMES.get(s, s) for s in sources),
        "text": shorten(paper.abstract or paper.snippet),
        "reason": item.reason,
        "score": item.score,
        "up_url": up_url,
        "down_url": down_url,
    }


def render_digest(context: dict, templates: Path = TEMPLATES) -> Rendered:
    """Fill subject.txt, digest.txt and digest.html from one context dict; inline the HTML's CSS."""
    ctx = {"reply_address": "", **context}
    if isinstance(ctx.get("date"), date):
        ctx.setdefault("date_label", ctx["date"].strftime("%a %d %b %Y"))
    text_env = _env(str(templates), False)
    html_env = _env(str(templates), True)
    subject = " ".join(text_env.get_template("subject.txt").render(ctx).split())
    text = text_env.get_template("digest.txt").render(ctx)
    html = html_env.get_template("digest.html").render({**ctx, "subject": subject})
    # keep the <style> block too: it carries the dark-mode and phone media queries that cannot be inlined
    html = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(html)
    return Rendered(subject, text, html)
