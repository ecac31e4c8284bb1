"""Delivery end to end: store -> claim -> render -> real SMTP relay -> real Dovecot mailbox, read back over IMAP.

Exactly once is tested the honest way: other processes claim and die (SIGKILL) at the moments that matter,
and overlapping runs race for real. The ranking is a fixed list of stored papers here (ranking has its own
tests), except in the last test, which runs `digest send` with the real model.
"""

from __future__ import annotations

import email
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from email import policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from digest.config import load_settings
from digest.errors import DeliveryError
from digest.models import Paper, ScoredPaper
from digest.pipeline import UserRanking, deliver_user, local_period
from digest.profiles import load_profile
from digest.rank import Ranking
from digest.store import Store, claim_owner, owner_state
from digest.tokens import read_token

pytestmark = pytest.mark.mail

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
NOW = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)
BASE_URL = "https://digest.example.org/d"

PAPERS = [
    Paper("Fast Inference from Transformers via Speculative Decoding", authors=("Yaniv Leviathan", "Matan Kalman"),
          abstract="Inference from large autoregressive models like Transformers is slow.", arxiv_id="2211.17192",
          source="arxiv"),
    Paper('<script>alert("pwned")</script> & <b>Broken HTML', authors=("Eve <eve@evil.example>",),
          abstract="<img src=x onerror=alert(1)> text", url="javascript:alert(1)", source="google_scholar"),
    Paper("نموذج لغوي كبير للترجمة الآلية", abstract="هذه ورقة عن الترجمة الآلية.", doi="10.1000/rtl.1",
          source="nature"),
    Paper("Emoji 🚀 in titles: a study", abstract="We 😀 study emoji.", url="https://example.org/emoji",
          source="hf"),
    Paper("Learning to Represent Programs with Graphs", authors=("Miltiadis Allamanis",), arxiv_id="1711.00740",
          source="arxiv"),
]


# -- helpers (also used by the subprocesses below) ---------------------------------------------------------
def write_setup(root: Path, smtp_port: int, ca_cert: str, address: str, user: str = "ada",
                quiet_day: str = "note", interest: str = "speculative decoding") -> Path:
    """A config.toml pointing at the loopback relay and one profile; returns the config path."""
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    (root / "profiles" / f"{user}.toml").write_text(
        f'name = "Ada Lovelace"\nemail = "{address}"\ntimezone = "UTC"\nquiet_day = "{quiet_day}"\n'
        f'[[interests]]\nlabel = "My interest"\ndescription = "{interest}"\n')
    config = root / "config.toml"
    config.write_text(f"""data_dir = "{root / 'data'}"
profiles_dir = "{root / 'profiles'}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
ca_file = "{ca_cert}"
from_addr = "digest@example.test"
from_name = "Paper digest"
timeout = 10.0
retries = 2
retry_backoff = 0.01
[web]
base_url = "{BASE_URL}"
""")
    return config


def fixed_ranker(store: Store, n: int = 5):
    """Rank = the user's first n candidates in store order (never-sent papers only, like the real ranking)."""

    def ranking(profile) -> UserRanking:
        candidates = store.candidate_papers(profile.user, "2000-01-01")[:n]
        picked = [ScoredPaper(p, round(0.9 - i / 20, 2), f"Matches your interest “LLM inference” ({0.6 - i / 50:.2f})",
                              "LLM inference") for i, (_, p) in enumerate(candidates)]
        ids = {id(item.paper): pid for item, (pid, _) in zip(picked, candidates, strict=True)}
        return UserRanking(profile, Ranking(picked=picked), ids, n_candidates=len(candidates) + 40)

    return ranking


def open_run(config: Path, user: str = "ada"):
    settings = load_settings(config)
    store = Store(settings.db_path)
    profile = load_profile(settings.profiles_path / f"{user}.toml")
    return settings, store, profile


def run(config: Path, user: str = "ada", **kwargs):
    """One delivery run, as `digest send` does it, with the fixed ranking."""
    settings, store, profile = open_run(config, user)
    try:
        return deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store), **kwargs)
    finally:
        store.close()


def subprocess_main(config: str, mode: str) -> None:
    """Entry point of the helper processes: claim and wait, die right after the server's 250, or deliver."""
    settings, store, profile = open_run(Path(config))
    if mode == "claim-and-wait":
        digest_id = store.claim_digest(profile.user, local_period(profile, NOW))
        print(f"claimed {digest_id}", flush=True)
        time.sleep(600)
    elif mode == "die-after-250":
        from digest.send import send_message

        async def send_then_die(msg, smtp, before_data, not_sent, handed_over):
            await send_message(msg, smtp, before_data=before_data, not_sent=not_sent, handed_over=handed_over)
            print(f"sent {msg['Message-ID']}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # the crash: after the 250, before 'sent' is recorded

        deliver_user(store, None, settings, profile, now=NOW, send=send_then_die, ranker=fixed_ranker(store))
    elif mode == "die-while-waiting-to-retry":
        from digest.send import send_message

        async def die(seconds):
            print("refused, waiting", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # the crash: between a refused attempt and the next one

        async def send_and_die_waiting(msg, smtp, before_data, not_sent, handed_over):
            await send_message(msg, smtp, before_data=before_data, not_sent=not_sent, handed_over=handed_over,
                               sleep=die)

        deliver_user(store, None, settings, profile, now=NOW, send=send_and_die_waiting, ranker=fixed_ranker(store))
    elif mode == "race":
        go = Path(config).with_name("go")
        while not go.exists():
            time.sleep(0.005)
        print(deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store)).status,
              flush=True)


def start_helper(config: Path, mode: str) -> subprocess.Popen:
    code = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}]\n"
            f"import test_delivery; test_delivery.subprocess_main({str(config)!r}, {mode!r})")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def inbox(servers, address) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=policy.default) for _, _, raw in servers.messages(address)]


def hrefs(html: str) -> list[str]:
    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(value for name, value in attrs if tag == "a" and name == "href")

    Links().feed(html)
    return found


@pytest.fixture
def setup(mail_servers, tmp_path):
    """A fresh mailbox, config and store with five stored papers (some hostile)."""
    address, _ = mail_servers.new_user("digest")
    config = write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, address)
    settings, store, _ = open_run(config)
    store.add_papers(PAPERS)
    store.close()
    return config, address


# -- the digest arrives, once ------------------------------------------------------------------------------
def test_a_digest_sent_through_smtp_arrives_once_with_both_parts_headers_and_working_links(mail_servers, setup):
    config, address = setup
    first = run(config)
    assert (first.status, first.items, first.attempts) == ("sent", 5, 1)
    [msg] = inbox(mail_servers, address)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["From"].addresses[0].addr_spec == "digest@example.test"
    assert msg["To"].addresses[0].addr_spec == address and msg["Date"].datetime is not None
    assert re.fullmatch(r"<[^<>@\s]+@example\.test>", msg["Message-ID"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Paper digest <paper-digest.example.test>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Subject"] == "Learning to Represent Programs with Graphs + 4 more · Sat 28 Nov"

    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "&lt;script&gt;alert" in html and "<script>" not in html  # untrusted titles escaped
    assert '<script>alert("pwned")</script>' in text  # ...and shown as they are in plain text
    links = hrefs(html)
    assert all(urlsplit(u).scheme == "https" and urlsplit(u).netloc for u in links), links
    votes = [u for u in links if u.startswith(f"{BASE_URL}/vote/")]
    assert len(votes) == 10 and all(u in text for u in votes)
    # every feedback link is a valid, signed token for this user (the feedback server reads these)
    settings = load_settings(config)
    key = settings.web.secret_key(settings.data_path)
    tokens = [read_token(key, u.rsplit("/", 1)[1], max_age_days=60) for u in votes]
    assert {t.user for t in tokens} == {"ada"} and [t.action for t in tokens[:2]] == ["up", "down"]
    assert {t.paper_id for t in tokens} == {"arxiv:2211.17192", "arxiv:1711.00740", "doi:10.1000/rtl.1",
                                             Paper(PAPERS[1].title).id, Paper(PAPERS[3].title).id}
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{BASE_URL}/unsubscribe/") and unsubscribe in links
    assert read_token(key, unsubscribe.rsplit("/", 1)[1], max_age_days=60).action == "unsubscribe"
    assert "https://arxiv.org/abs/2211.17192" in links and "https://doi.org/10.1000/rtl.1" in links

    second = run(config)
    assert second.status == "already"
    assert len(inbox(mail_servers, address)) == 1
    assert sum(msg["Message-ID"] in line for line in mail_servers.smtp_log()) == 1


def test_sent_papers_enter_the_ledger_and_never_come_back(mail_servers, setup):
    config, address = setup
    assert run(config).status == "sent"
    settings, store, profile = open_run(config)
    assert len(store.sent_paper_ids("ada")) == 5
    assert store.candidate_papers("ada", "2000-01-01") == []
    store.add_papers([Paper("A new paper on KV-cache compression", arxiv_id="2501.00001")])
    tomorrow = NOW.replace(day=29)
    later = deliver_user(store, None, settings, profile, now=tomorrow, ranker=fixed_ranker(store))
    assert (later.status, later.items) == ("sent", 1)
    assert later.titles == ("A new paper on KV-cache compression",)


def test_the_outbox_gets_a_complete_eml_and_a_second_run_writes_nothing(setup, tmp_path):
    config, address = setup
    outbox = tmp_path / "outbox"
    first = run(config, outbox=outbox)
    assert first.status == "written" and first.path == outbox / "ada-2026-11-28.eml"
    msg = email.message_from_bytes(first.path.read_bytes(), policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative" and msg["To"].addresses[0].addr_spec == address
    assert msg["List-Unsubscribe"].startswith(f"<{BASE_URL}/unsubscribe/")
    assert (outbox / "ada-2026-11-28.html").read_text().startswith("<!DOCTYPE html>")
    mtime = first.path.stat().st_mtime_ns
    assert run(config, outbox=outbox).status == "already" and first.path.stat().st_mtime_ns == mtime


def test_an_outbox_on_a_full_disk_or_under_a_file_is_said_with_the_file_and_fix_and_written_once_later(tmp_path):
    """A full disk (a real 8 KB tmpfs, mounted in a user namespace) or an outbox path under a regular file: the
    run said only `[Errno 28] No space left on device` (or a temp file's name), logged a traceback, and a
    failure between the two writes could leave an .eml behind that the next run wrote again."""
    from digest.pipeline import deliver_all

    config = write_setup(tmp_path, 1, "/nonexistent", "ada@example.test")
    write_setup(tmp_path, 1, "/nonexistent", "bob@example.test", user="bob")
    settings, store, _ = open_run(config)
    store.add_papers(PAPERS)
    profiles = [load_profile(settings.profiles_path / f"{u}.toml") for u in ("ada", "bob")]
    (tmp_path / "not-a-folder").write_text("")
    under_a_file = tmp_path / "not-a-folder" / "outbox"
    done = deliver_all(store, None, settings, profiles, now=NOW, ranker=fixed_ranker(store), outbox=under_a_file)
    assert [(d.user, d.status) for d in done] == [("ada", "retry"), ("bob", "retry")]
    assert done[0].error.startswith(f"cannot write {under_a_file}/ada-2026-11-28.html: Not a directory; "
                                    f"{under_a_file} must be a folder"), done[0].error
    assert "check outbox (config.toml, or --outbox)" in done[0].error and "the next run writes it" in done[0].error
    frozen = {row["user"]: row["message_id"] for row in store.digests()}
    store.close()

    full = tmp_path / "full"
    full.mkdir()
    code = (f"import sys, json; sys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}]\n"
            "import test_delivery as t\nfrom pathlib import Path\nfrom digest.pipeline import deliver_all\n"
            f"settings, store, _ = t.open_run(Path({str(config)!r}))\n"
            "profiles = [t.load_profile(settings.profiles_path / f'{u}.toml') for u in ('ada', 'bob')]\n"
            "done = deliver_all(store, None, settings, profiles, now=t.NOW, ranker=t.fixed_ranker(store), "
            f"outbox=Path({str(full)!r}))\n"
            f"print(json.dumps([[d.user, d.status, d.error, sorted(p.name for p in Path({str(full)!r}).iterdir())] "
            "for d in done]))\n")
    mount = f"mount -t tmpfs -o size=8k tmpfs {full} && exec {sys.executable} -c \"$0\""
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    if "mount" in proc.stderr and proc.returncode and not proc.stdout:
        pytest.skip(f"cannot mount a small tmpfs in a user namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    import json

    for user, status, error, files in json.loads(proc.stdout):
        assert status == "retry" and error.startswith(f"cannot write {full}/{user}-2026-11-28.") and \
            f"No space left on device; free some space on the disk of {full}" in error, error
        assert not [f for f in files if f.endswith(".eml")], files  # nothing that looks delivered
    settings, store, _ = open_run(config)
    assert [row["status"] for row in store.digests()] == ["retry", "retry"]
    store.close()

    outbox = tmp_path / "outbox"
    done = [run(config, user, outbox=outbox) for user in ("ada", "bob")]
    assert [d.status for d in done] == ["written", "written"], done
    for d in done:  # the digest frozen by the first run, once
        assert email.message_from_bytes(d.path.read_bytes())["Message-ID"] == frozen[d.user]
    assert sorted(p.name for p in outbox.iterdir()) == [f"{u}-2026-11-28.{x}" for u in ("ada", "bob")
                                                        for x in ("eml", "html")]
    assert [run(config, user, outbox=outbox).status for user in ("ada", "bob")] == ["already", "already"]


def test_the_runners_up_are_saved_with_the_digest_for_its_page_and_its_email_links_to_that_page(setup, tmp_path):
    config, _ = setup
    settings, store, profile = open_run(config)
    papers = [Paper(f"Paper number {i}", abstract="An abstract.", arxiv_id=f"2501.0000{i}") for i in range(9)]
    pids = store.add_papers(papers).paper_ids
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.1, 0.05]  # the floor is 0.2: the last two stay below it
    scored = [ScoredPaper(p, score, f"reason {i}", details={"muted": True} if i in (4, 8) else {})
              for i, (p, score) in enumerate(zip(papers, scores, strict=True))]
    picked = [scored[0], scored[2]]  # the digest's own picks need not be the top scores (diversity)

    def ranker(profile) -> UserRanking:  # reads picked and scored when called: the retry sees the new ones
        return UserRanking(profile, Ranking(picked=picked, scored=scored, floor=0.2),
                           {id(p): pid for p, pid in zip(papers, pids, strict=True)}, n_candidates=9)

    async def refused_for_now(msg, smtp, before_data=None, not_sent=None, handed_over=None):
        raise DeliveryError("451 try again later")

    try:
        # a transient failure first: the digest is frozen with its runners-up, and the retry keeps both even
        # though the ranking changed meanwhile
        failed = deliver_user(store, None, settings, profile, now=NOW, ranker=ranker, send=refused_for_now)
        assert (failed.status, failed.error) == ("retry", "451 try again later")
        picked, scored = [scored[1]], scored[::-1]
        done = deliver_user(store, None, settings, profile, now=NOW, ranker=ranker, outbox=tmp_path / "outbox")
        row = store.digests("ada")[0]
        assert [(r["rank"], r["paper_id"]) for r in store.digest_items(row["id"])] == [(1, pids[0]), (2, pids[2])]
        # cleared the floor, not muted, not picked, best first, numbered after the digest's own papers
        assert [(r["rank"], r["paper_id"], r["reason"]) for r in store.digest_items(row["id"], more=True)] == \
            [(3, pids[1], "reason 1"), (4, pids[3], "reason 3"), (5, pids[5], "reason 5"), (6, pids[6], "reason 6")]
        # below the floor and not muted, numbered after the runners-up, with the floor they were below
        assert [(r["rank"], r["paper_id"], r["score"]) for r in store.digest_items(row["id"], below=True)] == \
            [(7, pids[7], 0.1)]
        assert row["floor"] == 0.2 and store.digest_numbers(row["id"])[7] == pids[7]
        assert store.sent_paper_ids("ada") == {pids[0], pids[2]}  # the runners-up were not sent
        msg = email.message_from_bytes(done.path.read_bytes(), policy=policy.default)
        text = msg.get_body(preferencelist=("plain",)).get_content()
        assert "Read and vote on several at once in your browser (4 more above your bar there): " in text
        assert "and see 4 more above your bar" in msg.get_body(preferencelist=("html",)).get_content()
        page = re.search(rf"{re.escape(BASE_URL)}/digest/(\S+)", text)
        token = read_token(load_settings(config).web.secret_key(settings.data_path), page.group(1), max_age_days=1)
        assert (token.user, token.action, token.paper_id) == ("ada", "digest", str(row["id"]))
        assert f"{BASE_URL}/digest/{page.group(1)}" in msg.get_body(preferencelist=("html",)).get_content()
    finally:
        store.close()


def test_a_dry_run_shows_what_would_go_out_and_records_nothing(mail_servers, setup):
    config, address = setup
    preview = run(config, dry_run=True)
    assert preview.status == "dry-run" and preview.to == address and len(preview.titles) == 5
    settings, store, _ = open_run(config)
    assert store.digests() == [] and mail_servers.messages(address) == []


def test_a_quiet_day_sends_a_short_note_or_nothing_as_the_profile_says(mail_servers, tmp_path):
    address, _ = mail_servers.new_user("quiet")
    note = write_setup(tmp_path / "note", mail_servers.smtp_port, mail_servers.ca_cert, address)
    assert run(note).status == "sent"  # nothing in the store: a quiet day
    [msg] = inbox(mail_servers, address)
    assert msg["Subject"].startswith("Quiet day")
    assert "none of the 40 recent papers cleared your relevance bar" in msg.get_body(("plain",)).get_content()
    skip = write_setup(tmp_path / "skip", mail_servers.smtp_port, mail_servers.ca_cert, address, quiet_day="skip")
    preview = run(skip, dry_run=True)  # the dry run says what the send will do: nothing
    assert (preview.status, preview.items, preview.note) == ("dry-run", 0, 'quiet_day = "skip"')
    first, again, preview = run(skip), run(skip), run(skip, dry_run=True)
    assert (first.status, first.note) == ("skipped", "")
    # a day skipped is not reported as "already delivered"
    assert (again.status, again.note) == (preview.status, preview.note) == ("skipped", "decided by an earlier run")
    assert len(inbox(mail_servers, address)) == 1


def test_a_quiet_days_note_links_to_the_best_papers_below_the_bar_on_its_page(mail_servers, tmp_path):
    address, _ = mail_servers.new_user("quietbelow")
    config = write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, address)
    settings, store, profile = open_run(config)
    papers = [Paper(f"Nearly relevant paper {i}", abstract="An abstract.", arxiv_id=f"2502.0000{i}") for i in range(3)]
    pids = store.add_papers(papers).paper_ids
    scored = [ScoredPaper(p, score, f"reason {i}") for i, (p, score) in enumerate(zip(papers, [0.15, 0.1, -0.2],
                                                                                      strict=True))]

    def ranker(profile) -> UserRanking:  # nothing clears the floor of 0.2
        return UserRanking(profile, Ranking(picked=[], scored=scored, floor=0.2),
                           {id(p): pid for p, pid in zip(papers, pids, strict=True)}, n_candidates=3)

    try:
        assert deliver_user(store, None, settings, profile, now=NOW, ranker=ranker).status == "sent"
        row = store.digests("ada")[0]
        assert [r["paper_id"] for r in store.digest_items(row["id"], below=True)] == list(pids)
        assert store.sent_paper_ids("ada") == set()  # shown on a page, not sent
    finally:
        store.close()
    [msg] = inbox(mail_servers, address)
    text = msg.get_body(("plain",)).get_content()
    assert "none of the 3 recent papers cleared your relevance bar" in text
    link = re.search(r"Or look through the 3 best papers below your bar and vote on them: (\S+)", text).group(1)
    assert link.startswith(f"{BASE_URL}/digest/") and link.endswith("#below")
    assert link in hrefs(msg.get_body(("html",)).get_content())


# -- failures ------------------------------------------------------------------------------------------------
def test_two_temporary_refusals_then_acceptance_deliver_exactly_one_copy(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["451 4.3.0 try later", "451 4.3.0 try later"]})
    result = run(config)
    assert (result.status, result.attempts) == ("sent", 3)
    assert len(inbox(mail_servers, address)) == 1


def test_a_transient_failure_is_retried_next_run_with_the_same_message_id_and_papers(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["451 4.3.0 later"] * 3})  # retries = 2: all three attempts refused
    failed = run(config)
    assert failed.status == "retry" and "451 4.3.0 later" in failed.error
    settings, store, profile = open_run(config)
    row = store.digest_for("ada", "2026-11-28")
    assert row["status"] == "retry" and "451 4.3.0 later" in row["error"]
    # new, better papers arrive meanwhile: the retry still sends the digest it promised, unchanged
    store.add_papers([Paper("An even better paper", arxiv_id="2501.99999")])
    assert mail_servers.faults()[address] == []
    retried = run(config)
    assert (retried.status, retried.items) == ("sent", 5)
    [msg] = inbox(mail_servers, address)
    assert msg["Message-ID"] == row["message_id"]
    assert "An even better paper" not in msg.get_body(("plain",)).get_content()
    assert store.digest(row["id"])["attempts"] == 2


def test_a_permanent_refusal_is_recorded_with_the_reply_and_not_retried(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["550 5.7.1 refused by policy"]})
    try:
        failed = run(config)
        assert (failed.status, failed.attempts) == ("failed", 1)
        settings, store, _ = open_run(config)
        row = store.digest_for("ada", "2026-11-28")
        assert row["status"] == "failed" and "550 5.7.1 refused by policy" in row["error"]
        again = run(config)  # the next run does not touch it: no claim, no SMTP session
        assert again.status == "already" and "550 5.7.1" in again.error
        assert store.digest(row["id"])["attempts"] == 1
        assert store.sent_paper_ids("ada") == set()  # refused papers never enter the ledger
    finally:
        mail_servers.clear_faults()
    assert mail_servers.messages(address) == []


def test_a_digest_refused_for_a_wrong_address_goes_out_once_the_profile_names_the_right_one(mail_servers, setup):
    config, wrong = setup
    mail_servers.set_faults({wrong: ["550 5.1.1 no such mailbox"]})
    try:
        assert run(config).status == "failed"
        assert run(config).status == "already"  # the same address: not tried again today
    finally:
        mail_servers.clear_faults()
    right, _ = mail_servers.new_user("right")
    profile = config.parent / "profiles" / "ada.toml"
    profile.write_text(profile.read_text().replace(wrong, right))
    preview = run(config, dry_run=True)  # the preview says what the send will do
    assert (preview.status, preview.to, preview.items) == ("dry-run", right, 5)
    fixed = run(config)
    assert (fixed.status, fixed.to, fixed.items) == ("sent", right, 5)
    assert len(inbox(mail_servers, right)) == 1 and mail_servers.messages(wrong) == []
    assert run(config).status == "already" and len(inbox(mail_servers, right)) == 1
    settings, store, _ = open_run(config)
    assert store.digest_for("ada", "2026-11-28")["address"] == right  # where it went, not where it was refused


def test_an_address_the_server_does_not_know_names_the_profile_key_to_fix(mail_servers, tmp_path):
    config = write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, "nobody-here@example.test")
    settings, store, _ = open_run(config)
    store.add_papers(PAPERS)
    store.close()
    failed = run(config)  # the relay answers 550 at RCPT for an address it has no mailbox for
    assert failed.status == "failed" and failed.error.startswith("RCPT TO refused: 550")
    assert failed.error.endswith(f"; check email in {config.parent / 'profiles' / 'ada.toml'}")


def test_retry_failed_composes_a_digest_refused_as_too_large_again_with_the_profiles_new_size(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["552 5.3.4 Message too big for system"]})
    try:
        failed = run(config)
    finally:
        mail_servers.clear_faults()
    assert failed.status == "failed" and "lower max_items in the profile" in failed.error
    settings, store, profile = open_run(config)
    refused = store.digest_for("ada", "2026-11-28")
    assert store.reopen_failed("ada", "2026-11-28", "tried again")
    smaller = deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store, n=2))
    assert (smaller.status, smaller.items) == ("sent", 2)
    [msg] = inbox(mail_servers, address)
    assert msg["Message-ID"] != refused["message_id"], "composed again: nothing of the refused one went out"
    assert len(store.digest_items(refused["id"])) == 2 and len(store.sent_paper_ids("ada")) == 2


def test_one_users_failure_does_not_block_the_others(mail_servers, tmp_path):
    from digest.pipeline import deliver_all

    good, _ = mail_servers.new_user("good")
    config = write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, "nobody@example.test", user="bad")
    write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, good, user="good")
    settings, store, _ = open_run(config, "bad")
    profiles = [load_profile(settings.profiles_path / f"{u}.toml") for u in ("bad", "good")]
    results = deliver_all(store, None, settings, profiles, now=NOW, ranker=fixed_ranker(store))
    assert [(d.user, d.status) for d in results] == [("bad", "failed"), ("good", "sent")]
    assert "550 5.1.1" in results[0].error and len(inbox(mail_servers, good)) == 1


# -- crashes and overlapping runs ------------------------------------------------------------------------------
def test_a_run_killed_after_claiming_is_recovered_at_once_by_the_next_run(mail_servers, setup):
    config, address = setup
    helper = start_helper(config, "claim-and-wait")
    assert helper.stdout.readline().startswith("claimed")
    busy = run(config)
    assert busy.status == "busy"  # the claimer lives: never taken over, however long it takes
    # the loser says which process it left the digest to, as `ps` knows it (not the stored owner string)
    assert re.fullmatch(rf"being sent by process {helper.pid} on this machine since \d{{4}}-\d\d-\d\d "
                        r"\d\d:\d\d:\d\d UTC", busy.error), busy.error
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    recovered = run(config)  # a dead owner on this host: taken over at once, no 30-minute wait
    assert recovered.status == "sent"
    assert len(inbox(mail_servers, address)) == 1
    assert run(config).status == "already"


def test_a_run_killed_after_the_servers_250_is_resent_once_with_the_same_message_id(mail_servers, setup):
    config, address = setup
    helper = start_helper(config, "die-after-250")
    out, err = helper.communicate(timeout=60)
    assert helper.returncode == -signal.SIGKILL, err
    message_id = out.split()[1]
    settings, store, _ = open_run(config)
    row = store.digest_for("ada", "2026-11-28")
    assert row["status"] == "sending" and row["message_id"] == message_id  # the outcome was unknown
    assert store.sent_paper_ids("ada") == set()
    resent = run(config)
    assert resent.status == "sent"
    copies = inbox(mail_servers, address)
    # the documented window: the first copy did arrive; the resend carries the same Message-ID and papers,
    # so clients that de-duplicate by Message-ID show one message
    assert [m["Message-ID"] for m in copies] == [message_id, message_id]
    titles = [re.findall(r"^\d+\. (.*)$", m.get_body(("plain",)).get_content(), re.M) for m in copies]
    assert titles[0] == titles[1] and len(titles[0]) == 5
    assert any("died while sending" in e["message"] for e in store.recent_events())
    assert run(config).status == "already" and len(inbox(mail_servers, address)) == 2


def test_a_delivery_the_database_cannot_record_is_kept_aside_and_never_sent_again(mail_servers, setup):
    from digest.send import send_message

    config, address = setup
    settings, store, profile = open_run(config)

    async def send_then_fill_the_disk(msg, smtp, **kwargs):
        result = await send_message(msg, smtp, **kwargs)  # the real relay takes it (250) ...
        store.db.execute("PRAGMA query_only = 1")  # ... and then SQLite refuses every write, as on a full disk
        return result

    done = deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store), send=send_then_fill_the_disk)
    assert done.status == "sent" and "could not record it (attempt to write a readonly database)" in done.note
    assert f"kept in {store.delivered_path}" in done.note and store.delivered_path.exists()
    assert store.digest_for("ada", "2026-11-28")["status"] == "sending"  # the database still says so
    store.close()
    [first] = inbox(mail_servers, address)
    # the next run (space freed) enters the delivery before it judges the row: no second copy, papers in the ledger
    again = run(config)
    assert again.status == "already" and [m["Message-ID"] for m in inbox(mail_servers, address)] == [first["Message-ID"]]
    settings, store, _ = open_run(config)
    assert store.digest_for("ada", "2026-11-28")["status"] == "sent" and len(store.sent_paper_ids("ada")) == 5
    assert not store.delivered_path.exists()
    store.close()


def test_a_server_that_takes_the_digest_and_drops_the_connection_gets_it_twice_at_most(mail_servers, setup):
    config, address = setup
    # every attempt: the server delivers, then drops the connection before its 250 (a crash, a lost reply)
    mail_servers.set_faults({"deliver_then_disconnect": 10})
    try:
        first = run(config)
        # one resend after the first unconfirmed handover (the server may not have had it), then no more
        assert (first.status, first.items, first.attempts) == ("sent", 5, 2)
        assert first.note.startswith("unconfirmed: handed over, then DATA: SMTPServerDisconnected")
        assert "not sent again; if " + address + " did not get it, `digest send --retry-failed --user ada`" \
               in first.note
        assert len(inbox(mail_servers, address)) == 2
        settings, store, _ = open_run(config)
        row = store.digest_for("ada", "2026-11-28")
        assert (row["status"], row["unconfirmed"]) == ("sent", 2) and row["error"] == first.note
        assert len(store.sent_paper_ids("ada")) == 5, "its papers are not offered again"
        events = [e["message"] for e in store.recent_events() if e["component"] == "send"]
        assert any(m.endswith("it may have arrived; sent once more (same Message-ID)") for m in events)
        assert any(m.endswith("it may have arrived; not sent again (same Message-ID)") for m in events)
        # later runs (the daemon's sweep, cron) leave it: no third copy
        again = run(config)
        assert again.status == "already" and again.note == first.note
        assert len(inbox(mail_servers, address)) == 2
        # the reader says it never came: --retry-failed (store.reopen_failed) hands it over once more, only once
        assert not store.reopen_failed("ada", "2026-11-28", "again"), "only with unconfirmed = True"
        assert store.reopen_failed("ada", "2026-11-28", "again", unconfirmed=True)
        resent = run(config)
        assert (resent.status, resent.attempts) == ("sent", 1) and resent.note.startswith("unconfirmed: handed over")
        assert len(inbox(mail_servers, address)) == 3
        assert {m["Message-ID"] for m in inbox(mail_servers, address)} == {row["message_id"]}
    finally:
        mail_servers.clear_faults()


def test_a_server_that_drops_every_data_command_before_its_354_leaves_the_digest_to_retry_not_recorded_sent(
        mail_servers, setup):
    """Two drops at the DATA command (nothing of the message transmitted) were counted as two unconfirmed
    handovers, so the digest was recorded as sent, 'the server most likely has it', its papers in the ledger:
    a digest that never went out, and never would."""
    from test_send import _DataDropper

    config, address = setup
    dropper = _DataDropper("drop")
    good = config.read_text()
    config.write_text(good.replace(f"port = {mail_servers.smtp_port}", f"port = {dropper.port}")
                      .replace('security = "starttls"', 'security = "plain"'))
    try:
        first = run(config)
    finally:
        dropper.close()
    assert dropper.commands.count(b"DATA") == 3
    assert first.status == "retry" and "before the server's 354 go-ahead (nothing was transmitted)" in first.error, first
    settings, store, _ = open_run(config)
    [row] = store.digests()
    assert row["status"] == "retry" and not row["unconfirmed"] and store.sent_paper_ids("ada") == set()
    store.close()
    config.write_text(good)
    second = run(config)
    assert second.status == "sent" and not second.note, second
    arrived = inbox(mail_servers, address)
    assert len(arrived) == 1 and arrived[0]["Message-ID"] == row["message_id"]


def test_one_unconfirmed_handover_then_a_confirmed_one_is_sent_with_the_doubt_said(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({"deliver_then_disconnect": 1})
    try:
        result = run(config)
    finally:
        mail_servers.clear_faults()
    assert (result.status, result.attempts) == ("sent", 2)
    assert result.note.startswith("an earlier attempt was handed over, then DATA: SMTPServerDisconnected")
    assert result.note.endswith(f"{address} may have it twice (same Message-ID; many mail programs show it once)")
    assert len(inbox(mail_servers, address)) == 2


def test_a_digest_whose_runs_died_while_sending_twice_is_not_handed_over_a_third_time(mail_servers, setup):
    config, address = setup
    helper = start_helper(config, "die-after-250")
    helper.communicate(timeout=60)
    assert helper.returncode == -signal.SIGKILL
    settings, store, _ = open_run(config)
    row = store.digest_for("ada", "2026-11-28")
    # as if a second run had taken it over and died while sending too
    store.db.execute("UPDATE digests SET unconfirmed = 1 WHERE id = ?", [row["id"]])
    store.db.conn.commit()
    closed = run(config)
    assert closed.status == "sent" and closed.note.startswith("unconfirmed: handed over 2 times without the "
                                                              "server's confirmation (run ")
    assert len(inbox(mail_servers, address)) == 1, "the copy of the run that died, and no other"
    assert store.digest_for("ada", "2026-11-28")["status"] == "sent"
    assert run(config).status == "already" and len(inbox(mail_servers, address)) == 1


def test_a_run_killed_while_waiting_to_retry_a_refusal_leaves_no_doubt_and_one_copy(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["451 4.3.0 later"]})
    helper = start_helper(config, "die-while-waiting-to-retry")
    out, err = helper.communicate(timeout=60)
    assert helper.returncode == -signal.SIGKILL and "refused, waiting" in out, err
    settings, store, _ = open_run(config)
    row = store.digest_for("ada", "2026-11-28")
    assert row["status"] == "claimed" and row["message_id"]  # refused for certain: not left 'sending'
    assert run(config).status == "sent"
    assert [m["Message-ID"] for m in inbox(mail_servers, address)] == [row["message_id"]]
    assert not any("died while sending" in e["message"] for e in store.recent_events())
    assert store.digest(row["id"])["error"] is None


def test_a_run_killed_while_waiting_after_an_unconfirmed_handover_counts_it_once(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({"deliver_then_disconnect": 1})  # taken, then the connection drops; then normal
    helper = start_helper(config, "die-while-waiting-to-retry")
    out, err = helper.communicate(timeout=60)
    assert helper.returncode == -signal.SIGKILL and "refused, waiting" in out, err
    settings, store, _ = open_run(config)
    row = store.digest_for("ada", "2026-11-28")
    # the handover was counted before the wait, so the row is out of the blind spot
    assert (row["status"], row["unconfirmed"]) == ("claimed", 1)
    resent = run(config)  # taken over: the one resend it is allowed, not closed as if handed over twice
    assert resent.status == "sent" and resent.note == ""
    assert store.digest(row["id"])["unconfirmed"] == 1
    assert [m["Message-ID"] for m in inbox(mail_servers, address)] == [row["message_id"]] * 2


def test_a_claim_from_another_host_is_taken_over_only_when_stale(mail_servers, setup):
    config, address = setup
    settings, store, _ = open_run(config)
    store.db.execute("INSERT INTO digests (user, period, status, claimed_by, claimed_at, attempts) VALUES "
                     "('ada', '2026-11-28', 'claimed', 'other-host:0b00:4242:1:x', ?, 1)",
                     [datetime.now(UTC).isoformat(timespec="seconds")])
    store.db.conn.commit()
    assert owner_state("other-host:0b00:4242:1:x") == "unknown"
    assert run(config).status == "busy"
    store.db.execute("UPDATE digests SET claimed_at = '2026-01-01T00:00:00+00:00'")
    store.db.conn.commit()
    assert run(config).status == "sent" and len(inbox(mail_servers, address)) == 1


def test_overlapping_runs_send_one_copy(mail_servers, setup):
    config, address = setup
    helpers = [start_helper(config, "race") for _ in range(3)]
    time.sleep(0.5)  # let all three import and wait at the start line
    config.with_name("go").touch()
    statuses = sorted(h.communicate(timeout=60)[0].strip() for h in helpers)
    assert statuses.count("sent") == 1 and set(statuses) <= {"sent", "busy", "already"}, statuses
    assert len(inbox(mail_servers, address)) == 1


def test_yesterdays_unsent_digest_is_superseded_and_its_papers_come_today(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["451 4.3.0 later"] * 3})
    assert run(config).status == "retry"
    settings, store, profile = open_run(config)
    today = deliver_user(store, None, settings, profile, now=NOW.replace(day=29), ranker=fixed_ranker(store))
    assert (today.status, today.items) == ("sent", 5)
    yesterday = store.digest_for("ada", "2026-11-28")
    assert yesterday["status"] == "superseded" and "2026-11-29" in yesterday["error"]
    assert len(inbox(mail_servers, address)) == 1


def test_who_holds_a_claim_is_checked_not_guessed():
    host, boot, pid, start, _ = claim_owner().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid()) and start.isdigit()
    assert owner_state(f"{host}:{boot}:{pid}:{start}:x") == "alive"
    assert owner_state(f"{host}:{boot}:{pid}:{int(start) + 1}:x") == "dead"  # the pid now names another process
    assert owner_state(f"{host}:{'f' * 8}:{pid}:{start}:x") == "dead"  # the host rebooted since
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert owner_state(f"{host}:{boot}:{dead.stdout.strip()}::x") == "dead"
    assert owner_state(f"{host}:{pid}:nonce") == "alive"  # the first format, host:pid:nonce
    assert owner_state(f"elsewhere:{boot}:{pid}:{start}:x") == "unknown"
    assert owner_state("") == "unknown"


# -- the real thing: `digest send` with the real model ---------------------------------------------------------
@pytest.mark.model
def test_digest_send_ranks_with_the_real_model_and_delivers_once(mail_servers, tmp_path):
    address, _ = mail_servers.new_user("cli")
    config = write_setup(tmp_path, mail_servers.smtp_port, mail_servers.ca_cert, address,
                         interest="Neural models of source code: program synthesis, code generation and repair, "
                                  "learning program representations with graphs")

    def digest(*args):
        proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = digest("ingest", "sample_inbox/02-scholar-allamanis-related-research.eml",
                       "sample_inbox/03-scholar-cell-cell-communication-citations.eml")
    assert code == 0, out
    code, out = digest("send", "--dry-run")
    assert code == 0 and "ada: would send" in out and f"to {address}" in out, out
    assert mail_servers.messages(address) == []
    dry = Store(load_settings(config).db_path)
    assert dry.digests() == []  # a dry run records no digest
    dry.close()
    code, out = digest("send")
    assert code == 0 and re.search(rf"ada: \d+ papers sent to {re.escape(address)}", out), out
    [msg] = inbox(mail_servers, address)
    assert "Why: Matches your interest “My interest”" in msg.get_body(("plain",)).get_content()
    code, out = digest("send")
    assert code == 0 and "already delivered for this period" in out, out
    assert len(inbox(mail_servers, address)) == 1


def test_a_renamed_profile_gets_no_second_digest_that_day_nor_papers_it_was_sent_and_keeps_its_votes(setup, tmp_path):
    from digest.pipeline import earlier_names, profile_anchors

    config, address = setup
    outbox = tmp_path / "outbox"
    assert run(config, outbox=outbox).status == "written"
    settings, store, _ = open_run(config)
    store.save_profile_texts({"ada": (settings.profiles_path / "ada.toml").read_text()})  # as every load does
    sent = set(store.sent_paper_ids("ada"))
    store.record_vote("ada", sorted(sent)[0], 1)
    # the reader renames ada.toml to eve.toml (README step 2 suggests profiles/yourname.toml)
    (settings.profiles_path / "ada.toml").rename(settings.profiles_path / "eve.toml")
    eve = load_profile(settings.profiles_path / "eve.toml")
    assert earlier_names(store, eve) == ["ada"]
    preview = deliver_user(store, None, settings, eve, now=NOW, dry_run=True, ranker=fixed_ranker(store))
    assert preview.status == "already" and "already had the 2026-11-28 digest as user 'ada'" in preview.note
    again = deliver_user(store, None, settings, eve, now=NOW, outbox=outbox, ranker=fixed_ranker(store))
    assert (again.status, again.error) == ("already", None)  # not a refusal: `digest send` exits 0
    assert "already had the 2026-11-28 digest as user 'ada'" in again.note
    assert deliver_user(store, None, settings, eve, now=NOW, outbox=outbox, ranker=fixed_ranker(store)).note \
        == again.note
    assert sorted(p.name for p in outbox.glob("*.eml")) == ["ada-2026-11-28.eml"]  # not a second one today
    assert store.digest_for("eve", "2026-11-28")["status"] == "skipped"  # done for the day: no retries
    # later days: what ada was sent is not a candidate again, and what ada taught still counts
    assert store.candidate_papers("eve", "2000-01-01")  # without the earlier name, they would come back
    assert not [p for p, _ in store.candidate_papers("eve", "2000-01-01", also_sent_to=["ada"]) if p in sent]
    anchors, _, _ = profile_anchors(store, eve)
    assert [a.kind for a in anchors if a.kind == "liked"] == ["liked"]
    # and `digest votes eve` lists it (marked with the name it was given under), --bib exports it
    from click.testing import CliRunner

    from digest.cli import cli

    listed = CliRunner().invoke(cli, ["--config", str(config), "votes", "eve"]).output.splitlines()
    assert listed[0] == "eve: 1 vote (times in UTC)"
    assert listed[1].startswith("  👍") and listed[1].endswith("(as ada: an earlier file name of this profile)")
    store.record_vote("eve", sorted(sent)[0], -1)  # a vote under the new name wins over the old one's
    listed = CliRunner().invoke(cli, ["--config", str(config), "votes", "eve"]).output.splitlines()
    assert len(listed) == 2 and listed[1].startswith("  👎") and "(as ada" not in listed[1]
    history = CliRunner().invoke(cli, ["--config", str(config), "votes", "eve", "--history"]).output.splitlines()
    assert history[0] == "eve: 2 changes (times in UTC)" and "(as ada" in history[1] and "(as ada" not in history[2]
    store.record_vote("ada", sorted(sent)[1], 1)
    bib = CliRunner().invoke(cli, ["--config", str(config), "votes", "eve", "--bib"])
    assert bib.output.count("@") == 1  # the 👍 given as ada; the paper eve turned to 👎 is not exported
    # `digest status` counts eve's waiting papers the same way
    from digest.schedule import status_report

    [entry] = status_report(settings, store, now=NOW)["users"]
    assert entry["user"] == "eve"
    assert entry["waiting"] == len(store.candidate_papers("eve", "2000-01-01", also_sent_to=["ada"]))


def rename_profile(config: Path, old: str, new: str) -> None:
    """The reader renames profiles/OLD.toml to NEW.toml after OLD's profile text was saved, as every load does."""
    settings, store, _ = open_run(config, old)
    store.save_profile_texts({old: (settings.profiles_path / f"{old}.toml").read_text()})
    store.close()
    (settings.profiles_path / f"{old}.toml").rename(settings.profiles_path / f"{new}.toml")


def test_a_digest_left_sending_under_the_old_file_name_is_resent_once_not_replaced(mail_servers, setup):
    config, address = setup
    helper = start_helper(config, "die-after-250")  # ada's digest reached the server; the run died before 'sent'
    out, err = helper.communicate(timeout=60)
    assert helper.returncode == -signal.SIGKILL, err
    message_id = out.split()[1]
    rename_profile(config, "ada", "eve")
    preview = run(config, "eve", dry_run=True)  # the preview shows the digest that will go out: ada's, as composed
    assert preview.status == "dry-run" and len(preview.titles) == 5
    resent = run(config, "eve")
    assert resent.status == "sent" and resent.items == 5
    copies = inbox(mail_servers, address)
    # the same digest again (same Message-ID, same papers), as for an unrenamed profile; not a second, other one
    assert [m["Message-ID"] for m in copies] == [message_id, message_id]
    titles = [re.findall(r"^\d+\. (.*)$", m.get_body(("plain",)).get_content(), re.M) for m in copies]
    assert titles[0] == titles[1] == [t + "\r" for t in preview.titles] and len(titles[0]) == 5  # CRLF lines
    settings, store, _ = open_run(config, "eve")
    assert store.digest_for("ada", "2026-11-28")["status"] == "sent" and len(store.sent_paper_ids("ada")) == 5
    eve = store.digest_for("eve", "2026-11-28")
    assert eve["status"] == "skipped" and "left unfinished as user 'ada'" in eve["error"]
    assert run(config, "eve").status == "already" and len(inbox(mail_servers, address)) == 2


def test_an_old_names_digest_that_fails_again_under_the_new_name_is_still_sent_later(mail_servers, setup):
    config, address = setup
    mail_servers.set_faults({address: ["451 4.3.0 later"] * 3})  # retries = 2: all three attempts refused
    first = run(config)
    assert first.status == "retry"
    settings, store, _ = open_run(config)
    message_id = store.digest_for("ada", "2026-11-28")["message_id"]
    rename_profile(config, "ada", "eve")
    mail_servers.set_faults({address: ["451 4.3.0 later"] * 3})
    assert run(config, "eve").status == "retry"  # the takeover failed too: nothing is marked done
    assert store.digest_for("eve", "2026-11-28")["status"] == "retry"
    sent = run(config, "eve")  # the server is fine again: ada's frozen digest goes out, once
    assert sent.status == "sent"
    assert [m["Message-ID"] for m in inbox(mail_servers, address)] == [message_id]
    assert store.digest_for("ada", "2026-11-28")["status"] == "sent"
    assert store.digest_for("eve", "2026-11-28")["status"] == "skipped"
    again = run(config, "eve")
    assert again.status == "already" and again.error is None and len(inbox(mail_servers, address)) == 1


def test_a_claim_under_the_old_file_name_makes_the_new_name_wait_then_gives_way(mail_servers, setup):
    config, address = setup
    helper = start_helper(config, "claim-and-wait")
    assert helper.stdout.readline().startswith("claimed")
    rename_profile(config, "ada", "eve")
    busy = run(config, "eve")  # the run holding ada's claim lives: eve's digest waits, never a second one
    assert busy.status == "busy" and "being sent as user 'ada'" in busy.error
    settings, store, _ = open_run(config, "eve")
    assert store.digest_for("eve", "2026-11-28")["status"] == "retry"
    assert inbox(mail_servers, address) == []
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    sent = run(config, "eve")  # ada's run died before it froze any papers: eve's own digest goes out
    assert sent.status == "sent" and len(inbox(mail_servers, address)) == 1
    assert store.digest_for("ada", "2026-11-28")["status"] == "superseded"
    assert run(config, "eve").status == "already" and len(inbox(mail_servers, address)) == 1


def test_a_preview_under_the_new_name_sees_the_old_names_digest_even_with_a_row_of_its_own(setup, tmp_path):
    config, _ = setup
    rename_profile(config, "ada", "eve")
    settings, store, eve = open_run(config, "eve")
    store.mark_digest(store.claim_digest("eve", "2026-11-28"), "retry", error="waited for ada's run")
    store.mark_digest(store.claim_digest("ada", "2026-11-28"), "sent")  # that run finished meanwhile
    preview = deliver_user(store, None, settings, eve, now=NOW, dry_run=True, ranker=fixed_ranker(store))
    assert preview.status == "already" and "as user 'ada'" in preview.note
    assert run(config, "eve").status == "already"


def test_an_unsubscribe_under_the_old_file_name_still_holds_after_a_rename(setup, tmp_path):
    config, address = setup
    settings, store, _ = open_run(config)
    store.save_profile_texts({"ada": (settings.profiles_path / "ada.toml").read_text()})
    assert store.pause_user("ada", via="web")  # the reader clicked unsubscribe in one of ada's digests
    (settings.profiles_path / "ada.toml").rename(settings.profiles_path / "eve.toml")
    eve = load_profile(settings.profiles_path / "eve.toml")
    d = deliver_user(store, None, settings, eve, now=NOW, outbox=tmp_path / "outbox", ranker=fixed_ranker(store))
    assert d.status == "paused" and "digest resume ada" in d.error
    assert not (tmp_path / "outbox").exists()
    # `digest resume eve` lifts it (the pause is recorded under the earlier name)
    from click.testing import CliRunner

    from digest.cli import cli

    out = CliRunner().invoke(cli, ["--config", str(config), "resume", "eve"]).output
    assert "eve: digests resumed" in out and store.pause_of("ada") is None
    # the day paused at its send time stays without a digest: "the next one goes out at its usual time"
    again = deliver_user(store, None, settings, eve, now=NOW, outbox=tmp_path / "outbox", ranker=fixed_ranker(store))
    assert again.status == "paused" and "resumed since, the next digest goes out at its usual time" in again.error
    assert not (tmp_path / "outbox").exists()


def test_a_temporary_refusal_when_the_database_is_full_too_is_said_and_the_run_goes_on(mail_servers, setup):
    """A 451 from the server and a full disk at once: the handler's writes raised out of deliver_user, so a
    cron `digest send` stopped before the other users."""
    from digest.send import send_message

    config, address = setup
    settings, store, profile = open_run(config)
    mail_servers.set_faults({address: ["451 4.3.0 try later"] * 3})

    async def refused_as_the_disk_fills(msg, smtp, **kwargs):
        try:
            return await send_message(msg, smtp, **kwargs)
        finally:
            store.db.execute("PRAGMA query_only = 1")  # SQLite refuses every write from here, as on a full disk

    done = deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store),
                        send=refused_as_the_disk_fills)
    assert done.status == "retry" and "451" in done.error and "SQLite cannot write the database" in done.error, done
    store.close()
    assert inbox(mail_servers, address) == []
    mail_servers.clear_faults()
    assert run(config).status == "sent" and len(inbox(mail_servers, address)) == 1  # the next run sends it, once


def test_a_digest_handed_over_twice_is_recorded_as_sent_even_when_the_database_cannot_take_it(tmp_path):
    """The branch for a digest already handed over MAX_UNCONFIRMED times met a database that cannot record
    'sent': an UnboundLocalError escaped deliver_user (and stopped `digest send` for the other users)."""
    from digest.store import MAX_UNCONFIRMED

    config = write_setup(tmp_path, 1, "/nonexistent", "ada@example.test")
    settings, store, profile = open_run(config)
    store.add_papers(PAPERS)
    first = store.claim_digest("ada", "2026-11-28")
    ranking = fixed_ranker(store)(profile)
    store.save_digest_items(first, ranking.ranking.picked, [ranking.id_of(i.paper) for i in ranking.ranking.picked],
                            n_candidates=5, subject="Your digest", message_id="<m@example.test>")
    store.db.execute("UPDATE digests SET unconfirmed = ?, status = 'retry' WHERE id = ?", [MAX_UNCONFIRMED, first])
    store.close()
    settings, store, profile = open_run(config)
    read = store.digest

    def read_then_the_disk_fills(digest_id):  # right after the claim: no write fits any more
        row = read(digest_id)
        store.db.execute("PRAGMA query_only = 1")
        return row

    store.digest = read_then_the_disk_fills
    done = deliver_user(store, None, settings, profile, now=NOW, ranker=fixed_ranker(store))
    assert done.status == "sent" and done.subject == "Your digest" and done.items == 5, done
    assert "unconfirmed:" in done.note and f"kept in {store.delivered_path}" in done.note, done.note
    store.close()
    settings, store, _ = open_run(config)
    assert store.claim_digest("ada", "2026-11-28") is None  # entered as sent: never handed over a third time
    assert store.digest(first)["status"] == "sent" and len(store.sent_paper_ids("ada")) == 5
    store.close()


def test_a_database_that_takes_no_claim_is_said_for_every_user_and_stops_none(tmp_path):
    from digest.pipeline import deliver_all

    config = write_setup(tmp_path, 1, "/nonexistent", "ada@example.test")
    write_setup(tmp_path, 1, "/nonexistent", "bob@example.test", user="bob")
    settings, store, _ = open_run(config)
    store.add_papers(PAPERS)
    profiles = [load_profile(settings.profiles_path / f"{u}.toml") for u in ("ada", "bob")]
    store.db.execute("PRAGMA query_only = 1")  # no write fits: the claims cannot be taken
    done = deliver_all(store, None, settings, profiles, now=NOW, ranker=fixed_ranker(store))
    assert [(d.user, d.status) for d in done] == [("ada", "retry"), ("bob", "retry")]
    assert all("SQLite cannot write the database" in d.error for d in done)
    store.close()
