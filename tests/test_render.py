from datetime import date

from digest.models import Paper, ScoredPaper
from digest.render import item_context, render_digest, short_authors
from digest.send import build_message


def _context(items, quiet=False, n=340):
    return {"date": date(2026, 11, 28), "items": items, "quiet": quiet, "n_candidates": n,
            "profile_file": "profiles/ada.toml", "unsubscribe_url": "https://d.example/unsubscribe/t"}


def _item(title="A paper", abstract="Some abstract.", authors=("A. One", "B. Two")):
    scored = ScoredPaper(Paper(title, authors=authors, abstract=abstract, arxiv_id="2401.00001"), 0.8,
                         "Matches your interest “LLM inference” (0.61)")
    return item_context(scored, ["arxiv", "hf"], "https://d.example/vote/up", "https://d.example/vote/down")


def test_a_digest_has_subject_text_and_html_with_counts_reasons_and_links():
    out = render_digest(_context([_item(), _item("Second")]))
    assert out.subject.startswith("2 papers for you: A paper (+1)")
    assert "2 picked from 340 new papers" in out.text and "2 picked from 340 new papers" in out.html
    assert "https://arxiv.org/abs/2401.00001" in out.html
    assert "via arXiv, Hugging Face" in out.text
    assert "Why: Matches your interest" in out.text
    assert "https://d.example/vote/up" in out.html and "https://d.example/unsubscribe/t" in out.html
    assert "profiles/ada.toml" in out.text


def test_hostile_paper_text_is_escaped_in_html():
    out = render_digest(_context([_item('<script>alert("x")</script><b>bold', abstract="<img src=x onerror=1>")]))
    assert "<script>alert" not in out.html and "&lt;script&gt;" in out.html
    assert "<img src=x" not in out.html
    assert '<script>alert("x")</script>' in out.text  # plain text is not HTML: shown as it is


def test_css_is_inlined_and_media_queries_are_kept():
    html = render_digest(_context([_item()])).html
    assert 'class="title"' in html and "style=" in html.split('class="title"')[1][:200]
    assert "prefers-color-scheme: dark" in html


def test_a_quiet_day_says_so():
    out = render_digest(_context([], quiet=True, n=12))
    assert out.subject.startswith("Quiet day")
    assert "none of the 12 new papers cleared your relevance bar" in out.text.lower()


def test_long_author_lists_are_shortened():
    assert short_authors(["A", "B", "C", "D", "E"]) == "A, B, C et al. (5 authors)"
    assert short_authors([]) == "Unknown authors"


def test_the_message_is_multipart_alternative_text_first_with_list_unsubscribe():
    out = render_digest(_context([_item()]))
    msg = build_message(out, sender="digest@example.org", sender_name="digest", to="ada@example.org",
                        to_name="Ada", message_id="<x@example.org>", unsubscribe_url="https://d/u")
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe"] == "<https://d/u>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"] == "<x@example.org>"
