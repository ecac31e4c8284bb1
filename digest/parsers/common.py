"""Helpers shared by the sender parsers: the body a parser receives, TeX and HTML to text, link unwrapping,
id extraction from URLs, author splitting and the "is this a real title" rule. Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import html as html_lib
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlsplit

from bs4 import BeautifulSoup, CData, NavigableString, Tag

ARXIV_NEW_ID = r"\d{4}\.\d{4,5}"
ARXIV_OLD_ID = r"[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}"
ARXIV_ID = rf"(?:{ARXIV_NEW_ID}|{ARXIV_OLD_ID})(?:v\d+)?"
# DOI suffixes may contain almost anything; stop at whitespace, quotes, angle brackets and URL query/fragment
DOI_RE = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>?#&]+)")

_ARXIV_URL = re.compile(rf"(?:arxiv|alphaxiv)\.org/(?:abs|pdf|html|overview)/({ARXIV_ID})", re.I)
HF_URL = re.compile(rf"huggingface\.co/papers/({ARXIV_NEW_ID})", re.I)


@dataclass(frozen=True)
class Body:
    """What a parser reads: the decoded text and/or HTML of one message, plus the headers it may need."""

    text: str | None = None
    html: str | None = None
    subject: str = ""
    date: datetime | None = None


def clean_space(text: str | None) -> str:
    """Collapse every run of whitespace (including NBSP and zero-width marks) into one space."""
    if not text:
        return ""
    text = text.replace("\u200b", "").replace("\u202a", "").replace("\u202c", "").replace("\ufeff", "")
    return " ".join(text.split())


def clean_lines(text: str) -> list[str]:
    """The lines of a body (CRLF or LF), each with its whitespace collapsed by ``clean_space``."""
    return [clean_space(line) for line in text.replace("\r\n", "\n").split("\n")]


# ---------------------------------------------------------------- TeX

# $$display$$ or $inline$ math; as in Pandoc, an inline opening $ has no space after it, a closing one no space
# before it, and \$ is a dollar sign: "between $10 and $20" is not math
_MATH = re.compile(r"(\$\$.+?\$\$|(?<!\\)\$(?!\s)[^$]+?(?<![\s\\])\$)", re.S)
_latex_converter = None


def _converter():
    # built lazily: constructing the pylatexenc context is not free and most texts need no conversion
    global _latex_converter
    if _latex_converter is None:
        from pylatexenc.latex2text import LatexNodes2Text

        _latex_converter = LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=False)
    return _latex_converter


# text-mode TeX that needs no parser: ties (AT~2018cow, Fig.~1; a "~" before a number after a space is
# "about", kept), TeX quotes, and the astronomers' unit macros, which pylatexenc does not know (it drops them)
# a tie after a word of two letters or more, or after a period; after one letter it is "about": z~2, M~10^10
_TIE = re.compile(r"(?:(?<=[^\W\d_]{2})|(?<=\.))~(?=\w)")
# TeX quotes, also the mixed pairs abstracts have (``x'', ``x", ''x'', "x''), opening before a letter and not
# after a digit or letter: 1.2'' and 0.5" are arcseconds, f''(x) a second derivative
_QUOTES = re.compile(r"(?<![\w'`\"])(``|''|\")(?=[^\W\d_])([^`'\"]+?)(?<=[^\s\d])(''|\")(?![\w'])")
_TEXT_MACROS = {"deg": "°", "arcsec": "″", "arcmin": "′", "sun": "☉", "odot": "⊙", "AA": "Å", "degr": "°"}
_TEXT_MACRO = re.compile(r"\\(" + "|".join(_TEXT_MACROS) + r")(?![A-Za-z])(?:\{\})?")


# The TeX that names letters (accents, ß, ø, escaped specials, font switches) is most of what BibTeX titles and
# abstracts carry. It is converted here by table, 100x faster than pylatexenc (0.4 ms a title, which made a
# 20,000-entry library take 18 s to read); anything else goes to pylatexenc. The same output either way
# (tests/test_parse.py compares the two on every form).
_ACCENT_MARKS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304",
                 ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
                 "r": "\u030a"}
# the spaces TeX swallows after a macro's name: any, with one line break (two are a paragraph: such text goes
# to pylatexenc)
_SP = r"(?>[ \t]*\n?[ \t]*)(?!\n)"  # atomic: a long run of spaces is not split every way
_BASE = rf"(?:\\([ij])(?![A-Za-z]){_SP}|([A-Za-z]))"  # a letter, or a dotless i/j (\'\i = í)
_ACCENT = re.compile(rf"""\\(?:(["'`^~=.]){_SP}(?:\{{{_SP}{_BASE}{_SP}\}}|{_BASE})"""
                     rf"""|([uvHckr])(?:{_SP}\{{{_SP}{_BASE}{_SP}\}}|(?=\s){_SP}{_BASE}))""")
_LETTER_MACROS = {"ss": "ß", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "o": "ø", "O": "Ø",
                  "l": "ł", "L": "Ł", "i": "ı", "j": "ȷ"}
_AFTER_NAME = rf"(?![A-Za-z])(?:\{{\}}|{_SP})"  # a macro's name ends at its first non-letter
# one pass, left to right, so that a letter made by one replacement never joins the next (\o\'e is øé, not œ́)
_LETTERS = re.compile(rf"""{_ACCENT.pattern}|\\({"|".join(sorted(_LETTER_MACROS, key=len, reverse=True))}){_AFTER_NAME}""")
_ESCAPED = re.compile(r"\\([%&#_$])")
# font changes whose argument is simply the text: \emph{x}, {\em x}
_FONT_SWITCH = re.compile(r"\\(?:emph|textit|textbf|textsc|textrm|textsf|texttt|textup|textmd|textnormal"
                          r"|em|it|bf|sc|rm|sf|tt|itshape|bfseries|scshape|upshape|normalfont)" + _AFTER_NAME)


def _letter(m: re.Match) -> str:
    if m.group(11):
        return _LETTER_MACROS[m.group(11)]
    return next(g for g in m.group(2, 3, 4, 5, 7, 8, 9, 10) if g) + _ACCENT_MARKS[m.group(1) or m.group(6)]


def _tex_by_table(text: str) -> str | None:
    """``text`` converted when all its TeX is in the tables above; None when pylatexenc is needed."""
    if "\\" in text:
        text = _ESCAPED.sub(r"\1", _FONT_SWITCH.sub("", _LETTERS.sub(_letter, text)))
        if "\\" in text:
            return None
    # dashes as TeX sets them, before the braces go: {--} is a dash, -{-} two hyphens
    return text.replace("---", "—").replace("--", "–").replace("{", "").replace("}", "")


_TEX_MOST = 20_000


_PLAIN_DASH = re.compile(r"(?<=\w)---?(?=\w)|(?<= )---?(?= )")


def _tex_segment(text: str) -> str:
    if "~" in text:
        text = _TIE.sub(" ", text)
    if "``" in text or "''" in text:
        text = _QUOTES.sub(lambda m: m.group(0) if m.group(1) == m.group(3) == '"' else f"“{m.group(2)}”", text)
        text = text.replace("``", "“")  # an unpaired '' may be arcseconds: left as written
    if "\\" in text:
        text = _TEXT_MACRO.sub(lambda m: _TEXT_MACROS[m.group(1)], text)
    if "\\" not in text and "{" not in text:
        # no macros, but TeX's dashes still: Birch--Swinnerton-Dyer, 1990---2000, "a -- b" (not an option: --help)
        return _PLAIN_DASH.sub(lambda m: "—" if len(m.group(0).strip()) == 3 else "–", text) if "--" in text else text
    fast = _tex_by_table(text)
    if fast is not None:
        return fast
    if len(text) > _TEX_MOST:
        return text  # no abstract is this long; pylatexenc takes ~9 µs a character
    # In TeX `%` starts a comment and `&`/`#` are special; abstracts use them literally, so escape them
    # first or pylatexenc would drop the rest of the line.
    # A "~" still here means "about" (z~2) and a "''" arcseconds: pylatexenc would make them a space and a quote.
    protected = re.sub(r"(?<!\\)([%&#])", r"\\\1", text)
    protected = re.sub(r"(?<!\\)~", "\ue000", protected).replace("''", "\ue001")
    try:
        out = _converter().latex_to_text(protected)
    except Exception:  # pylatexenc raises assorted errors on broken TeX: keep the raw text then
        return text
    return out.replace("\xa0", " ").replace("\ue000", "~").replace("\ue001", "''")


_SUPER = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyz", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ", strict=True))
_SUB = dict(zip("0123456789+-=()aeijklmnoprstux", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢⱼₖₗₘₙₒₚᵣₛₜᵤₓ", strict=True))
_MATH_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π",
    "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω", "times": "×", "cdot": "·", "pm": "±", "leq": "≤", "le": "≤", "geq": "≥",
    "ge": "≥", "neq": "≠", "approx": "≈", "sim": "~", "simeq": "≃", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "infty": "∞", "ell": "ℓ", "partial": "∂", "nabla": "∇", "in": "∈", "sqrt": "√",
    "star": "⋆", "ast": "∗", "circ": "∘", "langle": "⟨", "rangle": "⟩", "%": "%", "&": "&", "#": "#",
    "lesssim": "≲", "gtrsim": "≳", "ll": "≪", "gg": "≫", "propto": "∝", "odot": "⊙", "oplus": "⊕", "sun": "☉",
    "deg": "°", "prime": "′", "mp": "∓", "leqslant": "≤", "geqslant": "≥", "lvert": "|", "rvert": "|",
    ",": " ", ";": " ", "!": "", " ": " ", "textstyle": "", "displaystyle": "", "left": "", "right": "",
}
# operators TeX sets as words, with space around them: n\log n -> n log n, a \bmod p -> a mod p
_MATH_WORDS = {"log": "log", "ln": "ln", "exp": "exp", "sin": "sin", "cos": "cos", "tan": "tan", "max": "max",
               "min": "min", "arg": "arg", "det": "det", "lim": "lim", "sup": "sup", "inf": "inf", "bmod": "mod",
               "mod": "mod"}
_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ"}
_FONT_MACRO = re.compile(r"\\(mathrm|mathbf|mathit|mathcal|mathbb|mathsf|mathtt|boldsymbol|bm|text|textrm|"
                         r"textbf|textit|operatorname|rm|bf|it)(?![A-Za-z])\s*(\{[^{}]*\}|\w)")


_SCRIPTS = "".join(sorted(set(_SUPER.values()) | set(_SUB.values())))
_TIGHT = re.compile(rf"\s+(?=[{_SCRIPTS}])|\b({'|'.join(sorted(set(_MATH_WORDS.values())))})\s+(?=\()")
_SPACE = "\x00"  # a space TeX would set (in \text{...}, \, and around \log); the others in math are not set
_RELATIONS = re.compile(r"\s*([=<>≤≥≈≠∈→←≃≲≳≪≫∝])\s*")
_BINARY = re.compile(r"(?<=[\w)\]|'′²³¹⁰-⁹ₐ-ₜ])([+\-±])(?=[\w(\\[|])")


def _font(m: re.Match) -> str:
    body = m.group(2).strip("{}")
    if m.group(1) == "mathbb":
        return _BLACKBOARD.get(body, body)
    return body.replace(" ", _SPACE) if m.group(1).startswith(("text", "operatorname")) else body


def _macro(m: re.Match) -> str:
    name = m.group(1)
    if name in _MATH_WORDS:
        return f"{_SPACE}{_MATH_WORDS[name]}{_SPACE}"
    out = _MATH_SYMBOLS.get(name, m.group(0))
    return _SPACE if out == " " else out


def _script(body: str, table: dict[str, str]) -> str | None:
    body = body[1:-1] if body.startswith("{") else body
    return "".join(table[ch] for ch in body) if body and all(ch in table for ch in body) else None


def _simple_math(math: str) -> str:
    """Inline math that plain text can show (``$f$`` -> ``f``, ``VQA$^2$`` -> ``VQA²``, ``$H_0$`` -> ``H₀``,
    ``$\\alpha$`` -> ``α``, ``$\\mathrm{x}$`` -> ``x``); anything more (fractions, matrices, scripts Unicode has no
    letter for) stays TeX, ``$...$`` and all, rather than be shown wrong."""
    inner = math.strip("$")
    inner = _FONT_MACRO.sub(_font, inner)
    inner = re.sub(r"\\([A-Za-z]+|[%&#,;! ])", _macro, inner)
    failed = False

    def script(m: re.Match) -> str:
        nonlocal failed
        out = _script(m.group(2), _SUPER if m.group(1) == "^" else _SUB)
        failed = failed or out is None
        return out or m.group(0)

    inner = re.sub(r"([\^_])(\{[^{}]*\}|[^{}\s])", script, inner)
    if failed or "\\" in inner or re.search(r"[{}^_]", inner):
        return math
    # TeX spaces relations and binary operators (not a sign: -1, (-x)), nothing else
    inner = _BINARY.sub(r" \1 ", _RELATIONS.sub(r" \1 ", re.sub(r"\s+", "", inner)))
    inner = clean_space(inner.replace(_SPACE, " "))
    # no space inside brackets, before a script or before an operator's argument: O(log(n) log²k), not O( log (n)
    inner = re.sub(r"([(\[])\s+|\s+([)\]])", lambda m: m.group(1) or m.group(2), inner)
    return _TIGHT.sub(lambda m: m.group(1) or "", inner)


def tex_to_unicode(text: str | None) -> str | None:
    """TeX accents and simple macros to Unicode (``Aur\\'elien`` -> ``Aurélien``); simple ``$...$`` math too
    (``$H_0$`` -> ``H₀``), other math is kept as written."""
    if text is None:
        return None
    parts = _MATH.split(text)
    out = [_simple_math(part) if i % 2 else _tex_segment(part) for i, part in enumerate(parts)]
    return unicodedata.normalize("NFC", clean_space("".join(out)))


# ---------------------------------------------------------------- HTML

_BLOCK_TAGS = (
    "p", "div", "br", "tr", "td", "th", "li", "ul", "ol", "table", "tbody", "h1", "h2", "h3", "h4", "h5",
    "h6", "blockquote", "section", "article", "header", "footer", "hr", "pre", "dd", "dt",
)


# a link as a mail program writes it in the text it makes of an HTML mail (a plain-text forward): "title <url>"
# (starting where a run of spaces starts: from inside one, each start would scan the rest of the run again)
TEXT_LINK = re.compile(r"(?<!\s)\s*<https?://[^\s<>]+>")

# what mail clients put before every class and id of a mail they forward: Gmail "m_5785777122273086187"
# (glued to the name), Outlook on the web "x_"
_FORWARD_CLASS_PREFIX = re.compile(r"^(?:m_-?\d+_?|x_)+")  # repeated: forwarded again by the same kind of client
_RENAMED = re.compile(r"""\b(?:class|id)\s*=\s*["']?[^"'>]{0,200}?\b(?:m_-?\d|x_)""", re.I)


# a tag that another "<" interrupts before its ">" ("<a <a <a ...", "</a </a", "<? <?", "<!x <!x"; a "<" inside a
# quoted attribute value does not count): Python's HTML parser reads each such tag up to the end of the text, time
# quadratic in the mail's length (4,000 of them, 12 KB, took 12 s), so its "<" is made text, as the parser would
# have kept it; and so is a "<!--" that no "-->" closes (each would be read to the end too)
_UNCLOSED_TAG = re.compile(r"""<(?=(?!!--)[/?!A-Za-z](?:[^<>"']|"[^"]*"|'[^']*')*<)""")


def _unclosed_made_text(html: str) -> str:
    html = _UNCLOSED_TAG.sub("&lt;", html)
    end = html.rfind("-->")
    if html.find("<!--", end + 1 if end >= 0 else 0) >= 0:
        start = end + 3 if end >= 0 else 0
        html = html[:start] + html[start:].replace("<!--", "&lt;!--")
    return html


def soup_of(html: str) -> BeautifulSoup:
    """The parsed HTML, with the class and id names a forwarding mail client renamed given back their
    sender's names, so a forwarded alert reads like the original."""
    soup = BeautifulSoup(_unclosed_made_text(html), "html.parser")
    if _RENAMED.search(html):
        for tag in soup.find_all(class_=_FORWARD_CLASS_PREFIX):
            tag["class"] = [_FORWARD_CLASS_PREFIX.sub("", c) or c for c in tag["class"]]
        for tag in soup.find_all(id=_FORWARD_CLASS_PREFIX):
            tag["id"] = _FORWARD_CLASS_PREFIX.sub("", tag["id"]) or tag["id"]
    return soup


def _text(node, apart, skip: tuple[str, ...] = ()) -> str:
    """The strings below ``node`` in reading order, with a newline before and after every element ``apart``
    says stands apart (a block); elements named in ``skip`` are left out with their contents, and so are
    comments, scripts and style sheets. An explicit stack, not recursion: unclosed tags in mail HTML can nest a
    thousand levels deep."""
    parts: list[str] = []
    stack = [(iter(node.children), False)]
    while stack:
        children, block = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if block:
                parts.append("\n")
        elif isinstance(child, NavigableString):
            if type(child) in (NavigableString, CData):
                parts.append(str(child))
        elif child.name not in skip:
            separate = apart(child)
            if separate:
                parts.append("\n")
            stack.append((iter(child.children), separate))
    return "".join(parts)


def _is_block(tag) -> bool:
    return tag.name in _BLOCK_TAGS


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: one line per block element, inline elements kept on their line."""
    text = _text(soup_of(html), _is_block, skip=("style", "script", "head", "title"))
    lines = [clean_space(line) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _stands_apart(tag) -> bool:
    """A block element, an image, or an element styled ``display: block``: text on either side is not one word."""
    return tag.name in _BLOCK_TAGS or tag.name == "img" or \
        re.search(r"display:\s*block", tag.get("style") or "") is not None


class Preceding:
    """``node.find_previous(match)`` for the many items of one mail, from one pass over its elements.

    find_previous walks back element by element, so asking it for each item of a long list without a match
    (a crafted mail, or one without headings) took time quadratic in the mail's length."""

    def __init__(self, match: Callable[[Tag], bool]):
        self._match = match
        self._root = None
        self._before: dict[int, Tag | None] = {}

    def __call__(self, node) -> Tag | None:
        """The last element before ``node`` that matches (the tree must not change between calls)."""
        root = node
        while root.parent is not None:
            root = root.parent
        if root is not self._root:  # the first call, or a node of another mail: index that one
            self._root, self._before, last = root, {}, None
            for element in root.descendants:  # document order: what find_previous walks back through
                self._before[id(element)] = last
                if isinstance(element, Tag) and self._match(element):
                    last = element
        return self._before.get(id(node))


def text_of(node) -> str:
    """A node's text on one line, as a reader sees it: inline markup joins without spaces ("<em>Cell</em>,"
    is "Cell,", "CD4<sup>+</sup> T" is "CD4+ T"), block elements and <br> separate words, and a word
    hyphenated across a <br> ("task-<br>based") is whole again."""
    if node is None:
        return ""
    if isinstance(node, NavigableString):
        return clean_space(html_lib.unescape(str(node)))
    return clean_space(html_lib.unescape(joined_lines(_text(node, _stands_apart))))


def joined_lines(text: str) -> str:
    """Lines as one text: a word hyphenated across a line break ("task-\nbased") is whole again, while
    "pre-\nand post-training" keeps its suspended hyphen; other breaks stay whitespace."""
    return re.sub(r"(?<=[^\W\d_]-)\s*\n\s*(?=[a-z])(?!(?:and|or|nor|to)\b)", "", text)


# ---------------------------------------------------------------- links and ids


def unwrap_url(url: str) -> str:
    """The real target behind the redirect wrappers of Scholar, Elsevier, Outlook, Google and Proofpoint, also
    when one wraps another (Outlook's safe links around a Scholar link). A target that is no URL ("http://[x")
    is not given back: the last address that is one is."""
    url = html_lib.unescape(url.strip())
    for _ in range(5):
        try:
            inner = _unwrap_once(url)
            urlsplit(inner)
        except ValueError:
            break
        if inner == url:
            break
        url = inner
    return url


def _unwrap_once(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.lower()
    query = parse_qs(parts.query)
    if re.match(r"(www\.)?scholar\.google\.[a-z.]+$", host) and parts.path.rstrip("/") == "/scholar_url":
        # "url=" since about 2014; the alerts before it named the target as "q="
        target = query.get("url", [None])[0] or next(
            (q for q in query.get("q", []) if re.match(r"https?://", q, re.I)), None)
        if target:
            return target
    if (host.endswith(("notification.elsevier.com", ".awstrack.me"))
            and re.match(r"/C?L0/https?(?::|%3A)", parts.path, re.I)):
        # Amazon SES's click tracking (Elsevier's own host, and "<id>.r.<region>.awstrack.me" of other senders):
        # "/CL0/<the %-encoded address>/<n>/<message id>/<signature>"
        m = re.search(r"/C?L0/([^/]+)/\d+/", url)
        if m:
            return strip_tracking(unquote(m.group(1)))
    if host.endswith("safelinks.protection.outlook.com") and "url" in query:
        return query["url"][0]
    if host in ("www.google.com", "google.com") and parts.path == "/url" and ("q" in query or "url" in query):
        return (query.get("q") or query.get("url"))[0]
    if host == "urldefense.com" or host.endswith("urldefense.proofpoint.com"):
        return _url_defense(url, parts.path, query)
    return url


# Proofpoint URL Defense (university mail gateways): v3 keeps the address between "__" and "__;", with some
# characters taken out ("*" for one, "**" + a length letter for a run) and given base64-encoded after the ";"
_V3 = re.compile(r"/v3/__(?P<url>.+?)__;(?P<chars>[^!]*)!")
_V3_TOKEN = re.compile(r"\*(\*.)?")
_V3_RUN = {c: i + 2 for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_")}


def _url_defense(url: str, path: str, query: dict[str, list[str]]) -> str:
    if path.startswith("/v1/") and "u" in query:
        return query["u"][0]
    if path.startswith("/v2/") and "u" in query:
        return unquote(query["u"][0].replace("-", "%").replace("_", "/"))
    # only at the first "/v3/__", and only with a "!" after it (no v3 link without): each other start, or a
    # search without the "!", would scan to the end again, quadratic in the length
    start = url.find("/v3/__")
    m = _V3.match(url, start) if start >= 0 and "!" in url[start:] else None
    if m is None:
        return url
    try:
        chars = base64.urlsafe_b64decode(m["chars"] + "=" * (-len(m["chars"]) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return url
    taken = 0

    def put_back(token: re.Match) -> str:
        nonlocal taken
        n = _V3_RUN.get(token[0][-1]) if token[1] else 1
        if n is None:  # an unknown run letter: nothing after it can be trusted
            taken = len(chars) + 1
            return ""
        run, taken = chars[taken:taken + n], taken + n
        return run

    target = _V3_TOKEN.sub(put_back, m["url"])
    return target if taken == len(chars) else url  # every character given back, exactly: else not decodable


def strip_tracking(url: str) -> str:
    """Drop mail-campaign parameters (Elsevier ``dgcid``, ``utm_*``) from a URL."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [p for p in parts.query.split("&") if not re.match(r"(dgcid|utm_[a-z]+)=", p, re.I)]
    return parts._replace(query="&".join(kept)).geturl()


def arxiv_id_from_url(url: str | None) -> str | None:
    if not url:
        return None
    m = _ARXIV_URL.search(url) or HF_URL.search(url)
    if not m:
        return None
    return re.sub(r"\.pdf$", "", m.group(1))


_SILVERCHAIR = re.compile(r"/(?:advance-)?article(?:-abstract|-pdf|-lookup)?/doi/10\.")


def doi_from_url(url: str | None) -> str | None:
    """A DOI recovered from a publisher URL, where the path carries one (or Nature's article id)."""
    if not url:
        return None
    url = unquote(url)
    parts = urlsplit(url)
    host = parts.netloc.lower()
    path = parts.path
    if host.endswith("nature.com"):
        m = re.match(r"/articles/([a-z0-9][a-z0-9.\-]+)", path)
        if m and not m.group(1).startswith("10."):
            return "10.1038/" + re.sub(r"\.pdf$", "", m.group(1))
        # the addresses before 2017: /nature/journal/v529/n7587/full/nature16961.html (also abs/, pdf/)
        m = re.match(r"/[a-z]+/journal/v\d+/n[\w-]+/(?:full|abs|pdf)/([a-z][a-z0-9.\-]*?\d)\.(?:html|pdf)$", path)
        if m:
            return "10.1038/" + m.group(1)
    if host.endswith("elifesciences.org"):  # eLife's article numbers are its DOIs' suffixes
        m = re.match(r"/(?:articles|reviewed-preprints)/(\d{4,6})(?:v\d+)?(?:[/.#?]|$)", path)
        if m:
            return f"10.7554/eLife.{m.group(1)}"
    if host.endswith(("biorxiv.org", "medrxiv.org")):
        m = re.search(r"/content/(?:(?:bio|med)rxiv/)?(?:early/\d{4}/\d\d/\d\d/)?(10\.\d+/)?([\d.]+?)(?:v\d+)?"
                      r"(?:\.full|\.abstract|\.pdf|\.full-text|\.supplementary-material|\.article-\w+|\+html)*$", path)
        if m and (m.group(1) or "/early/" in path):  # an "early" path (PDFs of 2016-2024) leaves the prefix out
            return (m.group(1) or "10.1101/") + m.group(2)
    query = parse_qs(parts.query)
    for key in ("doi", "id"):
        for value in query.get(key, []):
            if value.startswith("10."):
                return value
    m = DOI_RE.search(path)
    if not m:
        return None
    doi = m.group(1)
    if _SILVERCHAIR.search(path):
        # OUP, AIP, ASH and the other Silverchair sites: ".../article/doi/10.1093/mnras/stae001/7500000[/slug]",
        # the site's own article number (and a file name or title slug) after the DOI; but a DOI may end in
        # digits itself (Karger's 10.1159/000531045, Hindawi's 10.1155/2023/1234567): what is left must keep a
        # suffix, and not end in a year
        cut = re.sub(r"/\d{4,}(?:/[^/]*)?/?$", "", doi)
        if cut != doi and "/" in cut and not re.fullmatch(r"(?:19|20)\d\d", cut.rsplit("/", 1)[1]):
            doi = cut
    doi = re.sub(r"(/(full|abstract|pdf|epdf|html|meta|fulltext|summary)|\.pdf|\.full|\.abstract)+/?$", "", doi)
    return doi.rstrip("/.")


def doi_url(doi: str) -> str:
    return f"https://doi.org/{doi}"


def arxiv_url(arxiv_id: str) -> str:
    bare = re.sub(r"v\d+$", "", arxiv_id)
    return f"https://arxiv.org/abs/{bare}"


# ---------------------------------------------------------------- people and titles

_SUFFIX = re.compile(r"^(jr\.?|sr\.?|ii|iii|iv)$", re.I)
_HONORIFIC = re.compile(r"^(?:(?:Prof|Dr|Professor|Assoc\. Prof|Asst\. Prof)\.?\s+)+(?=[^\W\d_])")


def without_honorifics(name: str) -> str:
    """A name without the titles before it: "Prof. Dr. David W. C. MacMillan", as Wiley prints bylines."""
    return _HONORIFIC.sub("", name)

# academic degrees after a name ("Jeff D. Williamson, MD, MHS", as medical journals print bylines): not part of it
# (as written, periods and all: "J.D." or "BA" in "Smith, J.D., Jones, BA" may be initials, so the two-letter ones
# that are initials as often are left out, but for MD, which medical bylines write after nearly every name)
_DEGREES = {"MD", "M.D.", "PhD", "Ph.D.", "MHS", "MSJ", "MPH", "MSc", "BSc", "MBA", "DrPH", "MBBS", "FRCP", "FACC",
            "FAHA", "FACP", "FRCPC", "MSCE", "MMSc", "ScD", "DPhil", "MPhil", "PharmD", "DDS", "DMD", "DVM", "MEd",
            "EdD", "MSW", "BSN", "MSN", "FRCS", "FRACP", "MRCP", "MBChB", "MSPH"}


def _without_parentheses(text: str) -> str:
    """Every closed ``(...)`` a space, nested ones too ("A (Dept. X (Y)), B" -> "A  , B"); an unclosed "(" stays.
    One pass: a removal per nesting level took time quadratic in the depth."""
    if "(" not in text:
        return text
    opened: list[int] = []
    closed: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            start = opened.pop()
            while closed and closed[-1][0] > start:  # the pairs inside this one go with it
                closed.pop()
            closed.append((start, i + 1))
    out, at = [], 0
    for start, end in closed:
        out += [text[at:start], " "]
        at = end
    return "".join([*out, text[at:]])


def _surname_first(part: str) -> bool:
    """"Lu, Sirui", "Yin, Bingqing Miranda", "de la Cruz, Maria", "Doe, J.", "Brown, Alan, Jr.": one name written
    surname first: one surname (with its particles) before the comma, one to three given names or initials after
    (not "A. Smith, B. Jones" nor "Alice Smith, Bob Jones")."""
    pieces, _ = _name_pieces(part)
    if len(pieces) != 2 or not pieces[1]:
        return False
    surname = [w for w in pieces[0].split() if w.lower() not in NAME_PARTICLES]
    given = [w for w in pieces[1].split() if w.lower() not in NAME_PARTICLES]
    if not (1 <= len(surname) <= 3) or not all(w[:1].isupper() and not w.endswith(".") for w in surname):
        return False
    initials = all(re.fullmatch(r"(?:[A-Z]\.-?)+", w) for w in given)  # "J. A.", "B.C."
    # "García Márquez, Gabriel", "Lloyd Webber, Andrew", "Yin, Bingqing Miranda", "Rodríguez, María del Carmen";
    # two words on each side ("Alice Smith, Bob Jones") are two people written given name first
    return bool(given) and all(w[:1].isupper() for w in given) \
        and (initials or len(given) == 1 or (len(surname) == 1 and len(given) <= 3))


def given_first(name: str) -> str:
    """"Lu, Sirui" -> "Sirui Lu", "Brown, Alan, Jr." -> "Alan Brown, Jr."; a name without a comma stays."""
    pieces, suffix = _name_pieces(name)
    if len(pieces) != 2 or not pieces[1] or _SUFFIX.match(pieces[1]):
        return name
    return f"{pieces[1]} {pieces[0]}{f', {suffix}' if suffix else ''}"


def _name_pieces(name: str) -> tuple[list[str], str]:
    """A name's comma-separated pieces without a trailing suffix ("Brown, Alan, Jr." -> ["Brown", "Alan"], "Jr.")."""
    pieces = [x.strip() for x in name.split(",")]
    return (pieces[:2], pieces[2]) if len(pieces) == 3 and _SUFFIX.match(pieces[2]) else (pieces, "")


_FOOTNOTE_MARKS = re.compile(r"(?<=\w)[\s,]*[¹²³⁰⁴-⁹*†‡§¶]+$")


def split_authors(text: str | None) -> list[str]:
    """``A, B and C`` / ``A, B, and C`` / ``A & B`` -> names; parenthesised affiliations are removed first."""
    if not text:
        return []
    text = _without_parentheses(clean_space(text))
    if ";" in text:
        # "Lu, Sirui; Efendić, Emir; Feldman, Gilad" (surname first, as APA, EndNote and library exports write
        # them) or "A. Smith; B. Jones": each part is one name, given name first; else a ";" is one more ","
        # ("Alice Smith, Bob Jones; Carol White")
        parts = [clean_space(part) for part in text.split(";") if part.strip()]
        if all(part.count(",") == 0 or _surname_first(part) for part in parts):
            text = ", ".join(given_first(part) for part in parts)
        else:
            text = text.replace(";", ",")
    text = re.sub(r"\s+(and|&)\s+", ", ", text)
    names: list[str] = []
    for raw in text.split(","):
        name = re.sub(r"^(?:\.\.\.|…)\s*", "", clean_space(raw).strip(" ;…").strip())  # ", ... Sanjeev Sethi"
        name = re.sub(r"(\.\.\.|…)$", "", name).strip()
        name = re.sub(r"\s+et\.?\s*al\.?$", "", name, flags=re.I).strip()  # "Eric Topol et al."
        name = _FOOTNOTE_MARKS.sub("", name)  # "Y Miyadera¹", "A. Smith*†": affiliation and footnote marks
        name = without_honorifics(name)
        if not name or name.lower().rstrip(".") in ("et al", "and", "others"):
            continue
        if names and name in _DEGREES:
            continue
        if names and _SUFFIX.match(name):
            names[-1] = f"{names[-1]}, {name}"  # "Alan S Brown, Jr." is one person
            continue
        names.append(name)
    return names


# a table of contents' furniture, listed like its papers ("Issue Information", "Inside front cover", "Contents list")
TOC_FURNITURE = re.compile(r"^(issue information|cover (image|picture)|(inside )?(front|back) cover|table of contents|"
                           r"masthead|editorial board|contents( list)?)(\s*[-–:|(].*)?$|"
                           # a volume's index: "2023 Index IEEE Transactions on Pattern Analysis ... Vol. 45"
                           r"^(19|20)\d\d (?:author |subject )?index\b.*\bvol(?:ume)?\.? ?\d+$", re.I)

# name particles written in lower case ("Ludwig van Beethoven", "Maria de la Cruz", "Ahmad bin Said")
NAME_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la", "le", "ter", "ten",
              "bin", "binti", "ibn", "al", "el", "y", "zu", "af", "vom", "zur", "dei", "degli", "do", "e"}
# a surname's elided or joined prefix written in lower case: "d'Orléans", "dell'Acqua", "al-Khwarizmi", "el-Sayed"
_PREFIXED = re.compile(r"^(?:d|l|dell|dall|degli|al|el|ul|ad|as|ash|at|az|bin|ibn|abu)['’‘-](?=[^\W\d_])", re.I)
# names are at most five words of their own, with up to four particles between them ("María del Carmen García de
# la Fuente" has four of its own and three particles)
_MOST_NAME_WORDS, _MOST_PARTICLES = 5, 4


def _name_word(word: str) -> bool:
    """Whether ``word`` can be part of a person's name: capitalised ("Hélène", "O'Brien", "D'Angelo"), a
    particle ("van", "de"), or a lower-case prefix joined to a capitalised surname ("d'Orléans", "al-Farabi")."""
    if word[0].isupper() or word in NAME_PARTICLES:
        return True
    m = _PREFIXED.match(word)
    return m is not None and word[m.end()].isupper()


def _is_name(name: str) -> bool:
    words = name.split()
    own = [w for w in words if w not in NAME_PARTICLES]
    return 1 <= len(own) <= _MOST_NAME_WORDS and len(words) - len(own) <= _MOST_PARTICLES \
        and words[-1] not in NAME_PARTICLES and all(_name_word(w) for w in words) \
        and not any(w.lower().strip(".") in _NOT_NAMES for w in words)


def author_names(text: str | None) -> list[str]:
    """The names of a line that reads as an author list ("A. Smith, Bo Li and Hélène Pilorgé"), else [].

    Every name has one to five words of its own, each capitalised (or joined to a lower-case prefix: "d'Orléans",
    "al-Farabi"), with particles between them ("van der", "de la", "bin"), and the line has no digits, URLs,
    addresses or colons: a citation ("Energy Environ. Sci., 2026, 19, 2149") or a sentence is not one. One name
    that is not one makes the line no author list: the line is something else."""
    text = clean_space(re.sub(r",?\s+et\.?\s*al\.?$", "", clean_space(text or "")))
    text = re.sub(r"^by\s+(?=[^\W\d_])", "", text, flags=re.I)  # "By Jane Doe and John Smith"
    if not text or len(text) > 3000 or re.search(r"\d|https?:|www\.|@|:|[!?]", text):
        return []
    names = split_authors(text)
    return names if all(_is_name(name) for name in names) else []


# words of journals' and fields' names, which read as a person's name in Title Case ("Science Advances", "Nature
# Physics", "Protein Design"): one name made with them is no byline
_FIELD_WORDS = {"nature", "science", "sciences", "cell", "advances", "reports", "physics", "chemistry", "biology",
                "medicine", "design", "engineering", "materials", "genetics", "genomics", "neuroscience", "proceedings",
                "annals", "trends", "frontiers", "plos", "one", "current", "molecular", "clinical", "international",
                "society", "methods", "systems", "computing", "intelligence", "energy", "letters", "today", "week",
                "weekly", "daily", "digest", "highlights", "stories", "top", "new", "latest", "featured", "editors"}


_CONNECTORS = {"of", "the", "and", "in", "for"}  # "Journal of the ...": between a label's words, never one alone


def coined(text: str) -> bool:
    """Whether a short name is coined, as a model's or a method's ("Mistral 7B", "DeepSeek-V3", "GPT-4",
    "scGPT"): a digit, an inner capital or a hyphen, which a person's or a journal's name has not."""
    return bool(_COINED.search(text))


_COINED = re.compile(r"\d|[a-z][A-Z]|-")


def is_label(line: str) -> bool:
    """Whether a short line is a journal's name or an item's label ("Science Advances", "Open Access", "Research
    Article"), not a title of its own: its words are those of journals, fields and labels."""
    words = re.findall(r"[^\W\d_]+", line.lower())
    own = [w for w in words if w not in _CONNECTORS]
    return len(words) <= 6 and bool(own) and all(w in _FIELD_WORDS or w in _NOT_NAMES for w in own)


def byline_names(text: str | None) -> list[str]:
    """``author_names`` for a line whose place alone does not say it is a byline (the line between a title and its
    link or abstract): several names, or one written as a person's ("A. Smith", "van Beethoven") or of two or
    three words too short to be a title ("Natalie Healey"); one word ("Mamba"), a Title-Case phrase that reads as
    a title ("Quantum Error Correction") or names a journal or a field ("Science Advances") is not taken for one."""
    names = author_names(text)
    if len(names) != 1:
        return names
    words = names[0].split()
    if any(re.fullmatch(r"[A-Z]\.?(?:-?[A-Z]\.?)*", w) for w in words) or any(w in NAME_PARTICLES for w in words):
        return names
    if len(words) < 2 or is_meaningful_title(names[0]) or any(w.lower() in _FIELD_WORDS for w in words):
        return []  # "Mamba", "Quantum Error Correction", "Science Advances"
    return names


# words of the labels around a paper's title that are written like names ("Research Article", "Open Access",
# "ACS Nano", "Read More"): never part of a person's name
_NOT_NAMES = {"article", "articles", "research", "review", "reviews", "letter", "letters", "communication",
              "communications", "paper", "papers", "editorial", "access", "open", "free", "full", "read", "more",
              "view", "download", "pdf", "abstract", "journal", "nano", "issue", "volume", "cover", "contents",
              "perspective", "commentary", "correspondence", "news", "online", "early", "supplementary", "learning",
              "network", "networks", "model", "models", "analysis", "study", "author", "authors", "editor", "editors", "item", "type",
              # a newsletter's sign-off under its last link ("Thanks, Ana and Ben", "Happy Reading, Team Digest")
              "thanks", "thank", "happy", "reading", "cheers", "regards", "best", "hi", "hello", "dear"}


LINK_WORDS = _LINK_WORDS = {
    "here", "link", "this link", "click here", "pdf", "html", "full text", "fulltext", "abstract", "view",
    "view article", "read more", "download", "doi", "arxiv", "paper", "this paper", "article", "website",
    "view abstract", "full article", "read paper", "more", "source", "preprint",
}
# the labels of an item's row of links ("Abstract | Full Text | References | PDF (1,234 KB) | EPUB")
_ROW_WORDS = _LINK_WORDS | {"references", "epub", "pdf plus", "first page", "figures", "figures & data", "citations",
                            "supplementary material", "supplemental material", "permissions", "request permissions",
                            "share", "cite", "cite this", "metrics", "full access", "free access", "open access",
                            "view pdf", "get access", "summary", "full-text html", "rights and permissions"}


def _link_row(text: str) -> bool:
    """Whether ``text`` is a row of link labels split by "|", "·" or "•", none of them a title's words."""
    parts = [re.sub(r"\s*\([^)]*\)$", "", part.strip()).strip(" .:").lower() for part in re.split(r"[|·•]", text)]
    return len(parts) >= 2 and all(not part or part in _ROW_WORDS for part in parts)


_DANGLING = {"is", "are", "was", "at", "in", "on", "of", "the", "a", "an", "to", "for", "and", "or", "see", "here",
             "by", "from", "with", "this", "my", "our"}
_NOT_TITLE_START = re.compile(
    r"^(hi|hello|dear|thanks|thank you|best|regards|cheers|sent from|on .* wrote|my|our|see|check|please|"
    r"click|read|download|view|visit|here|this is|from:|to:|subject:|date:|cc:)\b",
    re.I,
)


# Markdown or wiki markup: a heading ("## Setup"), a code fence, a table row, a quote
_MARKUP_START = re.compile(r"^(#{1,6}\s|```|~~~|\||>\s)")


def is_meaningful_title(text: str | None) -> bool:
    """A rule against junk papers: at least 3 words and 15 letters, not a link label, greeting or URL.

    "here", "PDF", "Best regards" or "https://doi.org/..." are not titles; "Attention as an RNN" is.
    """
    if not text:
        return False
    text = clean_space(text)
    if text.lower().strip(" .:!»›>") in _LINK_WORDS or _link_row(text):
        return False
    # a URL, a DOI, an email address or a handle; not chemistry's core@shell ("CuCo@TiO2", "Au@Pt nanoparticles")
    if re.search(r"https?://|www\.|\S@[^\s@]+\.[a-z]{2,}\b|(?:^|\s)@\w|\b10\.\d{4,9}/", text, re.I):
        return False
    if _NOT_TITLE_START.match(text) or text.endswith((":", ",")) or _MARKUP_START.match(text):
        return False
    last = re.findall(r"\w+", text.lower())[-1:] or [""]
    # "my latest paper is <a>here</a>": a sentence cut at the link; but a headline may ask "... how can
    # researchers fix this?" (a short "Did you see this?" is still a link label)
    question = text.endswith("?") and len(text.split()) >= 6
    if last[0] in _DANGLING and not question:
        return False
    words = re.findall(r"[^\W\d_]{2,}", text)
    letters = sum(ch.isalpha() for ch in text)
    return len(words) >= 3 and letters >= 15 and len(text) <= 400


_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}


def iso_date(text: str | None) -> str | None:
    """``22 January 2026`` / ``22nd January 2026`` / ``January 22, 2026`` / ``2026 Jan 22`` / ``2026-01-22``
    -> ``2026-01-22``."""
    if not text:
        return None
    m = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    if m:
        return m.group(0)
    m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b", text)
    if m and m.group(2)[:3].lower() in _MONTHS:
        return f"{int(m.group(3)):04d}-{_MONTHS[m.group(2)[:3].lower()]:02d}-{int(m.group(1)):02d}"
    m = re.search(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})\b", text)
    if m and m.group(1)[:3].lower() in _MONTHS:
        return f"{int(m.group(3)):04d}-{_MONTHS[m.group(1)[:3].lower()]:02d}-{int(m.group(2)):02d}"
    m = re.search(r"\b(\d{4})\s+([A-Za-z]{3,9})\.?\s+(\d{1,2})\b", text)  # PubMed: 2017 Mar 30
    if m and m.group(2)[:3].lower() in _MONTHS and 1 <= int(m.group(3)) <= 31:
        return f"{int(m.group(1)):04d}-{_MONTHS[m.group(2)[:3].lower()]:02d}-{int(m.group(3)):02d}"
    return None
