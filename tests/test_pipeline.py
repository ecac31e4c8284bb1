"""The main job end to end on embedded defaults, with the real model and a real SQLite file."""

import email
import email.policy
import html
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.config import load_settings
from digest.embed import Embedder
from digest.pipeline import deliver_all, embed_new, ingest_paths, load_user_profiles
from digest.profiles import load_profile
from digest.store import Store

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.model


def _demo(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digest", "--config", "/dev/null", "demo", "--data-dir",
                           str(data_dir)], capture_output=True, text=True, cwd=REPO, timeout=600)


def test_the_demo_writes_one_digest_per_profile_and_a_second_run_embeds_nothing(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "emails read: 6 (6 alerts" in first.stdout
    embedded = [line for line in first.stdout.splitlines() if line.startswith("embedded: ")]
    assert embedded and int(embedded[0].split()[1]) > 300
    n = int(embedded[0].split()[1])
    # minutes of embedding are not silent: what is happening, then how far it got
    assert f"embedding {n} new papers with " in first.stdout and f"  {n}/{n} papers embedded (" in first.stdout
    # and what to do next: the links need the server
    assert f"next: open {tmp_path / 'outbox' / 'ada-'}" in first.stdout and \
        f"answer while `digest --data-dir {tmp_path} serve` runs (at http://127.0.0.1:8025)" in first.stdout, first.stdout
    outbox = tmp_path / "outbox"
    profiles = sorted(p.stem for p in (REPO / "profiles").glob("*.toml"))
    for user in profiles:
        emls = list(outbox.glob(f"{user}-*.eml"))
        htmls = list(outbox.glob(f"{user}-*.html"))
        assert len(emls) == 1 and len(htmls) == 1, user
        msg = email.message_from_bytes(emls[0].read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["To"].addresses[0].addr_spec.endswith("@example.org")
        # the name from the profile, also for a profile with a library (ben): not the library's file name
        assert msg["To"].addresses[0].display_name == load_profile(REPO / "profiles" / f"{user}.toml").name

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "embedded: 0" in second.stdout.splitlines() and "embedding " not in second.stdout
    assert "papers: 0 new, 0 merged" in second.stdout
    assert "already delivered for this period" in second.stdout
    assert sorted(p.name for p in outbox.iterdir()) == sorted(p.name for p in outbox.iterdir() if p.suffix in (".eml", ".html"))
    assert len(list(outbox.glob("*.eml"))) == len(profiles)

    # looking around the demo's store: `rank` says why the papers just written are not shown again, and
    # `status` counts as waiting exactly the candidates `rank` ranks
    written = int(first.stdout.split("  ada: ", 1)[1].split()[0])
    look = [sys.executable, "-m", "digest", "--config", "/dev/null", "--data-dir", str(tmp_path)]
    ranked = subprocess.run([*look, "rank", "ada", "--limit", "1"], capture_output=True, text=True, cwd=REPO,
                            timeout=600)
    assert ranked.returncode == 0, ranked.stderr
    assert f"; {written} recent papers already sent to ada (or voted on) are not candidates again" in ranked.stdout
    assert ranked.stdout.splitlines()[-1].startswith("score: calibrated relevance, 0.1 per standard deviation")
    n_candidates = int(ranked.stdout.split(" candidates (", 1)[0].rsplit(" ", 1)[1])
    status = subprocess.run([*look, "status", "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    ada = next(u for u in json.loads(status.stdout)["users"] if u["user"] == "ada")
    assert ada["waiting"] == n_candidates

    # `rank --find`: "why is this paper not in my digest?", for a paper sent today and for the best candidate
    [eml] = outbox.glob("ada-*.eml")
    sent = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default).get_body(("html",)).get_content()
    sent_title = html.unescape(re.search(r'class="title"[^>]*>([^<]+)</a>', sent).group(1))  # (the text part wraps it)
    best = ranked.stdout.splitlines()[2][10:].strip()  # the line after the header: mark, score, title
    for query, says in ((sent_title, f"already sent in the digest of {eml.stem.split('-', 1)[1]}: a paper is sent once"),
                        (best[:40], f"#1 of {n_candidates}  score ")):
        found = subprocess.run([*look, "rank", "ada", "--find", query], capture_output=True, text=True, cwd=REPO,
                               timeout=600)
        assert found.returncode == 0 and says in found.stdout, (query, found.stdout, found.stderr)
    verdict = "picked: in the digest, paper 1 of its " if ranked.stdout.splitlines()[2].startswith("✓") else "below the floor: "
    assert verdict in found.stdout, found.stdout
    missing = subprocess.run([*look, "rank", "ada", "--find", "no such paper title"], capture_output=True, text=True,
                             cwd=REPO, timeout=60)
    assert missing.returncode == 1 and "no paper in the store matches 'no such paper title'" in missing.stderr
    # the words of a title in another order: not a match, but the error names the paper they are all in
    words = sent_title.split()[:6]
    shuffled = " ".join(words[::-1])
    near = subprocess.run([*look, "rank", "ada", "--find", shuffled], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert near.returncode == 1 and f"no title in the store contains {shuffled!r}" in near.stderr, near.stderr
    assert f"'{' '.join(sent_title.split())[:40]}" in near.stderr, near.stderr


def test_papers_already_sent_are_never_repeated_in_the_next_digest(tmp_path):
    # the fast model (the ledger is under test, not the ranking): the default ensemble took ~4 min here, and the
    # demo's test above runs it on the same papers
    config = tmp_path / "config.toml"
    config.write_text('[model]\nname = "all-MiniLM-L6-v2"\n')
    settings = load_settings(config, data_dir=str(tmp_path), profiles_dir=str(REPO / "profiles"))
    assert settings.model.name == "all-MiniLM-L6-v2"
    store = Store(settings.db_path)
    ingest_paths(store, [REPO / "sample_inbox"])
    embedder = Embedder(settings.model.name)
    embedded, missing = embed_new(store, embedder, settings)
    assert embedded == missing > 0
    assert embed_new(store, embedder, settings) == (0, 0)  # once per paper
    profiles = list(load_user_profiles(store, settings).profiles.values())
    today = datetime.now(UTC)
    day1 = deliver_all(store, embedder, settings, profiles, outbox=tmp_path / "out", now=today)
    day2 = deliver_all(store, embedder, settings, profiles, outbox=tmp_path / "out", now=today + timedelta(days=1))
    for profile in profiles:
        digests = store.digests(user=profile.user)
        assert len(digests) == 2
        first, second = ({i["paper_id"] for i in store.digest_items(d["id"])} for d in digests)
        assert first and not first & second
    assert all(d.status == "written" for d in day1)
    assert all(d.status in ("written", "skipped") for d in day2)
