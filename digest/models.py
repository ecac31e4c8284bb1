"""Small frozen data objects shared by every module. No I/O here.

A paper's stable id is its key everywhere: ``arxiv:<id without version>``, else ``doi:<lower-cased doi>``,
else ``title:<hash of the normalised title>``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

_ARXIV_VERSION = re.compile(r"v\d+$")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# a leading "Abstract" label: followed by a colon, a period or a spaced dash ("Abstract: ...", "ABSTRACT. ..."),
# or by the heading or first word abstracts start with ("Abstract Background ...", "Abstract The ..."); never
# the adjective or a term ("Abstract reasoning", "Abstract Meaning Representation", "Abstract-level", "ABSTRACT ALGEBRA")
_ABSTRACT_LABEL = re.compile(
    r"\s*(?:Abstract|ABSTRACT)(?:\s*[:.]\s+|\s+[-–—]\s+|\s*\n\s*|\s+(?=(?:Background|Objectives?|Purpose|"
    r"Introduction|Aims?|Motivation|Context|Rationale|Importance|Summary|The|This|These|We|Here|In|Our|Recent|"
    r"Despite|Although|While|As|With|Over|Many|Most)\b))")


def normalise_arxiv_id(value: str | None) -> str | None:
    """``arXiv:2401.01234v2`` -> ``2401.01234``; old-style ``hep-th/9901001v1`` -> ``hep-th/9901001``."""
    if not value:
        return None
    value = value.strip()
    value = re.sub(r"^(arxiv:)", "", value, flags=re.IGNORECASE)
    value = _ARXIV_VERSION.sub("", value)
    return value if _ARXIV_FORM.fullmatch(value) else None  # 9999.99999 (month 99) is no arXiv id


def normalise_doi(value: str | None) -> str | None:
    """DOIs are case-insensitive: keep them lower-cased, without a resolver prefix or trailing punctuation."""
    if not value:
        return None
    value = value.strip()
    value = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", value, flags=re.IGNORECASE)
    return _doi_end(value).lower() or None


def legacy_doi(doi: str) -> str:
    """A DOI as a store written before 2026-12-06 may hold it: with its own closing bracket taken off along with
    a sentence's punctuation (``...132:5(466`` for ``...132:5(466)``). Looked up too, so an old row still matches."""
    return doi.rstrip(".,;)]}>")


_PAIRS = {")": "(", "]": "[", "}": "{"}
_WEB_LINK = re.compile(r"https?://[^\s/?#]", re.I)


def _doi_end(value: str) -> str:
    """Without the punctuation of the sentence around it: "(doi:10.1/x)." ends at x, but a closing bracket
    the DOI opened stays (10.1061/(ASCE)0733-9399(2006)132:5(466))."""
    counts = {c: value.count(c) for c in "()[]{}"}  # once: counting again per character was quadratic
    end = len(value)
    while end:
        last = value[end - 1]
        if last in _PAIRS and counts[last] > counts[_PAIRS[last]]:
            counts[last] -= 1
        elif last not in ".,;:>\"'”’»":
            break
        end -= 1
    return value[:end]


CUT_MARK = " …"  # ends a text that an alert cut short (the rest of it was not in the mail)

_ARXIV_FORM = re.compile(r"(\d\d(?:0[1-9]|1[0-2])\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d\d(?:0[1-9]|1[0-2])\d{3})(?:v\d+)?",
                         re.I)  # YYMM.NNNNN: a month from 01 to 12
_DOI_FORM = re.compile(r"10\.\d{4,9}(?:\.\d+)*/\S+$")


def arxiv_ref(value: str) -> str | None:
    """``2106.09685``, ``arXiv:2106.09685v2``, ``arxiv.org/abs/2106.09685?context=cs`` -> ``2106.09685``; else None."""
    value = re.sub(r"^(?:(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/|arxiv:\s*)", "",
                   value.strip(), flags=re.IGNORECASE)
    value = re.sub(r"(?:\.pdf)?/?(?:[?#].*)?$", "", value)
    if not _ARXIV_FORM.fullmatch(value):
        return None
    new = re.fullmatch(r"(\d\d)(\d\d)\.(\d+)(?:[vV]\d+)?", value)
    if new and not (1 <= int(new[2]) <= 12 and len(new[3]) == (4 if new[1] + new[2] < "1501" else 5)
                    and new[1] + new[2] >= "0704"):
        return None  # 2411.0355: since 2015 (1501) an id has five digits after the point, before it four
    return normalise_arxiv_id(re.sub(r"[vV]\d+$", "", value))


def doi_ref(value: str) -> str | None:
    """``10.1038/X``, ``doi:10.1038/X``, ``https://www.doi.org/10.1038/X``, ``doi.org/10.1038/X`` -> lower case."""
    value = re.sub(r"^(?:(?:https?://)?(?:www\.|dx\.)?doi\.org/)", "", value.strip(), flags=re.IGNORECASE)
    doi = normalise_doi(value)
    return doi if doi and _DOI_FORM.match(doi) else None


def unaccented(text: str) -> str:
    """``text`` without its accents ("Schrödinger" -> "Schrodinger"; compatibility forms decomposed too)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def normalise_title(title: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a title, for matching the same paper across senders."""
    text = unaccented(title).replace("…", " ").lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def matches_query(title: str, ids: Iterable[str | None], query: str) -> bool:
    """``digest rank --find``: the title contains the query's words (case, accents and punctuation aside), or
    the query is one of the paper's ids (an arXiv id with or without its version, a DOI)."""
    words = normalise_title(query)
    if words and words in normalise_title(title):
        return True
    wanted = query_ids(query)
    return any(x and (x.lower() in wanted or x.lower().removeprefix("arxiv:") in wanted) for x in ids)


def query_ids(query: str) -> set[str]:
    """The ids a ``digest rank --find`` query may be, lower case: as typed, as an arXiv id without version (an
    arxiv.org abs/pdf link too), and as a DOI without its resolver (``https://doi.org/10.1/x`` is ``10.1/x``)."""
    doi = normalise_doi(query) or ""
    return {query.strip().lower(), (normalise_arxiv_id(query) or "").lower(), doi, legacy_doi(doi),
            (arxiv_ref(query) or "").lower(), doi_ref(query) or ""} - {""}


def paper_id(arxiv_id: str | None, doi: str | None, title: str) -> str:
    """The stable id: arXiv id without version, else DOI lower-cased, else a hash of the normalised title."""
    arxiv = normalise_arxiv_id(arxiv_id)
    if arxiv:
        return f"arxiv:{arxiv}"
    d = normalise_doi(doi)
    if d:
        return f"doi:{d}"
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:16]
    return f"title:{digest}"


@dataclass(frozen=True)
class Paper:
    """One paper as a parser found it in one email (or as the store keeps it after merging)."""

    title: str
    authors: tuple[str, ...] = ()
    abstract: str | None = None
    snippet: str | None = None
    url: str | None = None
    arxiv_id: str | None = None
    doi: str | None = None
    source: str = "generic"
    section: str | None = None
    published: str | None = None  # ISO date
    venue: str | None = None
    categories: tuple[str, ...] = ()
    comments: str | None = None
    author_count: int | None = None  # all authors, when the alert names only some ("97 additional authors not shown")

    def __post_init__(self) -> None:
        # normalise ids once, so every module can compare them directly
        object.__setattr__(self, "arxiv_id", normalise_arxiv_id(self.arxiv_id))
        object.__setattr__(self, "doi", normalise_doi(self.doi))
        object.__setattr__(self, "authors", tuple(self.authors))
        # "Abstract Background: ..." as Scholar snippets and journal pages start: the label is not the text
        for key in ("abstract", "snippet"):
            value = getattr(self, key)
            if value and (label := _ABSTRACT_LABEL.match(value)) and len(value) - label.end() > 20:
                object.__setattr__(self, key, value[label.end():])
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.url is not None:  # javascript:, data:, a relative path: never a paper's link
            object.__setattr__(self, "url", self.url.strip() if _WEB_LINK.match(self.url.strip()) else None)

    @property
    def id(self) -> str:
        return paper_id(self.arxiv_id, self.doi, self.title)

    @property
    def text(self) -> str:
        """What the embedder reads: the title, then the abstract (or the snippet when that is all we have)."""
        body = self.abstract or self.snippet or ""
        return f"{self.title}. {body}".strip() if body else self.title

    def to_json(self) -> dict:
        """The `digest parse --json` record."""
        data = asdict(self)
        data["authors"] = list(self.authors)
        data["categories"] = list(self.categories)
        return {"id": self.id, **data}

    def with_(self, **changes) -> Paper:
        return replace(self, **changes)


@dataclass(frozen=True)
class ScoredPaper:
    """A paper with the score that ranked it and the human-readable reason built from the same numbers."""

    paper: Paper
    score: float
    reason: str
    facet: str | None = None
    details: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Vote:
    user: str
    paper_id: str
    value: int  # +1 thumbs up, -1 thumbs down
    via: str = "web"
    created_at: str | None = None
