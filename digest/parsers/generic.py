"""Fallback for any other mail: papers found through arXiv ids, DOIs and paper links.

A found id becomes a paper only with a meaningful title (``common.is_meaningful_title``): the link text,
else the text before the link on its line, else the previous line. So a signature with one DOI behind
"here" gives nothing. A forwarded page of title + abstract paragraphs needs at least two such pairs.
"""

from __future__ import annotations

import re

from bs4 import Comment, NavigableString, Tag

from ..models import Paper
from .common import (
    ARXIV_ID,
    LINK_WORDS,
    Body,
    arxiv_id_from_url,
    arxiv_url,
    clean_lines,
    clean_space,
    doi_from_url,
    doi_url,
    html_to_text,
    is_meaningful_title,
    soup_of,
    text_of,
    unwrap_url,
)
from .hf import pairs_from_blocks

_PAPER_HOST = re.compile(
    r"(arxiv\.org/(abs|pdf)/|doi\.org/10\.|biorxiv\.org/content/|medrxiv\.org/content/|huggingface\.co/papers/|"
    r"/doi/(abs/|full/|pdf/)?10\.|link\.springer\.com/(article|chapter)/|nature\.com/articles/|"
    r"openreview\.net/(forum|pdf)\?id=|aclanthology\.org/)",
    re.I,
)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_BARE_ARXIV = re.compile(rf"\barXiv:\s?({ARXIV_ID})", re.I)
_BARE_DOI = re.compile(r"\b(?:doi:\s?|DOI:\s?)(10\.\d{4,9}/[^\s\"'<>]+)", re.I)


def _ids(url: str) -> tuple[str | None, str | None]:
    arxiv = arxiv_id_from_url(url)
    return arxiv, None if arxiv else doi_from_url(url)


# a list's numbering or bullet before a title: "1. ", "2) ", "[3] ", "(4) ", "- ", "* " (not "1.58-bit ...")
_LIST_MARK = re.compile(r"^(?:\(?\d{1,3}[.)]|\[?\d{1,3}\]|[-*•·▪◦‣–])\s+")


def _make(title: str, arxiv: str | None, doi: str | None, url: str | None) -> Paper:
    if url is None or not _PAPER_HOST.search(url):
        url = arxiv_url(arxiv) if arxiv else doi_url(doi) if doi else url
    title = _LIST_MARK.sub("", clean_space(title).strip(" -:|•"))
    return Paper(title=title, arxiv_id=arxiv, doi=doi, url=url, source="generic")


def _title_before(text: str) -> str:
    """The title in the text before a link on its line or list item ("1. Title (arXiv:" -> "Title")."""
    before = clean_space(_URL.sub(" ", text)).strip(" -:|•[](<>")
    before = re.sub(r"(?:^|(?<=\W))(?:arXiv|doi|pdf|link)\s*$", "", before, flags=re.I).strip(" -:|•[](")
    # prose before a link ("Free for lunch? I read <url>"): only the last sentence can be a title
    return _LIST_MARK.sub("", re.split(r"(?<=[.?!])\s+(?=\S)", before)[-1])


def _text_before_link(a) -> str:
    """What a list item or paragraph says before the link ``a`` (its own text only, no deeper search)."""
    block = a.find_parent(("li", "p", "td"))
    if block is None:
        return ""
    parts: list[str] = []
    for node in block.descendants:
        if node is a:
            break
        if isinstance(node, Tag) and node.name in ("br", "a"):
            parts = []  # a line break or another link ends the previous item: only this link's own line counts
        elif isinstance(node, NavigableString) and not isinstance(node, Comment) and node.find_parent("a") is None:
            parts.append(str(node))
    return " ".join(parts)


# link labels that follow a title ("Title (arXiv)", "Title [pdf]"); not "here" or "this paper", which end prose
_AFTER_TITLE = {"arxiv", "pdf", "doi", "abs", "abstract", "html", "preprint", "full text", "fulltext", "link", "code"}


def _own_words(before: str) -> bool:
    """Whether the text before a link on its line is more than a label ("URL:", "Full text:", "[1]", "→")."""
    bare = before.lower().strip(" :-→*•[]().")
    return bool(re.search(r"[^\W\d_]{2,}", bare)) and bare not in LINK_WORDS and bare not in ("url", "web", "online")


def _from_html(html: str) -> list[Paper]:
    papers = []
    for a in soup_of(html).find_all("a", href=True):
        target = unwrap_url(a["href"])
        if not _PAPER_HOST.search(target):
            continue
        arxiv, doi = _ids(target)
        if not (arxiv or doi):
            continue
        # only the link text: the text around a link is too often a sentence ("my paper is <a>here</a>");
        # plain-text alternatives and "Title <url>" lines are handled by _from_text
        title = text_of(a)
        if not is_meaningful_title(title):
            # "<li>Title (<a href=...>arXiv</a>)</li>": a link label after the title in a list item or paragraph
            label = clean_space(title).lower().strip(" .:!»›>()[]")
            after_title = label in _AFTER_TITLE or (len(label.split()) == 1 and _PAPER_HOST.search(label) is not None) \
                or re.fullmatch(r"(arxiv:\s*)?" + ARXIV_ID + r"|10\.\d{4,9}/\S+", label, re.I) is not None
            title = _title_before(_text_before_link(a)) if after_title else ""
        if is_meaningful_title(title):
            papers.append(_make(title, arxiv, doi, target))
    return papers


def _from_text(text: str) -> list[Paper]:
    lines = clean_lines(text)
    papers = []
    for i, line in enumerate(lines):
        found: list[tuple[str | None, str | None, str | None, int]] = []
        for m in _URL.finditer(line):
            url = unwrap_url(m.group(0).rstrip(".,;"))
            if _PAPER_HOST.search(url):
                arxiv, doi = _ids(url)
                if arxiv or doi:
                    found.append((arxiv, doi, url, m.start()))
        for m in _BARE_ARXIV.finditer(line):
            found.append((m.group(1), None, None, m.start()))
        for m in _BARE_DOI.finditer(line):
            found.append((None, m.group(1).rstrip(".,;"), None, m.start()))
        for arxiv, doi, url, start in found:
            before = _title_before(line[:start])
            prev = next((x for x in reversed(lines[max(0, i - 2):i]) if x), "")
            # the previous line only for a link alone on its line ("Title\nhttps://..."): a line with words of
            # its own before the link ("1.58-bit FLUX - <url>") is that item, not the line above's
            title = before if is_meaningful_title(before) else \
                prev if not _own_words(before) and is_meaningful_title(prev) else ""
            if title:
                papers.append(_make(title, arxiv, doi, url))
    return papers


def _dedup(papers: list[Paper]) -> list[Paper]:
    seen: set[str] = set()
    out = []
    for p in papers:
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def parse(body: Body) -> list[Paper]:
    text = body.text or (html_to_text(body.html) if body.html else "")
    linked = _from_html(body.html) if body.html else []
    linked += _from_text(text)
    pairs = pairs_from_blocks(text, source="generic")
    if len(pairs) < 2:
        pairs = []
    # prefer the richer title+abstract records, then add linked papers not already there
    titles = {clean_space(p.title).lower() for p in pairs}
    out = pairs + [p for p in linked if clean_space(p.title).lower() not in titles]
    return _dedup(out)

