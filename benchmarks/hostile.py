"""How parsing time grows with crafted mails: each recipe at size n and 2n, and the ratio of the two times.

A ratio near 2 is linear; near 4 quadratic (what these recipes took before they were fixed: a 56 KB mail of
"class= " 76 s, 4,000 DOIs in one <div> 26 s, 1,000 Scholar titles without <h3> 13 s). Anyone can send mail to
the alert mailbox, and a From header proves nothing, so no sender's layout may let a mail's size buy time.
The last recipes read reference-library exports (a profile's `library`) the same way.

    .venv/bin/python benchmarks/hostile.py [--n 2000] [--only TEXT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from digest.errors import ParseError
from digest.feedback import reply_votes
from digest.library import read_library
from digest.parse import parse_message

ARXIV, SCHOLAR = "no-reply@arxiv.org", "scholaralerts-noreply@google.com"


def mail(body: str, sender: str = "someone@example.org", subject: str = "hello", html: bool = False) -> bytes:
    kind = "html" if html else "plain"
    return (f"From: {sender}\r\nTo: me@example.org\r\nSubject: {subject}\r\nMessage-ID: <x@example.org>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/{kind}; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()


_SCHOLAR_LINK = "<https://scholar.google.com/scholar_url?url=https://x.org/a&hl=en>"

RECIPES = {
    "dated items: names, then a date line, repeated": lambda n: mail(
        "A title of a paper here\n" + "Ann Bo,\n" * (2 * n) + "First Published: 1 May 2026\n" * (2 * n)),
    "dated items: title, names, date, repeated": lambda n: mail(
        "A title of a paper here\nAnn Bo, Cy Do\ne70001 | First Published: 1 May 2026\n" * (n // 2)),
    "Scholar as text: ' -' repeated on a byline": lambda n: mail(
        f"A title {_SCHOLAR_LINK}\n" + " -" * (20 * n) + "\nits wrapped end\n", sender=SCHOLAR,
        subject="new results"),
    "Scholar as text: ' -' repeated above a title": lambda n: mail(
        "a\n" + " -" * (20 * n) + f"\nTitle {_SCHOLAR_LINK}\nA Author - 2024\n", sender=SCHOLAR,
        subject="new results"),
    "class= (forwarded-class regex)": lambda n: mail("<p>" + "class= " * (4 * n) + "</p>", html=True),
    "backslash line + blank lines (arXiv)": lambda n: mail("\\\\\n" + "\n" * (15 * n)),
    "a/ on one line (HF card lines)": lambda n: mail("a/" * (25 * n)),
    "URL Defense v3 without '!'": lambda n: mail("https://urldefense.com/v3/__" + "a__;" * (6 * n)),
    "URL Defense v3 prefix repeated, then '!'": lambda n: mail("https://urldefense.com" + "/v3/__" * (5 * n) + "!"),
    "TeX accent before a run of spaces (arXiv)": lambda n: mail(
        "\\\\\narXiv:2601.00001\nTitle: Caf\\'" + " " * (10 * n) + "!\nAuthors: A B\n\\\\\n", ARXIV),
    "a DOI followed by closing brackets": lambda n: mail("doi: 10.1234/abc" + ")" * (20 * n)),
    "a@ as a link's text": lambda n: mail('<a href="https://arxiv.org/abs/2601.00001">' + "a@" * (20 * n) + "</a>",
                                         html=True),
    "nested parentheses in Authors (arXiv)": lambda n: mail(
        "\\\\\narXiv:2601.00001\nTitle: x\nAuthors: " + "(" * (10 * n) + "x" + ")" * (10 * n) + "\n\\\\\n", ARXIV),
    "'received from' repeated (arXiv)": lambda n: mail("received from " * (10 * n), ARXIV),
    "'bioRxiv posted' repeated": lambda n: mail("bioRxiv posted " * (5 * n)),
    "DOIs in one <div>": lambda n: mail("<div>" + "".join(f"<p>10.1234/x{i}</p>" for i in range(2 * n)) + "</div>",
                                       html=True),
    "Scholar titles without <h3>": lambda n: mail("".join(
        f'<a class="gse_alrt_title" href="https://x.org/{i}">Title number {i} words</a><table><tr><td>a</td></tr>'
        f"</table>" for i in range(n // 2)), SCHOLAR, html=True),
    "Cell Press rows": lambda n: mail("<table>" + "".join(
        f'<tr><td><a href="https://www.cell.com/cell/fulltext/S0092-8674(25)0{i:04d}-1">Title number {i} here</a>'
        f"</td></tr>" for i in range(n // 2)) + "</table>", "cellpress@notification.elsevier.com", html=True),
    "Wiley items": lambda n: mail("wiley" + "".join(
        f'<div class="issue-item"><a class="issue-item__title" href="https://x.org/{i}">A study of things number {i}'
        f"</a></div>" for i in range(n // 2)), "alerts@wiley.com", html=True),
    "Nature issue items": lambda n: mail("links.springernature.com<table>" + "".join(
        f'<tr><td><a href="https://links.springernature.com/f/a/{i}">A study of things number {i}</a>'
        f"<span>standfirst text</span></td></tr>" for i in range(n // 2)) + "</table>", "alerts@nature.com",
        "Nature alert for 22nd January 2026", html=True),
    "PubMed records in one <div>": lambda n: mail("My NCBI<div>" + "".join(
        f'<p><a href="https://pubmed.ncbi.nlm.nih.gov/{i + 1}/">Title number {i} here.</a></p><p>PMID: {i + 1}</p>'
        for i in range(n // 2)) + "</div>", "efback@ncbi.nlm.nih.gov", html=True),
    # unclosed tags nest: each link's block holds the rest of the mail (session 20's second review)
    "'Paper' links in unclosed <p>": lambda n: mail("".join(
        f'<p><a href="https://arxiv.org/abs/2601.{i:05d}">Paper</a> ' for i in range(n // 4)), html=True),
    "unclosed <a> links": lambda n: mail('<a href="https://arxiv.org/abs/2601.00001">A study of things</a>' + "".join(
        f'<a href="https://example.com/{i}">link {i} ' for i in range(n)), html=True),
    "<h3> text and a 'Paper' link, unclosed": lambda n: mail("".join(
        f'<h3>Title number {i} <a href="https://arxiv.org/abs/2601.{i:05d}">Paper</a>' for i in range(n // 2)),
        html=True),
    "title links with bylines, nested": lambda n: mail("".join(
        f'<div><a href="https://x.example/{i}">A study of many things number {i}</a>' for i in range(n // 4))
        + "</div>" * (n // 4), html=True),
    "start tags without '>' ('<a <a <a')": lambda n: mail("<a " * (2 * n), html=True),
    "end tags, '<?' and '<!--' without an end": lambda n: mail("</a " * n + "<?" * n + "</" * n + "<!--" * n,
                                                             html=True),
    # a journal alert without its classes: a short title's link, its names, then its citation and DOI, per item
    "short titles above names and DOIs (class-less)": lambda n: mail("<div>" + "".join(
        f'<table><tr><td><a href="https://t.example/{i}">Silenced genomes</a></td></tr><tr><td>Ann Bo</td></tr>'
        f"<tr><td>News Feature | 05 January 2026 <i>Nature</i> <b>1</b> | doi:10.1038/x{i}</td></tr></table>"
        for i in range(n // 4)) + "</div>", "ealert@nature.com", "Nature Medicine Contents: Volume 1", html=True),
    "a link then name lines before one DOI": lambda n: mail(
        '<div><a href="https://t.example/1">Silenced genomes</a>' + "<div>Ann Bo</div>" * n
        + "<div>News | 05 January 2026 <i>Nature</i> <b>1</b> | doi:10.1038/x1</div></div>", "ealert@nature.com",
        "Nature Medicine Contents", html=True),
    "paragraphs of written links (is_abstract)": lambda n: mail("A title of a paper here\n\n" + "".join(
        f"<https://t.example/{i}/{'a' * 40}> " for i in range(n)) + "\n\nAnother title of a paper\n\n"
        + "<https://" * (2 * n)),
    "an alert's subject, links and DOIs": lambda n: mail("".join(
        f'<p><a href="https://t.example/{i}">x</a> 10.1000/x{i}</p>' for i in range(n // 2)),
        sender="alerts@tandfonline.com", subject="New articles for X are now available online", html=True),
}


# a reference library (a profile's `library` file) is the user's own file, but exported by programs from text
# that publishers and databases wrote: the same rule, its size must not buy time
LIBRARY_RECIPES = {
    "library: blank lines (.bib)": ("lib.bib", lambda n: "\n" * (10 * n)),
    "library: '<jats:a-a-a' in an abstract (.json)": ("lib.json", lambda n: json.dumps(
        [{"title": "A title", "abstract": "<jats:" + "a-" * (5 * n)}])),
    "library: a long MEDLINE abstract (.nbib)": ("lib.nbib", lambda n: "PMID- 1\nTI  - t\nAB  - x\n"
                                                 + "      continued abstract line of eighty characters or so\n" * n),
    "library: '\\(' repeated (.bib)": ("lib.bib", lambda n: "@article{a, title = {" + "\\(" * (5 * n) + "}}\n"),
}


# an email vote's text (anyone can write to the reply address; its From header proves nothing until checked)
REPLY_RECIPES = {
    "reply: 'Word: <' then '@' repeated": lambda n: "Word: <" + "@" * (20 * n),
    "reply: 'Word: [mailto:' then 'a@' repeated": lambda n: "Word: [mailto:" + "a@" * (10 * n),
    "reply: '+1 ' repeated on one line": lambda n: "+1 " * (40 * n),
}


def reply_seconds(text: str) -> float:
    start = time.perf_counter()
    reply_votes(text)
    return time.perf_counter() - start


def seconds(raw: bytes) -> float:
    start = time.perf_counter()
    try:
        parse_message(raw)
    except ParseError:
        pass
    return time.perf_counter() - start


def library_seconds(name: str, text: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text)
        start = time.perf_counter()
        read_library(path)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="the size unit of every recipe (default 2000)")
    ap.add_argument("--only", default="", help="run only the recipes whose name holds this text")
    args = ap.parse_args()
    print(f"{'recipe':42} {'KB at n':>8} {'s at n':>8} {'s at 2n':>8} {'ratio':>6}")
    for name, make in RECIPES.items():
        if args.only not in name:
            continue
        small, large = make(args.n), make(2 * args.n)
        a, b = seconds(small), seconds(large)
        print(f"{name:42} {len(small) / 1000:8.0f} {a:8.2f} {b:8.2f} {b / max(a, 1e-6):6.1f}", flush=True)
    for name, make in REPLY_RECIPES.items():
        if args.only not in name:
            continue
        small, large = make(args.n), make(2 * args.n)
        a, b = reply_seconds(small), reply_seconds(large)
        print(f"{name:42} {len(small) / 1000:8.0f} {a:8.2f} {b:8.2f} {b / max(a, 1e-6):6.1f}", flush=True)
    for name, (file, make) in LIBRARY_RECIPES.items():
        if args.only not in name:
            continue
        small, large = make(args.n), make(2 * args.n)
        a, b = library_seconds(file, small), library_seconds(file, large)
        print(f"{name:42} {len(small) / 1000:8.0f} {a:8.2f} {b:8.2f} {b / max(a, 1e-6):6.1f}", flush=True)


if __name__ == "__main__":
    main()
