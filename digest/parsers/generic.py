"""Fallback for any other mail: papers found through arXiv ids, DOIs and paper links.

A found id becomes a paper only with a meaningful title (``common.is_meaningful_title``): the link text,
else the text before the link on its line, else the previous line. So a signature with one DOI behind
"here" gives nothing. A link is a paper's when an arXiv id or a DOI can be read from its address, whoever
publishes it; in plain text laid out "Title / Authors / URL" the names are the authors, the line above them the
title. A table of contents that prints each item's DOI as text and links its title to an
opaque tracker (the Royal Society of Chemistry's, many others') is read by item: the smallest block around
the DOI that holds a title, with the authors and abstract it shows. A forwarded page of title + abstract
paragraphs needs at least two such pairs; in a table of contents (three or more items), paragraphs serve only
as the abstracts of its papers, never as papers of their own (they are the newsletter around them).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from bs4 import Comment, Tag

from ..models import Paper
from .common import (
    ARXIV_ID,
    LINK_WORDS,
    NAME_PARTICLES,
    TOC_FURNITURE,
    Body,
    arxiv_id_from_url,
    arxiv_url,
    author_names,
    byline_names,
    clean_lines,
    clean_space,
    coined,
    doi_from_url,
    doi_url,
    given_first,
    html_to_text,
    is_label,
    is_meaningful_title,
    iso_date,
    soup_of,
    text_of,
    unwrap_url,
)
from .hf import is_abstract, pairs_from_blocks

_PAPER_HOST = re.compile(
    r"((?:arxiv|alphaxiv)\.org/(abs|pdf|overview)/|doi\.org/10\.|biorxiv\.org/content/|medrxiv\.org/content/|huggingface\.co/papers/|"
    r"/doi/(abs/|full/|pdf/)?10\.|link\.springer\.com/(article|chapter)/|nature\.com/articles/|"
    r"openreview\.net/(forum|pdf)\?id=|aclanthology\.org/)",
    re.I,
)
# a paper's own page whose address carries no arXiv id or DOI: a paper when its link text is a title
# ("<a href=https://www.semanticscholar.org/paper/...>Title</a>"), identified by the title and the link
_RECORD_LINK = re.compile(
    r"(semanticscholar\.org/paper/|pubmed\.ncbi\.nlm\.nih\.gov/\d+|ncbi\.nlm\.nih\.gov/(pubmed/\d+|pmc/articles/PMC\d+)|"
    r"pmc\.ncbi\.nlm\.nih\.gov/articles/PMC\d+|europepmc\.org/(abstract|article)/|academic\.oup\.com/[^/?#]+/article|"
    r"ieeexplore\.ieee\.org/(abstract/)?document/\d+|mdpi\.com/\d{4}-\d{3}[\dX]/\d+/\d+/\d+|"
    r"jamanetwork\.com/journals/[^/?#]+/fullarticle/\d+|thelancet\.com/journals/[^/?#]+/article/|"
    r"sciencedirect\.com/science/article/(abs/)?pii/|cell\.com/[^?#]*/(fulltext|abstract)/S|"
    r"openreview\.net/(forum|pdf)\?id=|aclanthology\.org/[\w.-]+\d/?(?:$|[?#])|bmj\.com/content/\d+/bmj[.-]|"
    r"papers\.ssrn\.com/sol3/papers\.cfm\?abstract_id=\d+|researchgate\.net/publication/\d+|academia\.edu/\d+/|"
    r"proceedings\.mlr\.press/v\d+/[^/?#]+\.html|(papers|proceedings)\.(nips|neurips)\.cc/paper(_files)?/.*/hash/)",
    re.I,
)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_BARE_ARXIV = re.compile(rf"\barXiv:\s?({ARXIV_ID})", re.I)
_BARE_DOI = re.compile(r"\b(?:doi:\s?|DOI:\s?)(10\.\d{4,9}/[^\s\"'<>]+)", re.I)


def _ids(url: str) -> tuple[str | None, str | None]:
    arxiv = arxiv_id_from_url(url)
    return arxiv, None if arxiv else doi_from_url(url)


# links that carry a paper's DOI without leading to the paper: sharing it, citing it, managing alerts about it
# (Atypon's /action/... pages: subscribe, citation alerts), related papers, a journal's page or its own DOI
# ("10.1002/(ISSN)1521-3773"), or a data set
_NOT_PAPER_HOST = re.compile(
    r"^https?://(?:[\w-]+\.)*(?:twitter\.com|x\.com|facebook\.com|linkedin\.com|bsky\.app|reddit\.com|"
    r"weibo\.com|wechat\.com|mendeley\.com|crossmark\.crossref\.org|altmetric\.com|plu\.mx)[/:?#]", re.I)
# (read in the path and query only: "journal.frontiersin.org" is a host); Atypon's /action/ pages other than an
# article's own (showAbstract, showFullText, showPdf); "/journal/" only when the journal's DOI ends the address
_NOT_PAPER_LINK = re.compile(
    r"/(?:share|sharer|unsubscribe|subscribe|alerts?|preferences|login|signin|showcitformats|citation-export|"
    r"export-?citation|cite|ris|bibtex|permissions|rightslink|relate|related|scholar_lookup)(?:[/.?&=#]|$)|"
    r"/action/(?!show(?:abstract|fulltext|pdf)\b)",
    re.I,
)
_JOURNAL_PAGE = re.compile(r"/journal/10\.\d{4,9}/[^/?#]+/?$", re.I)
# DOIs that are not a paper's: a journal's own, and data sets (Zenodo, figshare, Dryad)
_NOT_PAPER_DOI = re.compile(r"\(ISSN\)|\b10\.(?:5281|6084|5061)/", re.I)
# where a DOI starts in an address: the path words before it say what the page is; the DOI's own ("10.1371/
# journal.pone...") say nothing
_DOI_START = re.compile(r"\b10\.\d{4,9}/")


def _paper_link(url: str) -> tuple[str | None, str | None] | None:
    """(arXiv id, DOI) of a link to a paper, either or both None for a paper's own page that carries neither
    (``_RECORD_LINK``); None when the link is not to a paper.

    Any address an arXiv id or a DOI can be read from is a paper's (PLOS ``article?id=10.1371/...``, Frontiers,
    IOP, APS, BMC, eLife's article numbers, ...): a list of publishers' hosts lost every paper of the ones it
    did not name. Sharing, citing and alert links name a paper's DOI too, and are left out."""
    record = _RECORD_LINK.search(url) is not None
    address = unquote(url)
    parts = urlsplit(address)
    before_doi = _DOI_START.split(f"{parts.path}?{parts.query}", maxsplit=1)[0]
    if not record and (_NOT_PAPER_HOST.search(address) or _NOT_PAPER_LINK.search(before_doi)
                       or _JOURNAL_PAGE.search(parts.path) or _NOT_PAPER_DOI.search(address)):
        return None
    arxiv, doi = _ids(url)
    return (arxiv, doi) if arxiv or doi or record else None


# a list's numbering or bullet before a title: "1. ", "2) ", "[3] ", "(4) ", "- ", "* " (not "1.58-bit ...")
_LIST_MARK = re.compile(r"^(?:\(?\d{1,3}[.)]|\[?\d{1,3}\]|[-*•·▪◦‣–])\s+")


def _make(title: str, arxiv: str | None, doi: str | None, url: str | None) -> Paper:
    if url is None or not (_PAPER_HOST.search(url) or _RECORD_LINK.search(url)):
        url = arxiv_url(arxiv) if arxiv else doi_url(doi) if doi else url
    title = _LIST_MARK.sub("", clean_space(title).strip(" -:|•"))
    return Paper(title=_bare_title(title), arxiv_id=arxiv, doi=doi, url=url, source="generic")


# where a newsletter or reading list says a paper is from, around its title: "Title (arXiv)", "Title (NeurIPS
# 2023)", "Title, Science 373 (2021).", and who presents it in a reading list: "Alice — Title", "*Bo* — Title"
_SOURCE_LABEL = re.compile(r"\s*\((?:arXiv|bioRxiv|medRxiv|ChemRxiv|SSRN|preprint|paper|PDF|Nature|Science|Cell|PNAS|"
                           r"(?:NeurIPS|NIPS|ICML|ICLR|ACL|EMNLP|NAACL|EACL|COLING|CVPR|ICCV|ECCV|AAAI|IJCAI|KDD|SIGIR|"
                           r"WWW|CHI|UAI|AISTATS|COLT|MICCAI|ISMB|RECOMB|Interspeech|ICASSP|CoRL|RSS|ICRA|IROS)"
                           r"(?:[ ']\d{2,4})?)\)\s*$")
_CITED_IN = re.compile(r",\s+(?:[A-Z][\w.&-]*\s+){1,4}\d+(?:\(\d+\))?,?\s*(?:\((?:19|20)\d\d\)|(?:19|20)\d\d)\.?$")
_PRESENTER = re.compile(r"^\*?[A-Z][\w.'-]*\*?\s+[—–]\s+(?=\S)")
_NEWS_LABEL = re.compile(r"^(?:latest|new|recent|just out)(?: paper| preprint| publication)?:\s+", re.I)


def _bare_title(title: str) -> str:
    """A title without the source label or citation a newsletter, reading list or signature puts around it
    (the presenters of a reading list: ``_without_presenters``, which knows the whole mail)."""
    bare = _NEWS_LABEL.sub("", _CITED_IN.sub("", _SOURCE_LABEL.sub("", title)))
    return bare if is_meaningful_title(bare) else title


def _without_presenters(papers: list[Paper]) -> list[Paper]:
    """A reading list names who presents each paper ("Alice — Title", "*Bo* — Title"): when two titles or more
    of the mail start so, the names go; one alone is a title's own ("Covid-19 — Navigating the Uncharted")."""
    if sum(bool(_PRESENTER.match(p.title)) for p in papers) < 2:
        return papers
    return [p.with_(title=_PRESENTER.sub("", p.title)) if _PRESENTER.match(p.title)
            and is_meaningful_title(_PRESENTER.sub("", p.title)) else p for p in papers]


# the opening of a sentence, not of a title ("builds on earlier work", "a study published in Nature", "the DPO
# paper"): a lower-case word that opens sentences; titles open with lower-case names ("limma powers ...", "de
# Sitter vacua", "mRNA vaccines", "ape 5.0") and Latin ("in vivo", "in situ")
_SENTENCE_OPENERS = {"a", "an", "the", "this", "that", "these", "those", "our", "my", "we", "i", "it", "its", "their",
                     "his", "her", "your", "on", "at", "for", "with", "from", "by", "and", "or", "but", "as", "to",
                     "of", "see", "following", "builds", "here", "there", "read", "check", "via", "after", "before",
                     "since", "which", "while", "when", "where", "also", "more", "some", "one", "new", "latest",
                     "recent", "today", "yesterday", "based", "using", "in", "is", "was", "are", "were", "has", "have"}
_LATIN = re.compile(r"^in (?:vivo|vitro|situ|silico|utero|ovo|toto)\b")
# a greeting that opens a paragraph of a mailing-list message ("Good morning, ZmnSCPxj."; not "Greetings from Mars")
_GREETING = re.compile(r"^(?:good (?:morning|afternoon|evening|day)|greetings|hey|hi|hello|dear)\b[^.!?:]{0,40}[,!]",
                       re.I)
# a speaker's or writer's own words: "In this talk I will present ...", "we will discuss" (not "What We Will Learn")
_ANNOUNCEMENT = re.compile(r"\bI will\b|\bwe will\b|\b[Ii]n this (?:talk|post|issue|email|newsletter|seminar)\b")


def _reads_as_title(text: str) -> bool:
    """``is_meaningful_title``, and not the prose around a link in mail that is not an alert (a newsletter, a
    forum, a seminar announcement): not a sentence's lower-case opening, not a paragraph (more than 30 words),
    not a bracketed aside, not the names of the people who wrote it ("Rafael Rafailov, Archit Sharma, and
    colleagues"), not a greeting."""
    if not is_meaningful_title(text) or TOC_FURNITURE.match(clean_space(text)):
        return False
    text = clean_space(text)
    words = text.split()
    if (words[0] in _SENTENCE_OPENERS and not _LATIN.match(text)) or len(words) > 30 or _DATED.match(text) \
            or (text.startswith("[") and text.endswith("]")) or _GREETING.match(text) or _ANNOUNCEMENT.search(text) \
            or (len(words) <= 4 and words[-1].lower().strip(".:") in ("paper", "papers", "preprint", "article")):
        return False
    return not _names_of_people(text)


def _names_of_people(text: str) -> bool:
    """Whether a link's text names the people who wrote the paper ("Rafael Rafailov, Archit Sharma, and
    colleagues", "A. Smith, B. Jones"), not a title that reads as Title-Case names ("Adversarial Examples Are Not
    Bugs, They Are Features", "Speech and Language Processing")."""
    bare = re.sub(r",?\s+(?:and|&)\s+(?:colleagues|others|co-?workers|team)$", "", text)
    names = byline_names(bare)
    if not names:
        return False
    if bare != text:
        return True
    personal = all(2 <= len(n.split()) <= 3 for n in names)
    marked = any(re.search(r"\b[A-Z]\.", n) or any(w in NAME_PARTICLES for w in n.split()) for n in names)
    return len(names) >= 2 and personal and (len(names) >= 3 or marked)


def _title_before(text: str) -> str:
    """The title in the text before a link on its line or list item ("1. Title (arXiv:" -> "Title")."""
    before = clean_space(_URL.sub(" ", text)).strip(" -:|•[](<>")
    before = re.sub(r"(?:^|(?<=\W))(?:arXiv|doi|pdf|link)\s*$", "", before, flags=re.I).strip(" -:|•[](")
    # prose before a link ("Free for lunch? I read <url>"): only the last sentence can be a title
    return _LIST_MARK.sub("", re.split(r"(?<=[.?!])\s+(?=\S)", before)[-1])


def _text_before_link(a, cache: dict[int, dict[int, str]] | None = None) -> str:
    """What a list item or paragraph says before the link ``a`` (its own text only, no deeper search).
    ``cache`` keeps, per block, the text before each of its links: one walk of a block for all its links, not
    one per link (a paragraph of thousands of "Title (<a>doi</a>)" lines took minutes)."""
    block = _block_of(a)
    if block is None:
        return ""
    cache = {} if cache is None else cache
    if id(block) not in cache:
        before: dict[int, str] = {}
        parts: list[str] = []
        # the block's own text, in order: not a link's text, nor a nested block's (which is its own block, read
        # when one of its links asks): each node is read once however deep unclosed tags nest
        stack = list(reversed(block.contents))
        while stack:
            node = stack.pop()
            if isinstance(node, Tag):
                if node.name in ("br", "a"):
                    if node.name == "a":
                        before[id(node)] = " ".join(parts)
                    parts = []  # a line break or another link ends the previous item: only this link's line counts
                elif node.name not in _LINE_BLOCKS:
                    stack.extend(reversed(node.contents))
            elif not isinstance(node, Comment):
                parts.append(str(node))
        cache[id(block)] = before
    return cache[id(block)].get(id(a), "")


_LINE_BLOCKS = ("li", "p", "td")


def _block_of(a, reach: int = 30):
    """The list item, paragraph or cell a link is in, looked for at most ``reach`` levels up (unclosed tags nest
    a long mail's links ever deeper: walking to the root for each took time quadratic in its size)."""
    for n, parent in enumerate(a.parents):
        if n >= reach:
            return None
        if parent.name in _LINE_BLOCKS:
            return parent
    return None


# link labels that follow a title ("Title (arXiv)", "Title [pdf]"); not "here" or "this paper", which end prose
_AFTER_TITLE = {"arxiv", "pdf", "doi", "abs", "abstract", "html", "preprint", "full text", "fulltext", "link", "code"}


def _own_words(before: str) -> bool:
    """Whether the text before a link on its line is more than a label ("URL:", "Full text:", "[1]", "→")."""
    bare = before.lower().strip(" :-→*•[]().")
    return bool(re.search(r"[^\W\d_]{2,}", bare)) and bare not in LINK_WORDS and bare not in ("url", "web", "online")


def _from_html(html: str) -> list[Paper]:
    papers, short = [], []
    bylines: list[tuple[str, ...]] = []  # the names after each paper's title link (papers' own, in order)
    before: dict[int, dict[int, str]] = {}
    for a in soup_of(html).find_all("a", href=True):
        target = unwrap_url(a["href"])
        ids = _paper_link(target)
        # a link's text: a title is short (a link that holds the rest of the mail, nested, is read no further)
        title = _short_text(a, 400) or ""
        if ids is None:
            # a newsletter's opaque link (Substack's /redirect/...) whose text says it is a paper: "Title (arXiv)"
            if _PREPRINT_LABEL.search(title) and _reads_as_title(_SOURCE_LABEL.sub("", title)):
                papers.append(_make(title, None, None, target))
                bylines.append(())
            continue
        arxiv, doi = ids
        # only the link text: the text around a link is too often a sentence ("my paper is <a>here</a>");
        # plain-text alternatives and "Title <url>" lines are handled by _from_text
        if _short_title(title) or (_short_title(title, names_too=True) and len(_names_after(a)) >= 2):
            short.append(_make(title, arxiv, doi, target))  # "Mistral 7B", unless another link names the paper
            continue
        if not is_meaningful_title(title):
            # "<li>Title (<a href=...>arXiv</a>)</li>": a link label after the title in a list item or paragraph
            label = clean_space(title).lower().strip(" .:!»›>()[]")
            after_title = label in _AFTER_TITLE or (len(label.split()) == 1 and _PAPER_HOST.search(label) is not None) \
                or re.fullmatch(r"(arxiv:\s*)?" + ARXIV_ID + r"|10\.\d{4,9}/\S+", label, re.I) is not None
            said = _text_before_link(a, before)
            title = _title_before(said) if after_title else ""
            if (after_title or label == "paper") and not said.strip():
                title = _heading_above(a)  # "### Title / a blurb / [Paper] | [Code]" (a newsletter's item)
        if _reads_as_title(title):
            papers.append(_make(title, arxiv, doi, target))
            bylines.append(_names_after(a))
    # a byline under a title link: two names or more; one name only where the mail's other titles have bylines
    # (a table of contents' single-author paper), not under a newsletter's link (who recommends it)
    laid_out = sum(len(names) >= 2 for names in bylines) >= 2
    papers = [p.with_(authors=names) if len(names) >= 2 or (laid_out and names) else p
              for p, names in zip(papers, bylines, strict=True)]
    named = {p.id for p in papers}
    return papers + [p for p in short if p.id not in named]


_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "strong", "b")


def _heading_above(a, reach: int = 40) -> str:
    """The item's own heading above the link ``a`` (a newsletter's item: its title as a heading or in bold, a
    blurb, then "Paper | Code" links), looked for within ``reach`` elements and two paragraphs; "" when another
    link, a list item or a table row comes first (the heading above those is a section's, not this item's)."""
    blocks = 0
    for n, node in enumerate(a.previous_elements):
        if n > reach or not isinstance(node, Tag):
            continue
        if node.name in _HEADINGS:
            return _short_text(node, 400) or ""
        if node.name == "a":  # a heading that is a link ("<h3><a>Title</a></h3>") is still the item's heading
            parent = node.parent
            return (_short_text(parent, 400) or "") if parent is not None and parent.name in _HEADINGS else ""
        if node.name in ("li", "tr", "table", "ul", "ol"):
            return ""
        if node.name in ("p", "div"):
            blocks += 1
            if blocks > 2:
                return ""
    return ""


_PREPRINT_LABEL = re.compile(r"\((?:arXiv|bioRxiv|medRxiv|ChemRxiv|preprint|paper)\)\s*$", re.I)
# link texts of two words that are no paper's name: "Full text", "Our paper", "arXiv preprint"
_NOT_SHORT_TITLE = {"our", "my", "the", "this", "new", "full", "read", "view", "open", "free", "download", "see",
                    "paper", "papers", "preprint", "pdf", "article", "abstract", "text", "link", "version", "code",
                    "here", "more", "website", "project", "page", "arxiv", "doi", "html", "supplementary", "continue",
                    "keep", "sign", "register", "get", "check", "join", "peer", "review", "press", "release", "blog",
                    "post", "author", "information", "scholar", "pubmed", "pmc", "xplore", "anthology", "semantic",
                    "central", "citation", "cite", "share", "subscribe", "now", "online", "access", "reading"}


def _names_after(a) -> tuple[str, ...]:
    """The names that follow the link ``a`` ("Segment Anything" / "Alexander Kirillov, Eric Mintun, ..."): the
    next thing with text after the link, a line of its own or an element, read as a byline; () when it is none.
    A link alone in its element (``<p><a>Title</a></p><p>Li X, Wang Y</p>``, ``<h3><a>...</a></h3>``): after that
    element."""
    line, start, own = None, a, text_of(a)
    for _ in range(3):
        for node in start.next_siblings:
            if isinstance(node, Comment):
                continue
            if not isinstance(node, Tag):
                if node.strip():
                    line = clean_space(str(node))
                    break
                continue
            if node.name == "br" or not _has_text(node):
                continue
            line = _short_text(node) if node.name != "a" else None
            break
        else:  # nothing after the link in its element: the element's next sibling, if the link is all it holds
            parent = start.parent
            if parent is not None and parent.name in ("p", "div", "span", "h2", "h3", "h4", "h5", "strong", "b") \
                    and text_of(parent) == own:
                start = parent
                continue
        break
    return tuple(author_names(_BYLINE_END.split(line, maxsplit=1)[0])) if line else ()


def _short_title(text: str, names_too: bool = False) -> bool:
    """A paper's short name as the text of a link to it (its arXiv id, DOI or record page): two words, each
    capitalised or a number ("Mistral 7B", "Segment Anything"), none of them a link's label; with ``names_too``
    also two words that could be a person's name (the caller knows a byline follows)."""
    words = clean_space(text).split()
    # a person's name ("Tony Zhao") or a journal's ("Nature Medicine") links a paper too: a short name of a paper
    # has a number or an inner capital ("Mistral 7B", "DeepSeek-V3", "GPT-4") when it could be a name
    return len(words) == 2 and all(w[0].isupper() or w[0].isdigit() for w in words) \
        and not any(w.lower().strip(".:") in _NOT_SHORT_TITLE for w in words) \
        and sum(ch.isalpha() for ch in text) >= 6 and not is_label(text) \
        and (coined(text) or names_too or not byline_names(text))


# a journal's year as a citation gives it: "Nature (2023)", "Science, 2021"
_PUBLISHED = re.compile(r"^(?!.*\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\b)(?!(?:Apply|Deadline|Register)\b)"
                        r"[A-Z][A-Za-z .&:-]{1,80}?(?:\((?:19|20)\d\d\)|,\s*(?:19|20)\d\d)\.?$")
# the end of a byline: " - 12/15/2025 - Volume 131, Issue 4", " | Published 3 May", " (2026)"
_BYLINE_END = re.compile(r"\s+[-–|·]\s+|\s*\(\d{4}\)|\s+\d")


def _says_where(line: str) -> bool:
    """Whether a line says where a paper appeared: a citation ("Volume 131, Issue 4") or a journal and year."""
    return bool(_CITATION.search(line) or _PUBLISHED.search(line))


def from_byline_links(soup) -> list[Paper]:
    """A table of contents whose links are opaque (a mailing service's click tracker, no DOI or arXiv id in
    them): an item is a link whose text is a title followed by its byline ("Lu, Sirui; Efendić, Emir - 12/15/2025
    - Volume 131, Issue 4"). Only bylines of several names, or one written surname first, count: a newsletter's
    "by Jane Doe" under its stories is not a paper's."""
    papers = []
    for a in soup.find_all("a", href=True):
        title = _short_text(a, 400) or ""
        if not _is_title(title) or title.lower().strip(" .") in LINK_WORDS:
            continue
        # the next element with text: a short block without links (a byline is a line; a block that holds the rest
        # of the mail, nested, is not one, and reading it for every link would take time quadratic in the mail)
        after = _with_text(a.next_siblings)
        if after is None or after.name == "a" or after.find("a") is not None:
            continue
        byline = _short_text(after)
        if byline is None or re.match(r"by\s", byline, re.I):
            continue  # a story's byline ("By Jane Doe and John Smith | May 3"), not a paper's
        # a paper's byline, or the line after it, says where it appeared ("- 12/15/2025 - Volume 131, Issue 4",
        # "Nature (2023)"); a story's or a talk's does not
        if not _says_where(byline):
            venue = _with_text(after.next_siblings)
            cited = _short_text(venue) if venue is not None and venue.find("a") is None else None
            if not cited or not _says_where(cited):
                continue
        line = _BYLINE_END.split(byline, maxsplit=1)[0]
        names = author_names(line)
        surname_first = ";" in line or (len(names) == 2 and all(len(n.split()) == 1 for n in names))
        if len(names) == 2 and surname_first and ";" not in line:
            names = author_names(given_first(line))  # "Dang, Jianning": one author, surname first
        if names and (len(names) >= 2 or surname_first):
            papers.append(_make(title.rstrip(), None, None, unwrap_url(a["href"])).with_(authors=tuple(names)))
    return papers if len(papers) >= 3 else []


_DOI_TEXT = re.compile(r"\b10\.\d{4,9}/[^\s\"'<>]+")
_ITEM_BLOCKS = ("div", "td", "li", "tr", "p", "table", "tbody", "section", "article", "dd")
# an item's DOI stands on its own: "10.1039/D5EE07078C" after a "DOI:" label, "DOI: 10.1021/...", a doi.org link
# (or after the separator of a citation split over several tags: "<i>Nature Methods</i> <b>23</b> | doi:10.1038/...")
# (after other ids of the record: "PMID: 38412345 | PMCID: PMC10912345 | DOI: 10.1016/j.immuni.2024.01.006")
_DOI_ALONE = re.compile(r"^(?:(?:pmid|pmcid|issn|eissn|isbn)\s*:?\s*[\w-]+\s*[|·•;,]\s*)*(?:[|·•]\s*)?"
                        r"(?:doi:?\s*|https?://(?:dx\.)?doi\.org/)?10\.\d{4,9}/\S+$", re.I)
# ... or it ends the item's citation: "Nature Genetics 49, 1000 (2017) doi:10.1038/ng.3905" (a label or doi.org
# before it, a year just before that; a DOI inside a sentence has neither)
# (volume, issue and pages may stand between: "JAMA. 2024;331(10):800-810. doi:10.1001/jama.2024.2345")
_DOI_CITED = re.compile(r"^.{0,150}?\b(?:19|20)\d\d\)?(?:;\s?\d[\w()]*(?::\s?[\w-]+)?)?[,.;:]?\s*"
                        r"(?:doi:\s*|https?://(?:dx\.)?doi\.org/)10\.\d{4,9}/\S+$", re.I)
_TITLE_TAGS = ("a", "h1", "h2", "h3", "h4", "h5", "strong", "b")


def _doi_in(text: str) -> set[str]:
    return {d.rstrip(".,;)]").lower() for d in _DOI_TEXT.findall(text)}


# a reference to where an item appeared, not its title: "Language Teaching, Volume 59 / Issue 4", "Vol. 12, pp 3-9"
_CITATION = re.compile(r"\b(?:vol(?:ume)?\.?\s*\d+\b.{0,30}?\b(?:issue|no\.?|number|pp?\.?)\s*\d+|"
                       r"pp?\.?\s*\d+\s*[-–]\s*\d+)|"
                       # Nature's, with the article's type and date first: "News Feature | 05 January 2026
                       # Nature Medicine 32 |"
                       r"^[A-Z][\w ]{1,40} \| \d{1,2} [A-Z][a-z]+ (?:19|20)\d\d\b", re.I)
# an issue's cover and front or back matter, listed with a DOI like its articles
_MATTER = re.compile(r"(?:^|\bcover and )(?:front|back) matter\s*$", re.I)


def _strings(node, stop: int):
    """The strings under ``node`` in order, until ``stop`` characters have gone by: a walk of its children that
    costs what it reads (bs4's ``.strings`` first finds the end of the whole subtree, which in nested markup is
    the rest of the mail, for every node asked)."""
    stack, seen = [node], 0
    while stack:
        item = stack.pop()
        if isinstance(item, Tag):
            stack.extend(reversed(item.contents))
        elif not isinstance(item, Comment):
            yield item
            seen += len(item)
            if seen > stop:
                return


def _has_text(node) -> bool:
    return any(piece.strip() for piece in _strings(node, 2000))


def _with_text(siblings):
    """The first element among ``siblings`` (a node's ``next_siblings`` or ``previous_siblings``, walked lazily)
    that has text, else None."""
    return next((x for x in siblings if isinstance(x, Tag) and _has_text(x)), None)


def _short_text(node, limit: int = 600) -> str | None:
    """``text_of(node)`` when its text is at most ``limit`` characters, else None, read no further than that."""
    size = 0
    for piece in _strings(node, 2 * limit):
        size += len(piece)
    if size > 2 * limit:
        return None
    text = text_of(node)
    return text if len(text) <= limit else None


def _is_citation(text: str) -> bool:
    return len(text) < 160 and bool(_CITATION.search(text))


def _is_title(text: str) -> bool:
    return is_meaningful_title(text) and not TOC_FURNITURE.match(text) and not _DOI_TEXT.search(text) \
        and not _is_citation(text)


def _title_before_block(box):
    """The title printed just before an item's block, as its own link or heading (a layout that puts the title
    link first and then a block of authors, citation and DOI): the first sibling with text before ``box``."""
    sibling = _with_text(box.previous_siblings)  # the first one with text decides
    # a title is short: a block that holds much of the mail is read no further
    text = _short_text(sibling) if sibling is not None else None
    if text is None:
        return None
    heading = sibling if sibling.name in _TITLE_TAGS else None
    if heading is None and sibling.name in ("div", "p", "span", "td"):
        tags = sibling.find_all(_TITLE_TAGS, limit=2)
        heading = tags[0] if len(tags) == 1 and text_of(tags[0]) == text else None
    return heading if heading is not None and _is_title(text) else None


def _title_in(box, doi_node):
    """The first link or heading in ``box`` whose text is a paper's title: before the DOI if there is one
    (the usual order), else after it (a layout that prints the DOI first). ``box`` holds no other DOI."""
    after = None
    seen_doi = False
    for node in box.descendants:
        if node is doi_node:
            seen_doi = True
        elif isinstance(node, Tag) and node.name in _TITLE_TAGS:
            if _is_title(text_of(node)):
                if not seen_doi:
                    return node
                after = after or node
    return after


def _short_title_in(box, doi_node):
    """A short title ("Silenced genomes", "Ageing clocks"), too short for the rule against junk titles, where an
    item shows it in full: the link last before the item's DOI, followed at once by the item's author line and
    then by nothing but its citation ("News Feature | 05 January 2026 <i>Nature Medicine</i> <b>32</b> |
    doi:..."). A Nature table of contents forwarded without its classes lists its news features so. A link of
    two words that could be a person's name, or a link's label ("Full text"), is not taken."""
    link, after = None, []
    for node in box.descendants:
        if node is doi_node:
            break
        if isinstance(node, Tag) and node.name == "a":
            link, after = node, []
        elif link is not None and not isinstance(node, (Tag, Comment)) and node.strip() \
                and not any(parent is link for parent in node.parents):
            after.append(clean_space(str(node)))
            if len(after) > 8:  # more than an author line and a citation between the link and the DOI
                link, after = None, []
    if link is None or not after:
        return None
    text = _short_text(link, 120) or ""
    words = re.findall(r"[^\W\d_]{2,}", text)
    if not (2 <= len(words) <= 6) or sum(ch.isalpha() for ch in text) < 8 or text.lower() in LINK_WORDS \
            or any(w.lower() in _NOT_SHORT_TITLE for w in words[:1]) or is_label(text) or TOC_FURNITURE.match(text) \
            or _DOI_TEXT.search(text) or re.search(r"https?:|www\.|@", text) \
            or (author_names(text) and not _short_title(text)):
        return None
    # its authors right after it, then nothing but the citation ahead of the DOI (no sentence: a blurb's link)
    if not author_names(after[0]) or any(len(piece) > 120 for piece in after[1:]):
        return None
    return link


def _past_item(box, limit: int = 4000) -> bool:
    """Whether a block holds more than one item: a second DOI, or more than ``limit`` characters of text. Read no
    further than that: in nested markup each block holds all the rest of the mail."""
    size, dois = 0, set()
    for piece in _strings(box, 4 * limit):
        size += len(" ".join(piece.split()))
        dois |= _doi_in(piece)
        if size > limit or len(dois) > 1:
            return True
    return False


def from_doi_blocks(soup) -> list[Paper]:
    """Items of a table of contents that prints DOIs as text: per DOI, the smallest block around it that holds
    a title (and no other DOI); the block right after the title's, when it reads as names, is the authors."""
    papers = []
    # whether a block holds more than one item, per block: the DOIs of a list share their ancestors, and
    # reading a list's text again for each of its DOIs took time quadratic in the length of the list
    past_item: dict[int, bool] = {}
    for node in soup.find_all(string=_DOI_TEXT):
        text = clean_space(str(node))
        if isinstance(node, Comment) or not (_DOI_ALONE.match(text) or _DOI_CITED.match(text)):
            continue  # a DOI inside a sentence ("please cite 10.1016/..."), or in a linked title: not an item's
        doi = _DOI_TEXT.findall(str(node))[-1].rstrip(".,;)]")
        box, title, inner = node.parent, None, None
        while box is not None and box.name != "[document]":
            if box.name in _ITEM_BLOCKS:
                if id(box) not in past_item:
                    past_item[id(box)] = _past_item(box)
                if past_item[id(box)]:
                    break  # grown past the item into the list
                inner = box
                title = _title_in(box, node)
                if title is not None:
                    break
            box = box.parent
        first_line = None
        if title is None and inner is not None:
            # the item's block holds no title: its title may be the link just before it, and its first line the
            # authors ("Dan Zhou<br>Language Teaching, Volume 59 / Issue 4 ...<br>doi: 10.1017/...")
            title = _title_before_block(inner)
            box = inner
            first_line = next((line.strip() for line in inner.get_text("\n").splitlines() if line.strip()), "")
            if title is None and (title := _short_title_in(inner, node)) is not None:
                # its authors are the block after its title's in the smallest block holding both, as for a longer title
                first_line = None
                above = {id(parent) for parent in title.parents}
                box = next(parent for parent in node.parents if id(parent) in above)
        if title is None or box is None or _MATTER.search(text_of(title)):
            continue
        tagged = box.select_one('[class*="uthor"], [class*="contrib"]')
        authors = author_names(text_of(tagged)) if tagged is not None else []
        if first_line is not None:
            authors = authors or author_names(first_line)
        elif not authors:
            # the first block with text after the title's: the item's child that holds the title, then its
            # next sibling (RSC's div.ItemAuthors after div.ItemTitle; ACS's author row after the title row)
            head = title
            while head.parent is not None and head.parent is not box:
                head = head.parent
            after = next((t for t in (text_of(x) for x in head.find_next_siblings() if isinstance(x, Tag)) if t), "")
            authors = author_names(after)
        prose = next((t for t in (text_of(b) for b in box.find_all(("p", "div", "td"))) if is_abstract(t)
                      and not _DOI_TEXT.search(t) and not author_names(t)), None)
        link = title if title.name == "a" else title.find("a", href=True)
        target = unwrap_url(link["href"]) if link is not None and link.get("href") else None
        paper = _make(text_of(title), None, doi, target)
        papers.append(paper.with_(authors=tuple(authors), abstract=prose))
    return papers


def _from_text(text: str) -> list[Paper]:
    lines = clean_lines(text)
    papers = []
    # a mail laid out "Title / Authors / URL" (an item with several names above its link): there a single name in
    # the same place is a byline too ("Syarifah Liza Munira"), where elsewhere it may be a title
    bylines = any(_URL.search(lines[i]) and len(author_names(lines[i - 1])) >= 2 and is_meaningful_title(lines[i - 2])
                  for i in range(2, len(lines)))
    for i, line in enumerate(lines):
        found: list[tuple[str | None, str | None, str | None, int]] = []
        for m in _URL.finditer(line):
            url = unwrap_url(m.group(0).rstrip(".,;"))
            ids = _paper_link(url)
            if ids is not None:
                found.append((*ids, url, m.start()))
        for m in _BARE_ARXIV.finditer(line):
            found.append((m.group(1), None, None, m.start()))
        for m in _BARE_DOI.finditer(line):
            found.append((None, m.group(1).rstrip(".,;"), None, m.start()))
        for arxiv, doi, url, start in found:
            # a reading list's quoted title, then its authors or a note: "1. “Title” – Dhariwal & Nichol, NeurIPS"
            before = _quoted(line[:start]) or _title_before(line[:start])
            # "Title / Authors / Language Teaching, Volume 59 / Issue 4, pp 415 - 421 / doi: ...": the item's
            # citation is above its DOI; the title and byline are above that (a layout with bylines)
            near = _nonblank_above(lines, i)
            cited = 0
            while cited < len(near) and _is_citation(near[-1 - cited]):
                cited += 1
            if cited:
                window = [*near[:len(near) - cited], line]
                above, authors = _title_above(window, len(window) - 1, True)
            else:
                above, authors = _title_above(lines, i, bylines)
            # the lines above only for a link alone on its line ("Title\nhttps://..."): a line with words of
            # its own before the link ("1.58-bit FLUX - <url>") is that item, not the line above's
            if _is_citation(before):
                before = ""  # the citation and DOI on one line: the title is above it
            above = _quoted(above) or above
            if _reads_as_title(before):
                title, authors = before, []
            else:
                title = above if not _own_words(before) and _reads_as_title(above) else ""
            if title:
                papers.append(_make(title, arxiv, doi, url).with_(authors=tuple(authors)))
    return papers


# the date line of a table of contents' item (Atypon's journals: Wiley, and others of its layout): "First Published:
# 20 January 2026", "Published online: 3 May 2025", "Version of Record online: ..."
_DATED = re.compile(r"^(?:(?:Pages?:?\s*[\d\-–]+|e?\d{3,9})\s*\|\s*)?"  # its pages or article number, first
                    r"(?:First Published|Published online|Version of Record online|Early View)\s*:?\s*"
                    r"\d{1,2} [A-Z][a-z]+ (?:19|20)\d\d$", re.I)
# what stands between an item's authors and its date line: the article number and its separator ("e06462", "|"),
# its pages, its access ("Free Access", "Open Access")
_BESIDE_DATE = re.compile(r"^(?:\|?\s*e?\d{3,9}\s*\|?|\||Pages?:? ?[\d\-–]+|(?:Free|Open) Access)$", re.I)


# a cover's picture of a paper the issue lists again as itself: "... Pouch-Type Cell (Adv. Energy Mater. 13/2026)"
_PICTURE_OF = re.compile(r"\((?:[A-Z][\w.&]*\s){1,6}\d{1,3}/(?:19|20)\d\d\)$")


_WRITTEN_LINK = re.compile(r"\s*<(https?://[^\s<>]+)>\s*$")
# (glued to the title: a capital or an opening quote follows, never a space: "Open Access to Data" is a title)
_ACCESS_BADGE = re.compile(r"^(?:(?:Free|Open) Access|Free to Read)(?=[A-Z“\"‘'(])")


def _from_dated_items(text: str) -> list[Paper]:
    """Items of a table of contents read from its text, where no id is in sight (its links are a mailer's
    opaque click-trackers): per date line, the title above it, the author lines between, and the paragraph below
    as the abstract. A forward from Outlook for Windows (Word's HTML, no class left) of a Wiley alert reads so."""
    lines = [line for line in clean_lines(text) if line]
    papers = []
    for i, line in enumerate(lines):
        if not _DATED.match(line):
            continue
        j = i - 1
        while j >= 0 and _BESIDE_DATE.match(lines[j]):
            j -= 1
        names: list[str] = []
        while j >= 0 and len(names) < 200 and (found := author_names(lines[j].rstrip(",;"))):
            names[:0] = found
            j -= 1
        # a text part made of the HTML writes the title's link after it ("Title <https://...>", Outlook
        # "Title<https://...>", or on a line of its own below), and may glue the access badge before it
        # ("Open AccessFrom Digital ...")
        link = _WRITTEN_LINK.search(lines[j]) if j >= 0 else None
        if link is not None and link.start() == 0 and j > 0:  # the link alone on its line: the title above it
            j -= 1
        elif link is not None and link.start() == 0:
            continue
        title = _ACCESS_BADGE.sub("", lines[j][:link.start()] if link and link.start() else lines[j]).strip() \
            if j >= 0 else ""
        if not names or not _is_title(title) or _DATED.match(title) or _PICTURE_OF.search(title):
            continue
        after = next((x for x in lines[i + 1:i + 4] if not _BESIDE_DATE.match(x) and x.lower() != "abstract"), "")
        # the paragraph below: what the alert shows of the paper (a blurb, as a publisher's own reader keeps it)
        # (one sentence will do: the next item's title, the other line that may follow, ends in no full stop)
        blurb = after if (is_abstract(after) or (len(after.split()) >= 8 and after.endswith("."))) \
            and not _DATED.match(after) else None
        papers.append(Paper(title=title, authors=tuple(names), snippet=blurb, source="generic",
                            url=unwrap_url(link.group(1)) if link else None,
                            published=iso_date(" ".join(line.split()[-3:]))))
    return papers


def _with_ids(paper: Paper) -> Paper:
    """``paper`` with the arXiv id or DOI its link gives (a title link to ".../doi/full/10.1080/..."), so the
    same item read from the HTML's links is one paper with it, not a second copy without the authors."""
    ids = _paper_link(paper.url) if paper.url and not (paper.arxiv_id or paper.doi) else None
    return paper.with_(arxiv_id=ids[0], doi=ids[1]) if ids and (ids[0] or ids[1]) else paper


def _nonblank_above(lines: list[str], i: int, n: int = 4, reach: int = 12) -> list[str]:
    """Up to ``n`` non-blank lines above line ``i``, in order, looking at most ``reach`` lines up."""
    found = [x for x in lines[max(0, i - reach):i] if x]
    return found[-n:]


_QUOTED = re.compile(r"^[“\"]([^”“\"]{8,300})[”\"](?=$|\s|[,.;:()–—-])")


def _quoted(text: str) -> str:
    """The title a line quotes first ("“Diffusion Models Beat GANs” – Dhariwal & Nichol"), else "" (also for a
    quoted phrase that reads as no title: "“We need to talk” about this one")."""
    m = _QUOTED.match(_LIST_MARK.sub("", clean_space(text)))
    quoted = clean_space(m.group(1)) if m and len(m.group(1).split()) >= 3 else ""
    return quoted if _reads_as_title(quoted) else ""


def _title_above(lines: list[str], i: int, bylines: bool = False) -> tuple[str, list[str]]:
    """The title above a link alone on line ``i``, and its authors: "Title / Authors / URL" (a journal's alert in
    plain text) has the title two lines up, and the names between, which were taken for the title (or, too short
    for one, lost the paper). The line right above is the authors only when it reads as a byline
    (``byline_names``: a short Title-Case title or a journal's name is not one, unless ``bylines``: the mail's
    layout has them) and the line above it as a title."""
    prev = next((x for x in reversed(lines[max(0, i - 2):i]) if x), "")
    names = (author_names if bylines else byline_names)(lines[i - 1]) if i >= 2 else []
    title = lines[i - 2] if i >= 2 else ""
    if is_meaningful_title(title) and not author_names(title):
        if names:
            return title, names
        if is_label(lines[i - 1]):
            return title, []  # a journal's name or a label between ("Science Advances"): the title is above it
    return prev, []


def _dedup(papers: list[Paper]) -> list[Paper]:
    """Each paper once: by its id, and a paper known by its title alone also by its page's address (the HTML and
    the text part of a mail may word its title differently); the first reading, with a later one's authors when
    it had none."""
    kept: dict[str, int] = {}  # id or page -> index in out
    out: list[Paper] = []
    for p in papers:
        page = f"url:{p.url}" if p.url and not (p.arxiv_id or p.doi) else None
        at = kept.get(p.id, kept.get(page) if page else None)
        if at is None:
            # a paper with an id is also known by its title: the same title read later without the id (its link,
            # where the DOI was printed under it as text) is the same paper
            by_title = Paper(title=p.title).id if p.arxiv_id or p.doi else None
            kept.update({key: len(out) for key in (p.id, page, by_title) if key and key not in kept})
            out.append(p)
        elif not out[at].authors and p.authors:  # the same paper read again (the text part): its byline counts
            out[at] = out[at].with_(authors=p.authors)
    return out


def parse(body: Body, *, one_item: bool = False) -> list[Paper]:
    """The papers of any mail. ``one_item``: the caller knows the mail is a table of contents (a journal's alert,
    by its sender and subject), so a list of one item, with its authors, is one: an alert of a single new article
    whose classes were lost (a forward) is read as the publisher's own reader reads it."""
    soup = soup_of(body.html) if body.html else None  # read, never changed, by the readers below
    html_text = html_to_text(body.html) if body.html else ""
    text = body.text or html_text
    items = from_doi_blocks(soup) if soup is not None else []
    if len(items) < 2 and not (one_item and len(items) == 1 and items[0].authors):
        items = []  # one DOI under a heading is a newsletter or a signature, not a table of contents
    # from the HTML where there is one: a mail program's text part of a forward writes links into the lines
    dated = _from_dated_items(html_text or text)
    if (len(dated) >= 2 or one_item) and len(dated) > len(items):
        # items with their date lines, more of them than DOIs in sight (those are in a cover picture's blurb:
        # "More information can be found in the Research Article by ... (10.1002/...)"); title links are opaque
        links = {text_of(a): a["href"] for a in soup.find_all("a", href=True)} if soup is not None else {}
        items = [_with_ids(p.with_(url=unwrap_url(links[p.title])) if p.title in links and not p.url else p)
                 for p in dated]
    linked = _dedup(items + (_from_html(body.html) if body.html else []) + _from_text(text))  # items first: authors
    if not linked and soup is not None:
        linked = _dedup(from_byline_links(soup))  # no paper's id anywhere: opaque links, with bylines
    # title and abstract paragraphs (no id): in other mail, paragraphs of prose ("Good morning, Ana." and a
    # message; "[internal archives, accessed 2030]" and a story)
    pairs = [p for p in pairs_from_blocks(text, source="generic") if _reads_as_title(p.title)
             and not p.title.rstrip().endswith(".")]
    if len(pairs) < 2:
        pairs = []
    by_title = {clean_space(p.title).lower(): p for p in linked}
    if len(items) >= 3:
        # a table of contents: a paragraph is the abstract of one of its papers, or newsletter text around them
        enriched = {}
        for pair in pairs:
            key = clean_space(pair.title).lower()
            if key in by_title and not by_title[key].abstract and not author_names(pair.abstract):
                enriched[key] = by_title[key].with_(abstract=pair.abstract)
        return _without_presenters([enriched.get(clean_space(p.title).lower(), p) for p in linked])
    # prefer the richer title+abstract records, then add linked papers not already there
    # a title followed by its author line is not a title and abstract
    pairs = [p.with_(abstract=None, authors=tuple(author_names(p.abstract))) if author_names(p.abstract) else p
             for p in pairs]
    # a paper both as a title and abstract and as a link (its arXiv id, DOI or page): one paper with both
    pairs = [p.with_(arxiv_id=found.arxiv_id, doi=found.doi, url=found.url, authors=p.authors or found.authors)
             if (found := by_title.get(clean_space(p.title).lower())) is not None else p for p in pairs]
    titles = {clean_space(p.title).lower() for p in pairs}
    out = pairs + [p for p in linked if clean_space(p.title).lower() not in titles]
    return _without_presenters(_dedup(out))

