"""Paper-alert emails -> papers. Pure: bytes in, :class:`ParsedMessage` out, no I/O except
:func:`iter_raw_messages`, which only reads the mail files it is given.

Routing: the ``From`` address (case-insensitive) picks the sender family; mail from an unknown sender is
checked for a forwarded original (``message/rfc822`` attachment, or an inline Gmail/Outlook/Apple Mail
forward header block whose ``From:`` names the original sender), then recognised by its content (DOM
markers, listing layout). Anything else goes to the generic parser; if that finds nothing the mail is not
a paper alert (``kind=None``).

A mail from a known alert sender that yields no papers raises :class:`~digest.errors.ParseError` when it has
its family's alert layout (see ``_MARKERS``); without it, a subscription confirmation and the like (by its
subject) or any mail of a whole publisher domain (nature.com, heart.org, ...: newsletters) is not a paper
alert. A mail that is not a paper alert but reads like one (``_unread_alert``: an alert's subject, from a
publisher or with DOIs, links to follow) carries a warning that says so: a layout no parser knows is reported,
while the mail, which may be other mail after all, is left alone.
"""

from __future__ import annotations

import codecs
import email
import email.errors
import email.policy
import email.utils
import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from .errors import ParseError
from .models import CUT_MARK, Paper, normalise_title
from .parsers import arxiv, biorxiv, generic, hf, journals, pubmed, scholar
from .parsers.common import DOI_RE, TEXT_LINK, Body, html_to_text, unwrap_url

__all__ = ["ParsedMessage", "parse_message", "parse_text", "iter_raw_messages"]


@dataclass(frozen=True)
class ParsedMessage:
    kind: str | None  # 'arxiv', 'google_scholar', 'nature', 'cellpress', 'sciencedirect', 'aha', 'wiley', 'rsc',
    #                   'acs', 'aaas', 'biorxiv', 'hf', 'pubmed', 'generic'
    papers: list[Paper] = field(default_factory=list)
    subject: str = ""
    sender: str = ""  # bare address, lower-cased
    message_id: str | None = None
    date: str | None = None  # ISO 8601 of the Date header
    # what looks wrong with a mail that was read anyway, e.g. cut short: its papers are kept, and a complete copy
    # (the same Message-ID) adds the rest
    warnings: list[str] = field(default_factory=list)


_PARSERS: dict[str, Callable[[Body], list[Paper]]] = {
    "arxiv": arxiv.parse,
    "google_scholar": scholar.parse,
    "nature": journals.parse_nature,
    "cellpress": journals.parse_cellpress,
    "sciencedirect": journals.parse_sciencedirect,
    "rsc": journals.parse_rsc,
    "acs": journals.parse_acs,
    "aaas": journals.parse_aaas,
    "aha": journals.parse_aha,
    "wiley": journals.parse_wiley,
    "biorxiv": biorxiv.parse,
    "hf": hf.parse,
    "pubmed": pubmed.parse,
}
_LABELS = {
    "arxiv": "arXiv listing", "google_scholar": "Google Scholar alert", "nature": "Nature Portfolio alert",
    "cellpress": "Cell Press alert", "sciencedirect": "ScienceDirect alert", "rsc": "Royal Society of Chemistry alert",
    "acs": "ACS Publications alert", "aaas": "Science (AAAS) alert",
    "aha": "AHA Journals alert",
    "wiley": "Wiley Online Library alert", "biorxiv": "bioRxiv/medRxiv alert",
    "hf": "Hugging Face papers mail", "pubmed": "PubMed (My NCBI) alert",
}
# subjects of administrative mail from alert senders: not an alert, so no error when they hold no papers
_ADMIN_SUBJECT = re.compile(
    r"\b(?:confirm\w*|verify|verification|welcome|subscribe|subscribed|subscription|unsubscribe\w*|password|"
    r"account|help|activate|alert (?:has been |was )?(?:created|cancell?ed|deleted|updated|changed))\b", re.I)
# ...but not in an alert's own subject, where the words are the user's query: "T cell activation - new results"
_ALERT_SUBJECT = re.compile(r"\s-\s[^-]{3,60}$|\bdaily\b.*\bmailing\b", re.I)


def _administrative(subject: str) -> bool:
    """Whether a subject is an alert sender's administrative mail: an administrative word outside an alert's own
    query ("Google Scholar Alert - Confirm your alert" is; "T cell activation - new results" is not)."""
    alert = _ALERT_SUBJECT.search(subject)
    if alert and not _ADMIN_SUBJECT.search(alert.group()):
        return False  # the administrative words are the user's query's
    return bool(_ADMIN_SUBJECT.search(subject))


# what a family's alerts look like (DOM markers, a listing's layout). A mail from an alert sender that yields no
# papers is an error when it has the markers (the layout changed under the parser); without them it is other
# mail (a subscription confirmation, a newsletter) when its subject says so or when the family is a whole
# publisher domain (nature.com, heart.org, ...) that sends much else
_MARKERS: dict[str, Callable[[str], bool]] = {
    "arxiv": arxiv.looks_like, "google_scholar": scholar.looks_like, "biorxiv": biorxiv.looks_like,
    "nature": journals.looks_like_nature, "cellpress": journals.looks_like_cellpress,
    "sciencedirect": journals.looks_like_sciencedirect, "rsc": journals.looks_like_rsc, "acs": journals.looks_like_acs,
    "aaas": journals.looks_like_aaas,
    "aha": journals.looks_like_aha, "wiley": journals.looks_like_wiley, "hf": hf.looks_like,
    "pubmed": pubmed.looks_like,
}
_WHOLE_DOMAIN = ("nature", "cellpress", "sciencedirect", "rsc", "acs", "aaas", "aha", "wiley", "hf", "pubmed")


def kind_of_sender(address: str) -> str | None:
    """The sender family of a bare, lower-cased address, or None."""
    domain = address.rpartition("@")[2]
    if domain == arxiv.SENDER_DOMAIN:
        return "arxiv"
    if address in scholar.SENDERS:
        return "google_scholar"
    if address in biorxiv.SENDERS:
        return "biorxiv"
    if domain.endswith(journals.NATURE_DOMAINS):
        return "nature"
    if address in journals.SCIENCEDIRECT_SENDERS:
        return "sciencedirect"
    if domain.endswith(journals.RSC_DOMAINS):
        return "rsc"
    if domain.endswith(journals.ACS_DOMAINS):
        return "acs"
    if domain.endswith(journals.AAAS_DOMAINS):
        return "aaas"
    if domain.endswith(journals.CELLPRESS_DOMAINS):
        return "cellpress"
    if domain.endswith(journals.AHA_DOMAINS):
        return "aha"
    if domain.endswith(journals.WILEY_DOMAINS):
        return "wiley"
    if domain.endswith(hf.SENDER_DOMAINS):
        return "hf"
    if domain.endswith(pubmed.SENDER_DOMAINS):
        return "pubmed"
    return None


def kind_of_content(text: str | None, html: str | None) -> str | None:
    """Recognise a body without a (known) sender, from DOM markers and layouts."""
    if html:
        if scholar.looks_like(html):
            return "google_scholar"
        if journals.looks_like_nature(html):
            return "nature"
        if journals.looks_like_aha(html):  # before Wiley: AHA's issue TOCs have Wiley's "issue-item__title" too
            return "aha"
        if journals.looks_like_wiley(html):
            return "wiley"
        if journals.looks_like_sciencedirect(html):  # before Cell Press: the same click wrapper
            return "sciencedirect"
        if journals.looks_like_cellpress(html):
            return "cellpress"
        if journals.looks_like_rsc(html):
            return "rsc"
        if journals.looks_like_acs(html):
            return "acs"
        if journals.looks_like_aaas(html):
            return "aaas"
    plain = text if text is not None else (html_to_text(html) if html else "")
    if arxiv.looks_like(plain):
        return "arxiv"
    if biorxiv.looks_like(plain):
        return "biorxiv"
    if pubmed.looks_like(plain):
        return "pubmed"
    if hf.looks_like(plain) or (html and hf.looks_like(html)):
        return "hf"
    return None


# ---------------------------------------------------------------- MIME


# labels of single-byte Western charsets that mail often gets wrong (as codecs.lookup names them)
_WESTERN_LABELS = {"ascii", "iso8859-1", "cp1252"}
_SINGLE_BYTE = ("iso8859-", "cp125", "koi8", "mac-")  # the other single-byte ones, by codecs.lookup name prefix


_C1 = re.compile("[\x80-\x9f]")
_C1_AS_CP1252 = {b: bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


def _decode_part(part: Message) -> str:
    """A text part's content, tolerant of missing, wrong or unknown charsets."""
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):
        name = ""
    # A single-byte charset decodes (nearly) any bytes, so a wrong label would never fail over: a body labelled
    # ISO-8859-x, Windows-125x, KOI8 or ASCII (a gateway's default) that is valid UTF-8 is read as UTF-8 (other
    # text is hardly ever valid UTF-8 by chance), and ISO-8859-1 as Windows-1252, as browsers do (Outlook's curly
    # quotes and dashes are 0x80-0x9F, control characters in Latin-1)
    if name in _WESTERN_LABELS:
        candidates: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")
    elif name.startswith(_SINGLE_BYTE):
        candidates = ("utf-8", charset)
    else:
        candidates = (charset, "utf-8")
    used = "cp1252"
    for candidate in candidates:
        try:
            text = payload.decode(candidate)
            used = candidate
            break
        except (LookupError, UnicodeError, ValueError):  # unknown, "undefined" (UnicodeError), a NUL in the name
            continue
    else:
        text = payload.decode("cp1252", errors="replace")
    if used in ("utf-8", "latin-1") and _C1.search(text):
        # Windows-1252's quotes and dashes read once as Latin-1 and written on as UTF-8 (a gateway that trusted
        # the label): C1 control characters, which no mail means; given back as the characters they were
        text = text.translate(_C1_AS_CP1252)
    if part.get_content_type() == "text/plain" and str(part.get_param("format", "")).lower() == "flowed":
        return _unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
    return text


def _unflow(text: str, *, delsp: bool) -> str:
    """A format=flowed text (RFC 3676: Thunderbird, Apple Mail) as it was written: a line ending in a space goes
    on in the next line of the same quote depth; the space a sender put before a line starting with a space,
    "From " or ">" is taken off."""
    lines: list[str] = []
    current, depth = None, 0

    def finish() -> None:
        lines.append((">" * depth + " " if depth else "") + current)  # a quoted forward stays one

    for line in text.replace("\r\n", "\n").split("\n"):
        quotes = len(line) - len(line.lstrip(">"))
        content = line[quotes:]
        content = content[1:] if content.startswith(" ") else content
        soft = content.endswith(" ") and content != "-- "  # "-- " is the signature separator, never flowed
        if soft and delsp:
            content = content[:-1]
        if current is not None and quotes != depth:
            finish()
            current = None
        current, depth = (current or "") + content, quotes
        if not soft:
            finish()
            current = None
    if current is not None:
        finish()
    return "\n".join(lines)


@dataclass
class _Parts:
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attached: list[Message] = field(default_factory=list)


def _collect(msg: Message, parts: _Parts) -> _Parts:
    ctype = msg.get_content_type()
    if ctype == "message/rfc822":
        inner = msg.get_payload()
        parts.attached.extend(m for m in (inner if isinstance(inner, list) else [inner]) if m is not None)
    elif msg.is_multipart():
        for sub in msg.get_payload():
            _collect(sub, parts)
    elif (msg.get_filename() or "").lower().endswith(".eml"):
        # a saved mail attached as a file (application/octet-stream; name="alert.eml"), not as message/rfc822
        payload = msg.get_payload(decode=True)
        if payload:
            parts.attached.append(email.message_from_bytes(payload, policy=email.policy.default))
    elif ctype == "text/x-amp-html":
        pass  # AMP for email: always an alternative to the text/html part beside it, which is the one read
    elif ctype in ("text/plain", "text/html", "text/x-html") or (msg.get_content_maintype() == "text"
                                                                and not msg.get_filename()):
        (parts.html if "html" in ctype else parts.text).append(_decode_part(msg))
    return parts


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # malformed headers must not break parsing
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _address(value: str) -> str:
    return email.utils.parseaddr(value)[1].strip().lower()


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _written_date(value: str) -> datetime | None:
    """A date as mail programs write it in a forward's header block: Gmail "Thu, Jan 22, 2026 at 8:00 AM",
    Apple Mail "22 January 2026 at 08:00:00 GMT", Outlook "Thursday, January 22, 2026 8:00 AM"; taken as UTC
    (a zone's name, when one follows, is not looked up: the day is what matters)."""
    v = re.sub(r"\bat\b|,", " ", value)
    v = re.sub(r"^\s*(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?\s+", "", v, flags=re.I)
    v = " ".join(re.sub(r"\s+(?:(?:GMT|UTC)(?:[+-]\d{1,2}(?::?\d{2})?)?|[A-Z]{3,4}|[+-]\d{4})$", "", v.strip()).split())
    for fmt in ("%b %d %Y %I:%M %p", "%B %d %Y %I:%M %p", "%b %d %Y %I:%M:%S %p", "%B %d %Y %I:%M:%S %p",
                "%d %B %Y %H:%M:%S", "%d %B %Y %H:%M", "%d %b %Y %H:%M:%S", "%d %b %Y %H:%M", "%B %d %Y %H:%M",
                "%b %d %Y %H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(v, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


# ---------------------------------------------------------------- inline forwards

_FORWARD_MARK = re.compile(
    r"^[> \t]*(-{5,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado|"
    r"Messaggio inoltrato|Mensagem encaminhada|Doorgestuurd bericht)\s*-{5,}|Begin forwarded message:|"
    r"-{3,}\s*Original Message\s*-{3,})[ \t\r]*$",
    re.I | re.M,
)
# the labels of a forward's header block (Gmail's and Outlook's, in the languages we know: English, German,
# French, Spanish, Italian, Portuguese, Dutch, Chinese, Japanese), by the header they stand for
_FWD_LABELS = {
    "from": ("From", "Von", "De", "Da", "Van", "发件人", "差出人"),
    "date": ("Date", "Sent", "Datum", "Gesendet", "Envoyé", "Fecha", "Enviado", "Data", "Inviato", "Verzonden",
             "发送时间", "日期", "送信日時"),
    "subject": ("Subject", "Betreff", "Objet", "Asunto", "Oggetto", "Assunto", "Onderwerp", "主题", "件名"),
    "to": ("To", "An", "À", "Para", "A", "Aan", "收件人", "宛先"),
    "cc": ("Cc",)}
_FWD_KEY = {label.lower(): key for key, labels in _FWD_LABELS.items() for label in labels}


def _label(*keys: str) -> str:
    """A regex for a header label of ``keys``: "From:", "*From:*" (bold in text), French "De :"."""
    return r"[> \t]*\*?(?:" + "|".join(label for key in keys for label in _FWD_LABELS[key]) + r")\*?[ \t]?[:：]\*?"


_FWD_HEADER = re.compile(r"^" + _label(*_FWD_LABELS).replace("(?:", "(", 1) + r"\s*(.*)$", re.I)


@dataclass
class _Forward:
    sender: str
    subject: str
    date: datetime | None
    text: str


# Outlook's forward has no marker line (a rule or a line of underscores, which the text of its HTML loses):
# its header block is the mark, "From:" then "Sent:"/"Date:"/"To:" lines, then "Subject:"
_BLANK_LINES = r"(?:[ \t]*\n)*"  # the text of an HTML header block may have blank lines between its lines
_FWD_BLOCK = re.compile(r"^" + _label("from") + r"[^\n]*\n" + _BLANK_LINES + r"(?:" + _label("date", "to", "cc")
                        + r"[^\n]*\n" + _BLANK_LINES + r"){1,4}" + _label("subject"), re.I | re.M)


def _inline_forward(text: str, depth: int = 0) -> _Forward | None:
    """The original sender, subject, date and body of an inline-forwarded mail, if the text has one."""
    m = _FORWARD_MARK.search(text)
    if m:
        lines = text[m.end():].lstrip("\r\n").splitlines()
    elif block := _FWD_BLOCK.search(text.replace("\r\n", "\n")):
        lines = text.replace("\r\n", "\n")[block.start():].splitlines()
    else:
        return None
    headers: dict[str, str] = {}
    i = 0
    while i < len(lines):
        hm = _FWD_HEADER.match(lines[i])
        if hm:
            key = _FWD_KEY[hm.group(1).lower()]
            value = hm.group(2).strip()
            following = next((j for j in range(i + 1, min(i + 4, len(lines))) if lines[j].strip()), None)
            if not value and key != "to" and key != "cc" and following is not None \
                    and not _FWD_HEADER.match(lines[following]):
                # a header table (Thunderbird's HTML forward): the value is the next cell's text (never for To
                # or Cc, which may be empty with the body right after them)
                i = following
                value = lines[i].strip()
            headers.setdefault(key, value)
        elif lines[i].strip() and headers:
            break
        i += 1
    body = "\n".join(lines[i:])
    # a forward of a forward, or quoted with "> ": strip one quoting level when most lines carry it
    quoted = [x for x in body.splitlines() if x.strip()]
    if quoted and sum(x.startswith(">") for x in quoted) > 0.8 * len(quoted):
        body = "\n".join(re.sub(r"^> ?", "", x) for x in body.splitlines())
    sender = headers.get("from", "")
    # Outlook writes "From: Name [mailto:x@y]"; Gmail "Name <x@y>"
    address = re.search(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", sender)
    inner = _inline_forward(body, depth + 1) if depth < 5 else None
    if inner is not None and inner.sender:
        return inner  # a forward of a forward: the original alert's sender, subject and date are innermost
    return _Forward(
        sender=address.group(0).lower() if address else "",
        subject=headers.get("subject", ""),
        # as a mail program writes it there first: the mail parser reads "... 8:00 PM" leniently as 08:00
        date=_written_date(headers.get("date", "")) or _date(headers.get("date", "")),
        text=body,
    )


# ---------------------------------------------------------------- dispatch


def _named(papers: list[Paper]) -> list[Paper]:
    """Without "papers" that are neither named nor identified: a title of punctuation alone ("." or "—…") and no
    arXiv id or DOI would be one paper for the store (they all share the id of the empty title)."""
    return [p for p in papers if p.arxiv_id or p.doi or normalise_title(p.title)]


def _empty_listing(kind: str, body: Body) -> bool:
    """An arXiv listing of a day without new entries in its categories: whole, and empty."""
    return kind == "arxiv" and bool(body.text) and arxiv.empty_listing(body.text)


def _run(kind: str, body: Body, *, sender: str, strict: bool) -> list[Paper]:
    try:
        papers = _named(_PARSERS[kind](body))
    except ParseError:
        raise
    except Exception as exc:  # a parser bug on odd input: report it as a parse error of this mail
        raise ParseError(f"{_LABELS[kind]} from {sender or 'unknown sender'} "
                         f"(subject {body.subject!r}) could not be parsed: {exc!r}") from exc
    text_only = body.html is None and kind in _HTML_LAID_OUT
    administrative = _administrative(body.subject or "")
    # Google Scholar's alerts come from an address that sends nothing else; a publisher's domain sends letters too
    alert_address = strict and kind not in _WHOLE_DOMAIN
    if not papers and kind in _WHOLE_DOMAIN and not text_only:
        # e.g. a Nature issue alert without DOIs, an HF mail of another layout (but never the text a mail
        # program made of an HTML alert: read as text, its lines give some papers and junk, not the alert); an
        # alert whose classes were lost (a forward): under a table of contents' subject, its one item counts
        papers = _named(generic.parse(body, one_item=bool(_TOC_SUBJECT.search(body.subject or ""))))
    if not papers and strict and not any(_MARKERS[kind](b) for b in (body.html, body.text) if b):
        strict = kind not in _WHOLE_DOMAIN and not administrative
    if not papers and strict and kind in _JOURNALS and body.subject and not _TOC_SUBJECT.search(body.subject) \
            and not _ISSUE_SUBJECT.search(body.subject):
        # a publisher's other mail from its alert address, with the alerts' click-tracked links ("Call for papers:
        # Cell Reports Medicine special issue"): no alert's subject, so no alert whose layout changed
        strict = False
    # the text a mail program made of an HTML alert: its links written out ("title <url>") or its DOIs, under
    # a subject that names a table of contents or an alert (not an editor's letter from the same domain)
    converted = (len(TEXT_LINK.findall(body.text or "")) >= 2 or len(set(DOI_RE.findall(body.text or ""))) >= 2) \
        and _TOC_SUBJECT.search(body.subject or "")
    if not papers and text_only and not administrative and (alert_address or converted):
        raise ParseError(
            f"{_LABELS[kind]} from {sender or 'unknown sender'} (subject {body.subject!r}) came as plain text only "
            f"(a plain-text forward, or a mail program that kept only the text), and its papers are laid out in "
            f"the HTML version: forward the original alert as it came (as HTML, or as an attachment), or save it "
            f"as .eml and read it with `digest ingest FILE`."
        )
    if not papers and _empty_listing(kind, body):
        return []  # a category without new entries that day: an alert that holds no papers, not a layout change
    if not papers and kind == "arxiv" and body.text and arxiv.header_only(body.text):
        raise ParseError(
            f"{_LABELS[kind]} from {sender or 'unknown sender'} (subject {body.subject!r}) stops after its header "
            f"(no entry, no closing %%%--- rule): the mail was cut short (a partial download or save), not laid "
            f"out anew; read a complete copy of it (`digest ingest FILE`)"
        )
    if not papers and strict:
        raise ParseError(
            f"{_LABELS[kind]} from {sender or 'unknown sender'} (subject {body.subject!r}) contains no papers: "
            f"the layout may have changed. Keep the mail as .eml (`digest parse FILE` shows what is read from it) "
            f"and report it with the file, so the parser learns the new layout."
        )
    return papers


_TOC_SUBJECT = re.compile(r"\b(?:contents|toc|alerts?|new (?:articles?|issue|results)|online now|early view|asap|"
                          r"just accepted|latest (?:articles?|issue)|articles? (?:are )?available|highlights|"
                          r"available online|vol(?:ume)?\.?\s*\d+|issue \d+)\b", re.I)
# the families whose alerts come as HTML alone: their papers are read from its layout
_HTML_LAID_OUT = ("google_scholar", "nature", "cellpress", "sciencedirect", "rsc", "acs", "aaas", "aha", "wiley")
_JOURNALS = tuple(k for k in _HTML_LAID_OUT if k != "google_scholar")  # publishers': their alert addresses send other mail
# an issue's subject without a table of contents' words: "Cell Reports Methods: January 2026"
_ISSUE_SUBJECT = re.compile(r":\s+[A-Z][a-z]+ (?:\d{1,2}, )?(?:19|20)\d\d\b")


# templates/digest.html says who made it in its <head>; the digest lists papers, but it is not an alert
_OWN_DIGEST_HTML = re.compile(r"""<meta\s+name=["']?generator["']?\s+content=["']?paper-digest""", re.I)


def _parse_bodies(text: str | None, html: str | None, *, sender: str, subject: str,
                  date: datetime | None, attached: list[Message] = ()) -> tuple[str | None, list[Paper]]:
    """(kind, papers) for the given bodies; the heart of :func:`parse_message` and :func:`parse_text`."""
    if html and _OWN_DIGEST_HTML.search(html[:4000]):
        return None, []  # one of our own digests (the outbox's .html, a digest saved or forwarded whole)
    body = Body(text=text, html=html, subject=subject, date=date)
    kind = kind_of_sender(sender) if sender else None
    if kind == "cellpress" and html and journals.looks_like_sciencedirect(html):
        kind = "sciencedirect"  # Elsevier's other journals, from another address of the same domain
    if kind is not None:
        papers = _run(kind, body, sender=sender, strict=True)
        if papers or _empty_listing(kind, body):
            return kind, papers
        return None, []  # administrative mail of an alert sender
    # forwarded as attachments (one or several alerts in one mail): each inner mail has its own From; one that
    # cannot be read does not cost the others their papers (it is the error only when none of them reads)
    found, failures = [], []
    for inner in attached:
        try:
            inner_kind, papers = _parse_msg(inner)
        except ParseError as exc:
            failures.append(exc)
            continue
        if inner_kind is not None:
            found.append((inner_kind, papers))
    if found:
        return found[0][0], [paper for _, papers in found for paper in papers]
    if failures:
        raise failures[0]
    plain = text if text is not None else (html_to_text(html) if html else None)
    forward = _inline_forward(plain) if plain else None
    if forward is None and text is not None and html:
        # a text part that left the forward's header block out (or a mail program's own text of the alert): the
        # HTML's block names the original sender
        forward = _inline_forward(html_to_text(html))
    if forward is not None:
        inner_kind = kind_of_sender(forward.sender) if forward.sender else None
        inner_kind = inner_kind or kind_of_content(forward.text, html)
        if inner_kind is not None:
            inner_body = Body(text=forward.text, html=html, subject=forward.subject or subject,
                              date=forward.date or date)
            papers = _run(inner_kind, inner_body, sender=forward.sender, strict=bool(forward.sender))
            if papers:
                return inner_kind, papers
    kind = kind_of_content(text, html)
    if kind is not None:
        papers = _run(kind, body, sender=sender, strict=False)
        if papers:
            return kind, papers
    papers = _named(generic.parse(body))
    return ("generic", papers) if papers else (None, [])


# a subject only a paper alert has: "New articles for X are now available online", "Article Event Alert",
# "1 new match for ...", "New OnlineFirst articles", "eTOC", "Early View" (a lone "alert", "new articles" or "latest
# research" is not enough: "Security alert", "New articles from writers you follow", "Nature Briefing: the latest
# research")
_PAPER_ALERT_SUBJECT = re.compile(
    r"\b(?:new (?:online ?first |early view |open access )?(?:articles?|papers|publications|content|issue)\b"
    r".{0,60}\b(?:available|published|online)\b|new (?:online ?first|early view) articles?\b|"
    r"\d+ new match(?:es)? for|table of contents alert|e-?tocs?\b|online ?first|early view|ahead of print|"
    r"articles? asap|(?:article(?: event)?|citation|table of contents|toc|journal) alerts?\b|latest (?:articles|issue)|"
    r"\bcontents: )",  # "Nature Genetics contents: July 2017 Volume 49 Number 7"
    re.I)
_LINK = re.compile(r"""\bhref\s*=\s*["']?https?://|(?<![\w"'=])https?://""", re.I)
# publishers whose alerts have no parser here (their links are trackers without DOIs), besides the families above
_PUBLISHER_DOMAINS = ("tandfonline.com", "taylorandfrancis.com", "sagepub.com", "springer.com", "springernature.com",
                      "oup.com", "academic.oup.com", "ieee.org", "acm.org", "cambridge.org", "karger.com", "mdpi.com",
                      "frontiersin.org", "plos.org", "bmj.com", "jamanetwork.com", "nejm.org", "thelancet.com",
                      "elsevier.com", "aip.org", "aps.org", "iop.org", "pnas.org", "annualreviews.org", "tandf.co.uk",
                      "degruyter.com", "emerald.com", "apa.org", "biomedcentral.com", "hindawi.com", "jstor.org")


def _unread_alert(msg: Message, parts: _Parts) -> str | None:
    """A note for a mail that gives no papers but reads as a paper alert: its subject, from a publisher (or
    with DOIs in it), and with links or DOIs to follow. Its layout is one no parser knows; the mail is left as
    it is (it may still be other mail), and the note tells the user, so an alert is not passed over in silence."""
    subject, sender = _header(msg, "subject"), _address(_header(msg, "from"))
    if not _PAPER_ALERT_SUBJECT.search(subject) or _administrative(subject):
        return None
    content = "\n".join([*parts.html, *parts.text])[:2_000_000]
    dois = len(set(DOI_RE.findall(content)))
    domain = sender.rpartition("@")[2]
    publisher = kind_of_sender(sender) is not None or any(domain == d or domain.endswith("." + d)
                                                          for d in _PUBLISHER_DOMAINS)
    if not (publisher or dois >= 2) or len(_LINK.findall(content)) + dois < 2:
        return None
    return (f"not read: mail from {sender or 'unknown sender'} (subject {subject!r}) reads like a paper alert, but "
            f"no papers could be read from it (a layout no parser knows, links without a DOI or arXiv id); it is "
            f"left as it is. If it is an alert, keep it as .eml (`digest parse FILE` shows what is read) and report "
            f"it with the file, so the parser learns the layout.")


def _parse_msg(msg: Message, parts: _Parts | None = None) -> tuple[str | None, list[Paper]]:
    parts = parts or _collect(msg, _Parts())
    text = _WRAPPED_LINK.sub(_given_back, "\n".join(parts.text)) if parts.text else None
    html = "\n".join(parts.html) if parts.html else None
    return _parse_bodies(text, html, sender=_address(_header(msg, "from")), subject=_header(msg, "subject"),
                         date=_date(_header(msg, "date")), attached=parts.attached)


# a link a mail gateway rewrote in the text too (Outlook Safe Links, Proofpoint URL Defense): given back, so
# the addresses in an arXiv entry's comments or abstract are the authors' own
_WRAPPED_LINK = re.compile(r"https?://(?:[\w-]+\.safelinks\.protection\.outlook\.com|urldefense\.com|"
                           r"(?:[\w-]+\.)*urldefense\.proofpoint\.com)/[^\s<>\"]+", re.I)


def _given_back(m: re.Match) -> str:
    url = m[0].rstrip(").,;]'")  # the punctuation after a link in a sentence is not part of it
    return unwrap_url(url) + m[0][len(url):]


MAX_HEADER_BYTES = 256_000


def _lead_stripped(raw: bytes) -> bytes:
    """Without a byte-order mark or blank lines before the headers (a Notepad save, a pasted "Show original"),
    which would make the whole message a body without headers (and hide an mbox's first "From " line)."""
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one RFC 822 message.

    Raises ParseError when the mail comes from a known alert sender but yields no papers, or is not an email
    at all (no header lines); returns ``kind=None`` with no papers for mail that is not a paper alert.

    Example::

        parsed = parse_message(Path("alert.eml").read_bytes())
        for paper in parsed.papers:
            print(paper.id, paper.title)
    """
    raw = _lead_stripped(raw)
    if not raw.strip():
        raise ParseError("empty: there is nothing in it (a save or download that failed?); save the alert again")
    head = len(re.split(rb"\r?\n\r?\n", raw[:MAX_HEADER_BYTES + 4], maxsplit=1)[0])
    if head > MAX_HEADER_BYTES:  # Python's header parser takes time quadratic in a header's length
        raise ParseError(f"its headers run past {MAX_HEADER_BYTES // 1000} KB (an alert's take a few KB): not read")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the standard library's header parser on odd input: charset*=undefined''utf-8
        raise ParseError(f"not readable as an email: its headers break the mail parser ({exc!r}); if it is an "
                         "alert, save it again from your mail program (\"Show original\")") from exc
    if not msg.keys():
        raise ParseError("not an email: no header lines (From:, Subject:, ...) at its top; for a file, save the "
                         "alert with its headers (your mail program's \"Save as\" .eml or \"Show original\"), or "
                         "give a bare body as .html or .txt")
    try:
        parts = _collect(msg, _Parts())
        own = _own_or_report(msg)
        if own:
            kind, papers = None, []  # never read our own digests (or bounces of them) as alerts
        else:
            kind, papers = _parse_msg(msg, parts)
        date = _date(_header(msg, "date"))
        message_id = _header(msg, "message-id") or None
        same = "the same Message-ID" if message_id else "the same sender and subject"
        warnings = _cut_short(msg, parts, kind, len(papers), same)
        if kind is None and not own and (note := _unread_alert(msg, parts)):
            warnings = [note]
        if warnings and papers and parts.html:
            kept = _title_cut(papers, "\n".join(parts.html))
            if len(kept) < len(papers):  # the paper it stopped in is left out: the warning counts what is kept
                warnings = _cut_short(msg, parts, kind, len(kept), same)
            papers = kept
    except ParseError:
        raise
    except Exception as exc:  # a bug on odd input (outside any one parser): this mail's error, never a crash
        raise ParseError(f"mail from {_address(_header(msg, 'from')) or 'unknown sender'} (subject "
                         f"{_header(msg, 'subject')!r}) could not be parsed: {exc!r}") from exc
    return ParsedMessage(kind=kind, papers=papers, subject=_header(msg, "subject"),
                         sender=_address(_header(msg, "from")), message_id=message_id,
                         date=date.isoformat() if date else None, warnings=warnings)


def _kept(n_papers: int, same: str) -> str:
    """``same``: how a complete copy is recognised (its Message-ID, or for a mail without one its sender and
    subject); empty for a bare body."""
    return (f"what was read ({n_papers} paper{'' if n_papers == 1 else 's'}) is kept, and a complete copy"
            f"{f' ({same})' if same else ''} adds the rest")


def _cut_short(msg: Message, parts: _Parts, kind: str | None, n_papers: int, same: str) -> list[str]:
    """Why an alert seems cut short (a partial download or save, a broken mbox): its HTML stops without its end
    tag in the middle of the text or of a tag, or an arXiv listing stops inside an entry. A missing closing MIME
    boundary alone is not enough (some senders' whole mail ends so): the text must look cut too."""
    if kind is None:
        return []
    html = _HTML_COMMENT.sub("", "\n".join(parts.html))
    if re.search(r"<html\b", html, re.I) and not re.search(r"</html\s*>", html, re.I) \
            and not html.rstrip().endswith(">"):  # HTML5 may leave out </body></html>; a whole page ends with a tag
        return [f"cut short: its HTML stops in the middle (no </html>, nor a tag at its end); "
                f"{_kept(n_papers, same)}"]
    if kind == "arxiv":
        return _listing_cut("\n".join(parts.text) if parts.text else html_to_text(html), n_papers, same)
    boundary = any(isinstance(d, email.errors.CloseBoundaryNotFoundDefect) for part in msg.walk() for d in part.defects)
    if boundary and parts.text and not parts.html and not parts.text[-1].endswith("\n"):
        return [f"cut short: the message ends before its MIME parts do, in the middle of a line; "
                f"{_kept(n_papers, same)}"]
    return []


def _title_cut(papers: list[Paper], html: str) -> list[Paper]:
    """The papers of an HTML alert that stops in the middle, when the text stops inside the last one's title
    ("Single-Atom Ru-Trigg"): with an arXiv id or DOI, its title marked " …" (shown as cut, and replaced by the
    whole title when a complete copy comes); without, left out (known by its title alone, a cut title would stay
    a paper of its own beside the complete copy's)."""
    last = papers[-1]
    words = " ".join(html_to_text(html).split())
    if not last.title or last.title.endswith(CUT_MARK) or not words.endswith(" ".join(last.title.split())):
        return papers
    if not (last.arxiv_id or last.doi):
        return papers[:-1]
    return [*papers[:-1], replace(last, title=last.title.rstrip(" .…") + CUT_MARK)]


_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)


def _listing_cut(text: str, n_papers: int, same: str = "") -> list[str]:
    """The warning for an arXiv listing whose text stops inside an entry (see ``arxiv.cut_entry``)."""
    cut = arxiv.cut_entry(text) if text else None
    return [f"cut short: the arXiv listing stops in the middle of entry arXiv:{cut} (no closing \"\\\\ ( https://"
            f"arxiv.org/abs/...\" line), so its abstract is cut and later entries are missing; "
            f"{_kept(n_papers, same)}"] if cut else []


# the Message-ID of a digest (pipeline: make_msgid(idstring="digest.USER.PERIOD")), e.g. <...digest.ada.2024-11-07@x>
_DIGEST_MESSAGE_ID = re.compile(r"\.digest\.[^@>\s]+\.\d{4}-\d{2}-\d{2}@")


def _own_or_report(msg) -> bool:
    """A digest this tool sent (its header, or its Message-ID), or a delivery / read report (a bounce of one):
    when a user's digest goes to the very mailbox the poller reads, it must not come back as papers."""
    if msg.get("X-Paper-Digest") or _DIGEST_MESSAGE_ID.search(_header(msg, "message-id")):
        return True
    return msg.get_content_type() == "multipart/report"


def parse_text(body: str, *, content_type: str = "text/plain") -> ParsedMessage:
    """Parse a bare body (.txt or .html, no headers), recognised by its content."""
    is_html = "html" in content_type.lower()
    kind, papers = _parse_bodies(None if is_html else body, body if is_html else None,
                                 sender="", subject="", date=None)
    warnings = _listing_cut(body if not is_html else html_to_text(body), len(papers)) if kind == "arxiv" else []
    return ParsedMessage(kind=kind, papers=papers, subject="", sender="", message_id=None, date=None,
                         warnings=warnings)


# ---------------------------------------------------------------- files

NO_EMAIL = ("no email found in it: give an .eml file, an mbox (messages separated by \"From \" lines), a Maildir, "
            "or a folder of .eml, .mbox, .txt or .html files")
_MAIL_SUFFIXES = {".eml", ".msg", ".mbox", ".txt", ".html", ".htm", ".mail"}
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _looks_like_message(data: bytes) -> bool:
    """True when a .txt/.html file starts with RFC 822 headers (From/Subject/Date) then a blank line."""
    head = data[:4096].replace(b"\r\n", b"\n")
    block, sep, _ = head.partition(b"\n\n")
    lines = block.split(b"\n") if sep else []
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    names = {ln.split(b":", 1)[0].lower() for ln in lines if _HEADER_LINE.match(ln)}
    return bool(names & {b"from", b"subject", b"date", b"message-id"}) and all(
        _HEADER_LINE.match(ln) or ln[:1] in (b" ", b"\t") for ln in lines)


def wrap_body(data: bytes, *, html: bool) -> bytes:
    """A minimal RFC 822 message around a bare body, so parse_message can read it (detection by content)."""
    subtype = "html" if html else "plain"
    return (f"MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + data


# an mbox separator: "From " + the envelope sender (or "-"), then a date with a time and a year, or nothing
# ("From alerts@example.org Thu Nov  7 00:00:00 2024", Gmail's "From 1784...@xxx Thu Nov 07 00:00:00 +0000 2024")
_ENVELOPE = re.compile(rb"^From \S+(?: +[^\r\n]*?\b\d{1,2}:\d{2}(?::\d{2})?\b[^\r\n]*\b\d{4})?\s*$")
# headers that open a message, so an envelope line right after the previous message's last line still counts
_OPENING_HEADER = re.compile(rb"^(Return-Path|Received|Delivered-To|From|Date|Subject|Message-ID|X-[\w-]+|"
                             rb"MIME-Version|To):[ \t]", re.I)


def split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox, without their "From " lines. A message starts at a "From " line that looks like
    an envelope (sender, date with time and year), at the start of the file or after a blank line, and followed
    by a header: a body line such as "From these results we find ..." that a writer left unescaped does not
    cut its message in two (Python's mailbox.mbox splits there). [] when the data does not start with one."""
    lines = data.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines)
              if _ENVELOPE.match(line) and i + 1 < len(lines) and _HEADER_LINE.match(lines[i + 1])
              and (i == 0 or not lines[i - 1].strip() or _OPENING_HEADER.match(lines[i + 1]))]
    if not starts or starts[0] != 0:
        return []
    return [_unescape_from(b"".join(lines[a + 1:b])) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.M)


def _unescape_from(message: bytes) -> bytes:
    """A message as it was before an mbox writer escaped its body lines that start with "From " (">From ";
    mboxrd also adds one ">" to ">From ", which this takes off again)."""
    return _ESCAPED_FROM.sub(rb"\1", message)


def _iter_file(path: Path) -> Iterator[tuple[str, bytes]]:
    data = _lead_stripped(path.read_bytes())
    suffix = path.suffix.lower()
    if not data.strip():
        yield str(path), b""  # an empty file: parse_message says so, also inside a folder of good ones
        return
    mbox = data.startswith(b"From ") or (suffix == ".mbox" and b"\nFrom " in data)
    messages = split_mbox(data) if mbox else []
    second_line = data.split(b"\n", 2)[1:2] or [b""]
    if mbox and not messages and _HEADER_LINE.match(second_line[0]):
        # no line looks like an envelope, but the file reads as an mbox: Python's reader, as before
        box = mailbox.mbox(str(path), create=False)
        try:
            messages = [_unescape_from(box.get_bytes(key)) for key in box.iterkeys()]
        finally:
            box.close()
    if messages:
        for n, message in enumerate(messages):
            yield f"{path}#{n}", message
    elif suffix in (".html", ".htm", ".txt") and not _looks_like_message(data):
        yield str(path), wrap_body(data, html=suffix != ".txt" or data.lstrip()[:1] == b"<")
    else:
        yield str(path), data


def iter_raw_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) for every message in PATH: an .eml file, an mbox file, a Maildir, a folder
    (recursing into .eml/.mbox/.txt/.html files and Maildirs) or a bare .html/.txt body (wrapped)."""
    path = Path(path)
    if _is_maildir(path):
        box = mailbox.Maildir(str(path), factory=None, create=False)
        for key in sorted(box.iterkeys()):
            yield f"{path}/{key}", box.get_bytes(key)
        return
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                yield from iter_raw_messages(child)
            elif child.suffix.lower() in _MAIL_SUFFIXES:
                yield from _iter_file(child)
        return
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    yield from _iter_file(path)


def parse_file(path: Path) -> Iterator[tuple[str, ParsedMessage]]:
    """Convenience for the CLI: parse every message found in PATH."""
    for label, raw in iter_raw_messages(path):
        yield label, parse_message(raw)

