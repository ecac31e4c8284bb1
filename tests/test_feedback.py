"""Feedback, against real things: a uvicorn server on 127.0.0.1, headless Chromium, the loopback SMTP relay and
Dovecot, and the real embedding model for the "a vote changes the next ranking" tests."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urljoin, urlsplit

import httpx
import pytest
import time_machine
from bs4 import BeautifulSoup
from click.testing import CliRunner
from conftest import hold_write_lock

from digest.cli import cli
from digest.config import Secret, Settings, SmtpSettings, load_settings
from digest.feedback import SECURITY_HEADERS, build_server, reply_votes, vote_mailto
from digest.models import Paper, ScoredPaper
from digest.pipeline import (
    _links,
    deliver_all,
    deliver_user,
    earlier_names,
    ingest_raw,
    profile_anchors,
    rank_user,
    reader_votes,
)
from digest.profiles import Profile, load_profile
from digest.store import SCHEMA_VERSION, Store
from digest.tokens import FROM_PAGE, make_token, read_token

REPO = Path(__file__).resolve().parent.parent
NO_ENV_KEY = "DIGEST_FEEDBACK_TEST_NO_SUCH_KEY"  # so the key comes from data_dir/secret.key, never the shell


# ---- a real server in a thread ---------------------------------------------------------------------------
@dataclass
class Live:
    url: str
    settings: Settings
    config: Path
    store: Store
    key: Secret

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10, **kwargs)

    def paper(self, title: str, abstract: str = "", **ids) -> str:
        paper = Paper(title, authors=("A. Author", "B. Author"), abstract=abstract or None, **ids)
        return self.store.add_papers([paper]).paper_ids[0]

    def link(self, user: str, action: str, paper_id: str | None = None) -> str:
        """The link exactly as a digest carries it (pipeline._links)."""
        key = self.settings.web.secret_key(self.settings.data_path)
        return _links(self.settings, key, Profile(user=user, name=user, email=f"{user}@example.test"), paper_id,
                      action)

    def path(self, link: str) -> str:
        assert link.startswith(self.url + "/")
        return link[len(self.url):]


def _write_config(path: Path, tmp: Path, url: str, **web) -> None:
    values = {"base_url": url, "secret_key_env": NO_ENV_KEY, "rate_limit_per_minute": 100_000, **web}
    lines = [f'data_dir = "{tmp / "data"}"', f'profiles_dir = "{tmp / "profiles"}"', 'log_level = "WARNING"', "[web]"]
    lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")


@contextmanager
def running_server(tmp: Path, server: dict | None = None, **web) -> Iterator[Live]:
    """uvicorn serving create_app(settings) on a socket bound to a free loopback port, in a thread; ``server``:
    build_server's options."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    (tmp / "profiles").mkdir(parents=True, exist_ok=True)
    config = tmp / "config.toml"
    _write_config(config, tmp, url, **web)
    settings = load_settings(config)
    server = build_server(settings, "127.0.0.1", sock.getsockname()[1], log_level="warning", **(server or {}))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the feedback server did not start"
        time.sleep(0.01)
    store = Store(settings.db_path)
    try:
        yield Live(url, settings, config, store, settings.web.secret_key(settings.data_path))
    finally:
        server.should_exit = True
        thread.join(15)
        store.close()
        sock.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    with running_server(tmp_path_factory.mktemp("feedback")) as server:
        yield server


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes this connection within ``within`` seconds (recv gives b"" or a reset)."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_idle_half_sent_and_crawling_connections_are_closed_so_readers_get_in(tmp_path):
    # uvicorn alone never closes a connection that sends no request: 100 of them (limit_concurrency) locked
    # every reader out with 503, indefinitely
    with running_server(tmp_path, server={"request_seconds": 0.5}) as live:
        host, port = "127.0.0.1", int(live.url.rsplit(":", 1)[1])
        half = socket.create_connection((host, port))
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        slow = socket.create_connection((host, port))
        target = live.path(live.link("crawler", "unsubscribe")).encode()  # a valid link: the server reads the body
        slow.sendall(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        # with these two, 99 connections: the slow one's request is read whenever the loop gets to it, and at
        # 100 uvicorn would answer it 503 at once; the reader's would be the 100th
        idle = [socket.create_connection((host, port)) for _ in range(97)]
        started = time.monotonic()
        cut = False
        for _ in range(40):  # a byte every 0.3 s: never done within 6 rounds of 0.5 s
            try:
                slow.sendall(b"a")
            except OSError:
                cut = True
            time.sleep(0.3)
            if cut or _closed_by_server(slow, 0.01):
                cut = True
                break
        crawled = time.monotonic() - started
        try:
            assert all(_closed_by_server(s, 5) for s in [*idle, half])
            assert cut and crawled > 2.5, crawled  # a request under way gets its rounds, then no more
            with httpx.Client(base_url=live.url) as client:  # a reader's requests, kept alive, go through
                assert client.get("/healthz").status_code == 200
                time.sleep(0.2)
                assert client.get("/robots.txt").status_code == 200
        finally:
            for s in [*idle, half, slow]:
                s.close()


def test_one_address_cannot_hold_more_than_its_share_of_connections(tmp_path):
    with running_server(tmp_path, server={"per_client": 3}) as live:
        port = int(live.url.rsplit(":", 1)[1])
        # 127.0.0.2 is another machine to the server (only 127.0.0.1 and ::1, a reverse proxy, are exempt)
        mine = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)) for _ in range(4)]
        try:
            assert [_closed_by_server(s, 0.5) for s in mine] == [False, False, False, True]
            mine[0].close()
            time.sleep(0.2)
            again = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            mine.append(again)
            assert not _closed_by_server(again, 0.5)  # a closed one frees its place
            local = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            mine += local
            assert not any(_closed_by_server(s, 0.2) for s in local)
        finally:
            for s in mine:
                s.close()


def test_many_open_connections_do_not_lock_readers_out(tmp_path):
    # uvicorn answers 503 to everyone once limit_concurrency connections are open; at 100, a few addresses kept
    # that many busy (a request every few seconds resets the idle deadline)
    with running_server(tmp_path) as live:
        port = int(live.url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
        try:
            with httpx.Client(base_url=live.url) as client:
                assert client.get("/robots.txt").status_code == 200
        finally:
            for s in held:
                s.close()


def test_a_client_that_leaves_in_the_middle_of_a_post_is_no_server_error(tmp_path, caplog):
    with running_server(tmp_path) as live:
        port = int(live.url.rsplit(":", 1)[1])
        target = live.path(live.link("phone", "up", live.paper("A paper", "Text.", arxiv_id="2501.00909"))).encode()
        with socket.create_connection(("127.0.0.1", port)) as gone:
            gone.sendall(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                         b"\r\nContent-Length: 500\r\n\r\ntoken=abc")
            time.sleep(0.3)
        time.sleep(0.5)
        with httpx.Client(base_url=live.url) as client:  # still serving
            assert client.get("/healthz").status_code == 200
        assert live.store.votes("phone") == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_damaged_or_deleted_database_gives_readers_a_503_and_the_log_one_line_with_the_fix(tmp_path, caplog):
    with running_server(tmp_path) as live:
        pid = live.paper("A paper on sparse attention", "Text.", arxiv_id="2501.00919")
        up = live.path(live.link("dora", "up", pid))
        db = live.settings.db_path
        live.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root, size = (live.store.db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'papers'").fetchone()[0],
                      live.store.db.execute("PRAGMA page_size").fetchone()[0])
        data = bytearray(db.read_bytes())
        data[(root - 1) * size: root * size] = b"\xee" * size
        db.write_bytes(bytes(data))
        with live.client() as client:
            page = client.get(up)
        assert page.status_code == 503 and "this click was not recorded" in page.text
        assert page.headers["retry-after"] == "60"  # "try again later", for a client that reads headers too
        [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert f"{db}: not a usable database (database disk image is malformed)" in line.getMessage()
        assert line.exc_info is None, "one line, not a traceback"
        caplog.clear()
        db.unlink()
        with live.client() as client:
            page = client.get(up)
        assert page.status_code == 503 and not db.exists(), "no empty database started in its place"
        assert "the database file is gone" in caplog.text


def test_the_front_page_does_not_say_nothing_was_changed_as_error_pages_do(tmp_path):
    """The front page (someone opened the server's bare address) is no error: its footer said "Nothing was changed."
    as an error page's does; a refused link still says it."""
    with running_server(tmp_path) as live, live.client() as client:
        front, refused = client.get("/"), client.get("/vote/not-a-token")
    assert front.status_code == 200 and "records the votes" in front.text and "Nothing was changed" not in front.text
    assert refused.status_code in (400, 403, 404) and "Nothing was changed" in refused.text




def test_fifty_clicks_while_another_process_holds_the_write_lock_each_get_the_not_recorded_page_soon(tmp_path,
                                                                                                     caplog,
                                                                                                     monkeypatch):
    """Another process holds the database's write lock for 45 s (an sqlite3 shell with an open transaction) while a
    reader's 50 clicks come in at once. Each click waited SQLite's 30 s in one of the server's 40 worker threads, so
    the 10 beyond those waited 30 s for a thread first: answers took up to 45 s, and with a lock of a minute
    those connections were closed with no answer at all. Now a click waits for the lock 10 s at most (WEB_LOCK_WAIT;
    4 s here, and the store's own wait 12 s instead of 30, to keep the test short): every one is told within about
    two such waits that it was not recorded, and once the lock is gone a click records its vote."""
    import asyncio

    import digest.feedback
    import digest.store

    monkeypatch.setattr(digest.feedback, "WEB_LOCK_WAIT", 4.0)
    monkeypatch.setattr(digest.store, "BUSY_SECONDS", 12.0)
    with running_server(tmp_path) as live:
        pid = live.paper("Mixture of depths for long contexts", "Text.", arxiv_id="2501.00123")
        links = [live.link("omar", action, pid) for action in ("up", "down")]
        holder = hold_write_lock(live.settings.db_path, 22)
        try:
            assert holder.stdout.readline().strip() == "held"

            async def click(client, link):
                start = time.monotonic()
                response = await client.post(live.path(link), data=_form(link))
                return response.status_code, time.monotonic() - start, response.text

            async def clicks():
                async with httpx.AsyncClient(base_url=live.url, timeout=120,
                                             limits=httpx.Limits(max_connections=100)) as client:
                    return await asyncio.gather(*(click(client, links[i % 2]) for i in range(50)))

            answers = asyncio.run(clicks())
            assert holder.poll() is None  # all answered while the lock was still held
        finally:
            holder.wait(timeout=90)
        assert [code for code, _, _ in answers] == [503] * 50
        assert all("this click was not recorded" in text for _, _, text in answers)
        # two waits at most (for a thread, then for the lock: ~8 s), not a thread's wait then the store's own 12 s
        # (the clicks beyond the 40 threads took ~24 s before WEB_LOCK_WAIT)
        assert max(seconds for _, seconds, _ in answers) < 16, sorted(seconds for _, seconds, _ in answers)
        assert live.store.get_vote("omar", pid) == 0 and live.store.vote_events("omar") == []
        lines = {r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR}
        assert lines and all("another process held the database's write lock for 4 s" in line for line in lines)
        with live.client() as client:  # the lock is gone: the reader's next click counts
            assert client.post(live.path(links[1]), data=_form(links[1])).status_code == 303
        assert live.store.get_vote("omar", pid) == -1


def test_the_health_check_answers_while_clicks_waiting_on_the_write_lock_hold_every_worker_thread(tmp_path,
                                                                                                 monkeypatch):
    """During another process's write lock, 45 clicks each wait 10 s (WEB_LOCK_WAIT; 5 s here) for it in the 40
    worker threads that every request shares; /healthz queued behind them and answered only once the first clicks
    had given up (a monitor saw the server as down). It has threads of its own now: it answers while every click
    still waits."""
    import asyncio

    import digest.feedback

    monkeypatch.setattr(digest.feedback, "WEB_LOCK_WAIT", 5.0)
    with running_server(tmp_path) as live:
        pid = live.paper("Sparse attention at scale", "Text.", arxiv_id="2501.00456")
        link = live.link("pia", "up", pid)
        holder = hold_write_lock(live.settings.db_path, 8)
        try:
            assert holder.stdout.readline().strip() == "held"
            done: list[str] = []

            async def click(client):
                await client.post(live.path(link), data=_form(link))
                done.append("click")

            async def health(client):
                await asyncio.sleep(1.0)  # every worker thread taken by a waiting click by now
                answer = await client.get("/healthz")
                done.append(f"health {answer.status_code}")

            async def run():
                async with httpx.AsyncClient(base_url=live.url, timeout=120,
                                             limits=httpx.Limits(max_connections=100)) as client:
                    await asyncio.gather(*(click(client) for _ in range(45)), health(client))

            asyncio.run(run())
        finally:
            holder.wait(timeout=60)
    assert done[0] == "health 200", done[:3]  # answered before any click was (write_problem: locked is not broken)


def snapshot(store: Store) -> list[str]:
    """Every row of every table: equal snapshots mean nothing changed."""
    return list(store.db.conn.iterdump())


def _form(link: str, do: str = "vote", token: str | None = None) -> dict:
    return {"token": token if token is not None else link.rsplit("/", 1)[1], "do": do}


# ---- GET never changes state; POST records once ------------------------------------------------------------
def test_opening_any_link_with_get_or_head_changes_nothing(live):
    pid = live.paper("Sparse attention for long documents", "We sparsify attention.", arxiv_id="2501.00001")
    up, down, unsub = live.link("gina", "up", pid), live.link("gina", "down", pid), live.link("gina", "unsubscribe")
    before = snapshot(live.store)
    with live.client() as client:
        page = client.get(live.path(up))
        assert page.status_code == 200
        assert "Sparse attention for long documents" in page.text
        soup = BeautifulSoup(page.text, "html.parser")
        form = soup.select_one("form")
        assert form["method"] == "post" and form.select_one("button#vote")  # one button, and it POSTs
        assert form.select_one("input[name=token]")["value"] == up.rsplit("/", 1)[1]
        for link in (up, down, unsub, up + "?done=voted", unsub + "?done=paused"):
            for method in ("GET", "HEAD"):
                assert client.request(method, live.path(link)).status_code == 200
        for path in ("/", "/healthz", "/robots.txt", "/static/page.css", "/vote/garbage", "/nowhere"):
            assert client.get(path).status_code < 500
    assert snapshot(live.store) == before
    assert live.store.get_vote("gina", pid) == 0 and live.store.pause_of("gina") is None


def test_a_post_records_the_vote_once_and_a_second_post_changes_nothing(live):
    pid = live.paper("Speculative decoding with draft trees", "Faster LLM inference.", arxiv_id="2501.00002")
    up = live.link("hana", "up", pid)
    with live.client() as client:
        first = client.post(live.path(up), data=_form(up))
        assert first.status_code == 303
        assert first.headers["location"] == f"{up.rsplit('/', 1)[1]}?done=voted"  # relative: proxy-safe
        assert live.store.get_vote("hana", pid) == 1
        after_first = snapshot(live.store)
        again = client.post(live.path(up), data=_form(up))
        assert again.status_code == 303
        assert snapshot(live.store) == after_first  # twice = one vote, not even a second event
        page = client.get(live.path(up) + "?done=voted")
    assert "Thanks, recorded" in page.text and 'id="undo"' in page.text
    assert [(v.value, v.via) for v in live.store.votes("hana")] == [(1, "web")]
    assert [e["value"] for e in live.store.vote_events("hana")] == [1]


def test_the_last_choice_wins_and_undo_removes_only_the_vote_its_link_made(live):
    pid = live.paper("KV-cache quantization at 2 bits", "Compress the cache.", arxiv_id="2501.00003")
    up, down = live.link("ines", "up", pid), live.link("ines", "down", pid)
    with live.client() as client:
        client.post(live.path(up), data=_form(up))
        client.post(live.path(down), data=_form(down))
        assert live.store.get_vote("ines", pid) == -1
        page = client.get(live.path(up))
        assert "You said" in page.text and "Less like this" in page.text and 'id="vote"' in page.text
        # the 👍 page cannot undo the 👎 that another link set, and does not claim it did (a stale tab)
        assert client.post(live.path(up), data=_form(up, "undo")).status_code == 303
        assert live.store.get_vote("ines", pid) == -1
        stale = BeautifulSoup(client.get(live.path(up) + "?done=undone").text, "html.parser")
        assert "Vote removed" not in stale.text
        assert stale.select_one("#status").get_text(" ", strip=True).startswith("Nothing to undo here")
        assert "👎 Less like this" in stale.select_one("#status").text and stale.select_one("#vote")
        undone = client.post(live.path(down), data=_form(down, "undo"))
        assert undone.headers["location"].endswith("?done=undone")
        assert live.store.get_vote("ines", pid) == 0
        assert "Vote removed" in client.get(live.path(down) + "?done=undone").text
    assert [e["value"] for e in live.store.vote_events("ines")] == [1, -1, 0]
    # the check and the removal are one statement: a 👎 cast between a 👍 link's check and its removal stays
    live.store.record_vote("ines", pid, -1)
    assert not live.store.undo_vote("ines", pid, value=1) and live.store.get_vote("ines", pid) == -1
    assert live.store.undo_vote("ines", pid, value=-1) and live.store.get_vote("ines", pid) == 0


def test_a_post_must_carry_the_token_of_its_own_link(live):
    pid = live.paper("Linear attention revisited", "Kernels.", arxiv_id="2501.00004")
    ada_up, bob_up = live.link("ada", "up", pid), live.link("bob", "up", pid)
    before = snapshot(live.store)
    with live.client() as client:
        for data in ({"do": "vote"}, _form(ada_up, token=bob_up.rsplit("/", 1)[1]), _form(ada_up, "delete")):
            response = client.post(live.path(ada_up), data=data)
            assert response.status_code == 400
            assert "Traceback" not in response.text and "<h1" in response.text
    assert snapshot(live.store) == before


# ---- forged, altered, expired, cross-user: refused with a friendly page -----------------------------------
def _swap_user(token: str, user: str) -> str:
    import base64
    import json

    payload, stamp, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["u"] = user
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{forged}.{stamp}.{signature}"


def _bad_links(live: Live, pid: str) -> dict[str, tuple[str, int, str]]:
    """name -> (path, status, words on the page)"""
    token = live.link("ada", "up", pid).rsplit("/", 1)[1]
    with time_machine.travel(datetime.now(UTC) - timedelta(days=live.settings.web.token_max_age_days + 1)):
        old = make_token(live.key, "ada", "up", pid)
    flipped = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    return {
        "altered": (f"/vote/{flipped}", 403, "not valid"),
        "forged with another key": (f"/vote/{make_token(Secret('guessed key'), 'ada', 'up', pid)}", 403, "not valid"),
        "expired": (f"/vote/{old}", 410, "expired"),
        "rewritten for another user": (f"/vote/{_swap_user(token, 'bob')}", 403, "not valid"),
        "vote token on the unsubscribe address": (f"/unsubscribe/{token}", 400, "cannot be used here"),
        "unsubscribe token on the vote address": (f"/vote/{make_token(live.key, 'ada', 'unsubscribe')}", 400,
                                                  "cannot be used here"),
        "cut short": (f"/vote/{token[:40]}", 403, "not valid"),
    }


@pytest.mark.parametrize("case", ["altered", "forged with another key", "expired", "rewritten for another user",
                                  "vote token on the unsubscribe address", "unsubscribe token on the vote address",
                                  "cut short"])
def test_a_bad_token_is_refused_with_a_friendly_page_and_records_nothing(live, case):
    pid = live.paper("Quantized attention kernels", "Int4.", arxiv_id="2501.00005")
    path, status, words = _bad_links(live, pid)[case]
    before = snapshot(live.store)
    with live.client() as client:
        token = path.rsplit("/", 1)[1]
        for response in (client.get(path), client.post(path, data={"token": token, "do": "vote"}),
                         client.post(path, data={"token": token, "do": "pause"}),
                         client.post(path, content=b"List-Unsubscribe=One-Click",
                                     headers={"content-type": "application/x-www-form-urlencoded"})):
            assert response.status_code == status, (case, response.request.method, response.text[:300])
            assert response.headers["content-type"].startswith("text/html")
            assert words in response.text and "Traceback" not in response.text and "File \"" not in response.text
            assert 'id="vote"' not in response.text and 'id="pause"' not in response.text
    assert snapshot(live.store) == before


def test_a_rotated_key_keeps_old_links_working_on_the_server(tmp_path, monkeypatch):
    old_key, new_key = "0ld-key-abcdefabcdef", "n3w-key-0123456789"
    monkeypatch.setenv("DIGEST_FEEDBACK_TEST_ROTATED", f"{new_key},{old_key}")
    with running_server(tmp_path, secret_key_env="DIGEST_FEEDBACK_TEST_ROTATED") as live:
        pid = live.paper("Rotation-safe links", "Keys.", arxiv_id="2501.00006")
        old_link = make_token(Secret(old_key), "ada", "up", pid)
        new_link = live.link("ada", "up", pid).rsplit("/", 1)[1]
        with live.client() as client:
            assert client.get(f"/vote/{old_link}").status_code == 200
            assert client.post(f"/vote/{old_link}", data={"token": old_link, "do": "vote"}).status_code == 303
            assert client.get(f"/vote/{make_token(Secret('dropped-key'), 'ada', 'up', pid)}").status_code == 403
        assert read_token(Secret(new_key), new_link, max_age_days=1).user == "ada"  # new links: newest key
        assert live.store.get_vote("ada", pid) == 1


# ---- headers, limits, health ------------------------------------------------------------------------------
def test_every_response_carries_the_security_headers(live):
    pid = live.paper("Header hygiene", "CSP.", arxiv_id="2501.00007")
    up = live.link("jon", "up", pid)
    with live.client() as client:
        responses = [client.get(live.path(up)), client.get("/nowhere"), client.put(live.path(up)),
                     client.get("/vote/garbage.garbage.garbagegarbagegarbage"), client.get("/static/page.css"),
                     client.get("/healthz"), client.post(live.path(up), data=_form(up)),
                     client.post(live.path(up), content=b"x" * (live.settings.web.max_body_bytes + 1))]
    assert [r.status_code for r in responses] == [200, 404, 405, 403, 200, 200, 303, 413]
    assert sorted(responses[2].headers["allow"].split(", ")) == ["GET", "HEAD", "POST"]  # all it takes
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            if response.url.path == "/static/page.css" and name == "cache-control":
                value = "public, max-age=3600"  # the one response without a token: a page of votes loads it once
            assert response.headers.get(name) == value, (response.url, name)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src" not in csp
        assert response.headers["referrer-policy"] == "no-referrer"  # tokens are in URLs
        assert "server" not in response.headers
        assert "<script" not in response.text


def test_an_oversize_request_is_refused_with_413_however_it_is_sent(live):
    pid = live.paper("Bounded bodies", "413.", arxiv_id="2501.00008")
    up = live.link("kai", "up", pid)
    limit = live.settings.web.max_body_bytes
    padding = "x" * (limit + 10)
    before = snapshot(live.store)

    def chunks():
        yield f"token={up.rsplit('/', 1)[1]}&do=vote&pad=".encode()
        for _ in range(limit // 1000 + 2):
            yield b"y" * 1000

    with live.client() as client:
        declared = client.post(live.path(up), data={**_form(up), "pad": padding})
        streamed = client.post(live.path(up), content=chunks(),
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert "content-length" not in streamed.request.headers  # really chunked
        for response in (declared, streamed):
            assert response.status_code == 413
            assert "Request too large" in response.text
        assert snapshot(live.store) == before
        # just under the limit is fine
        fits = client.post(live.path(up), data={**_form(up), "pad": "x" * (limit - 200)})
        assert fits.status_code == 303 and live.store.get_vote("kai", pid) == 1


def test_a_client_over_the_rate_limit_gets_429_and_others_and_health_checks_do_not(tmp_path):
    with running_server(tmp_path, rate_limit_per_minute=3) as live:
        with live.client() as client:
            assert [client.get("/robots.txt").status_code for _ in range(3)] == [200, 200, 200]
            refused = client.get("/robots.txt")
            assert refused.status_code == 429
            wait = int(refused.headers["retry-after"])
            assert 1 <= wait <= 60
            # whose requests ("this address" read as the link's), that a vote was not recorded, how long to wait
            notes = [p.get_text(" ", strip=True) for p in BeautifulSoup(refused.text, "html.parser").select(".note")]
            assert notes == ["Too many requests came from your connection in the last minute, so this one was not "
                             "handled: if it was a vote, it was not recorded.",
                             f"Wait {wait} second{'' if wait == 1 else 's'}, then open the link or press the button "
                             "again."]
            assert "<title>Too many requests</title>" in refused.text
            assert refused.headers["x-frame-options"] == "DENY"
            assert client.get("/healthz").status_code == client.get("/static/page.css").status_code == 200
            # another reader behind the same (trusted, local) reverse proxy has their own budget
            assert client.get("/robots.txt", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 200


def test_healthz_reports_the_schema(live):
    with live.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "schema": SCHEMA_VERSION}


def _first_health(proc: subprocess.Popen, port: int) -> httpx.Response:
    """The first answer of /healthz of a `digest serve` just started (within 30 s, while it runs)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "digest serve did not come up"
            time.sleep(0.1)


def test_a_database_the_server_cannot_write_stops_serve_and_fails_the_health_check(foreign_store):
    """A feedback server run as another user than the data folder's owner reads the database (SQLite opens it
    read-only without a word) but can record no vote: `digest serve` refuses to start, and /healthz turns 503
    when the file stops being writable under a running server. (As root, the server runs without root's power to
    write any file: see the foreign_store fixture.)"""
    f = foreign_store
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = f.base / "config.toml"
    _write_config(config, f.base, f"http://127.0.0.1:{port}", secret_key_env="DIGEST_READONLY_TEST_KEY")
    config.chmod(0o644)
    command = [*f.as_other, sys.executable, "-m", "digest", "--config", str(config), "serve", "--port", str(port)]
    env = {**os.environ, "DIGEST_READONLY_TEST_KEY": "k" * 64}

    refused = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "feedback server on" not in refused.stdout, refused
    assert refused.stderr.strip() == (
        f"error: {f.db}: digest.db is not writable by this user ({f.user}; it belongs to {f.owner}); this process "
        "cannot write the database, so no vote can be recorded: run the server as the user that owns the data "
        "folder, or give this user write access to the database file and its folder")
    # told by the file's permissions, without opening it: no -wal or -shm of that user is left in the folder
    # (in a folder anyone may write, they would lock the database's owner out)
    assert f.files() == ["digest.db"]

    f.db.chmod(0o666)
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        healthy = _first_health(proc, port)
        assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
        f.db.chmod(f.read_only)
        sick = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert sick.status_code == 503
        assert sick.json() == {"status": "error", "error": "read-only", "schema": SCHEMA_VERSION}
        f.db.chmod(0o666)  # fixed: healthy again, without a restart
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    # the file named, from its permissions: the check opened nothing (opening would have left -wal and -shm files
    # as read-only as the database, and the store unwritable after the database itself was fixed)
    assert "health check failed" in out and f"digest.db is not writable by this user ({f.user}; it belongs to " \
        f"{f.owner})" in out, out


# ---- unsubscribe ------------------------------------------------------------------------------------------
def _profile_file(live: Live, user: str, email_address: str, interests: list[tuple[str, str]], **extra) -> Profile:
    text = [f'name = "{user.title()}"', f'email = "{email_address}"', 'timezone = "UTC"', "max_items = 5",
            "relevance_floor = 0.0"]
    text += [f"{k} = {v}" for k, v in extra.items()]
    for label, description in interests:
        text += ["[[interests]]", f'label = "{label}"', f'description = "{description}"']
    path = live.settings.profiles_path / f"{user}.toml"
    path.write_text("\n".join(text) + "\n")
    return load_profile(path)


def test_the_one_click_post_a_mail_provider_makes_from_a_digests_own_headers_pauses_it(live, tmp_path):
    # RFC 8058 as Gmail and Yahoo do it: the POST goes to the https URL of the delivered message's
    # List-Unsubscribe, with exactly the body of its List-Unsubscribe-Post, no cookie, no page seen before
    from digest.pipeline import UserRanking
    from digest.rank import Ranking

    user = "olive"
    profile = _profile_file(live, user, f"{user}@example.test", [("Anything", "Papers.")])
    paper = Paper("A paper to unsubscribe from", abstract="Text.", arxiv_id="2501.07001")
    pid = live.store.add_papers([paper]).paper_ids[0]
    ranking = UserRanking(profile, Ranking(picked=[ScoredPaper(paper, 0.9, "r")]), {id(paper): pid}, 10)
    done = deliver_user(live.store, None, live.settings, profile, outbox=tmp_path, ranker=lambda _: ranking)
    assert done.status == "written"
    msg = email.message_from_bytes(done.path.read_bytes(), policy=email.policy.default)
    [target] = re.findall(r"<(http[^>]+)>", msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and live.store.pause_of(user) is None
    with httpx.Client(timeout=10, follow_redirects=False) as provider:
        response = provider.post(target, content=msg["List-Unsubscribe-Post"].encode(),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200  # RFC 8058: no redirect to follow, no confirmation to give
    assert live.store.pause_of(user)["via"] == "one-click"
    assert deliver_user(live.store, None, live.settings, profile, outbox=tmp_path,
                        ranker=lambda _: ranking, now=datetime.now(UTC) + timedelta(days=1)).status == "paused"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_pauses_the_user_until_they_resume(live, encoding):
    user = f"lena{encoding[:3]}"
    profile = _profile_file(live, user, f"{user}@example.test", [("Anything", "Papers.")])
    unsub = live.link(user, "unsubscribe")
    with live.client() as client:
        page = client.get(live.path(unsub))
        assert "Pause your digests?" in page.text and live.store.pause_of(user) is None
        # RFC 8058: the mail provider POSTs "List-Unsubscribe=One-Click" to the List-Unsubscribe URL
        if encoding == "urlencoded":
            response = client.post(live.path(unsub), content=b"List-Unsubscribe=One-Click",
                                   headers={"content-type": "application/x-www-form-urlencoded"})
        else:
            response = client.post(live.path(unsub), files={"List-Unsubscribe": (None, "One-Click")})
        assert response.status_code == 200
        assert "your digests are paused" in response.text and f"digest resume {user}" in response.text
        assert live.store.pause_of(user)["via"] == "one-click"
        assert [d.status for d in deliver_all(live.store, None, live.settings, [profile])] == ["paused"]
        # a job that delivers one reader directly (the scheduler) is stopped too, before any ranking
        direct = deliver_user(live.store, None, live.settings, profile)
        assert direct.status == "paused" and f"digest resume {user}" in direct.error
        # nothing was ranked or sent; the day is recorded as the pause's (a resume today waits for tomorrow)
        [day] = live.store.digests(user)
        assert (day["status"], day["n_items"], day["message_id"]) == ("skipped", None, None)
        assert day["error"].startswith("paused at its send time: unsubscribed by link (one-click)")
        assert client.post(live.path(unsub), content=b"List-Unsubscribe=One-Click",
                           headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 200
        # the page offers the way back
        assert 'id="resume"' in client.get(live.path(unsub)).text
        resumed = client.post(live.path(unsub), data=_form(unsub, "resume"))
        assert resumed.status_code == 303 and live.store.pause_of(user) is None
        assert "on again" in client.get(live.path(unsub) + "?done=resumed").text
    # the profile file was never touched: pausing lives in the store
    assert "paused" not in Path(profile.path).read_text()


def test_unsubscribe_links_keep_working_after_vote_links_expire(live):
    with time_machine.travel(datetime.now(UTC) - timedelta(days=400)):
        old = make_token(live.key, "mona", "unsubscribe")
    with live.client() as client:
        response = client.post(f"/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and live.store.pause_of("mona") is not None


def test_a_pages_unsubscribe_link_expires_with_the_page_though_the_emails_never_does(live):
    link, _ = sent_digest(live, "ulla", "2025-11-05", ["Some paper"])
    with live.client() as client:
        page = BeautifulSoup(client.get(live.path(link)).text, "html.parser")
    footer = next(a["href"] for a in page.select("footer a") if "/unsubscribe/" in a["href"])
    assert read_token(live.key, footer.rsplit("/", 1)[1], max_age_days=None).paper_id == FROM_PAGE
    # the same link from a page opened with a vote link of 61 days ago: a shared 👍 link must not pause ulla
    old = make_token(live.key, "ulla", "unsubscribe", FROM_PAGE,
                     issued_at=time.time() - (live.settings.web.token_max_age_days + 1) * 86400)
    with live.client() as client:
        shown = client.get(f"/unsubscribe/{old}")
        clicked = client.post(f"/unsubscribe/{old}", data={"token": old, "do": "pause"})
        one_click = client.post(f"/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"})
    assert shown.status_code == clicked.status_code == one_click.status_code == 410, one_click.text
    assert "expired" in clicked.text and live.store.pause_of("ulla") is None


def test_the_resume_and_votes_commands(live):
    pid = live.paper("Program repair with graph models", "Fix bugs.", arxiv_id="2501.00009")
    live.store.record_vote("nora", pid, -1, via="email")
    live.store.pause_user("nora", via="one-click")
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", str(live.config), "votes", "nora"])
    assert listed.exit_code == 0, listed.output
    assert "👎" in listed.output and "Program repair with graph models" in listed.output and "email" in listed.output
    assert "digest resume nora" in listed.output
    resumed = runner.invoke(cli, ["--config", str(live.config), "resume", "nora"])
    assert resumed.exit_code == 0 and "resumed" in resumed.output
    assert live.store.pause_of("nora") is None
    again = runner.invoke(cli, ["--config", str(live.config), "resume", "nora"])
    assert "nothing to do" in again.output
    profiles = live.config.parent / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "zoe.toml").write_text('email = "zoe@example.org"\n[[interests]]\nlabel = "Compilers"\n')
    assert "zoe: no votes yet" in runner.invoke(cli, ["--config", str(live.config), "votes", "zoe"]).output
    # nora has no profile file but votes and a pause in the store: known; a name that is neither is an error
    unknown = runner.invoke(cli, ["--config", str(live.config), "votes", "nobody"])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output and "zoe" in unknown.output


def test_a_renamed_readers_unsubscribe_page_shows_and_lifts_a_pause_made_under_their_earlier_name(live):
    # pia.toml became pia2.toml (same address); the Unsubscribe button of an old email paused "pia", which
    # stops pia2's digests: the unsubscribe page of pia2's newer emails must say so and its Resume must lift it
    live.store.save_profile_texts({"pia": 'email = "pia@example.test"\n', "pia2": 'email = "PIA@example.test"\n'})
    profile = _profile_file(live, "pia2", "pia@example.test", [("Anything", "Papers.")])
    old, new = live.link("pia", "unsubscribe"), live.link("pia2", "unsubscribe")
    try:
        with live.client() as client:
            assert client.post(live.path(old), data={"List-Unsubscribe": "One-Click"}).status_code == 200
            assert deliver_user(live.store, None, live.settings, profile).status == "paused"
            page = client.get(live.path(new)).text
            assert "Your digests are paused." in page and 'id="resume"' in page, page
            assert client.post(live.path(new), data=_form(new, "resume")).status_code == 303
            assert "on again" in client.get(live.path(new) + "?done=resumed").text
            assert live.store.pause_of("pia") is None and live.store.pause_of("pia2") is None
            assert "Pause your digests?" in client.get(live.path(old)).text
    finally:
        Path(profile.path).unlink()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_digest_serve_runs_the_app_and_stops_on_sigterm(tmp_path, stop):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.toml"
    _write_config(config, tmp_path, f"http://127.0.0.1:{port}")
    (tmp_path / "profiles").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "serve", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        response = _first_health(proc, port)
        assert response.json()["status"] == "ok"
        proc.send_signal(stop)
        if stop == signal.SIGTERM:
            # uvicorn shuts down gracefully, then re-raises SIGTERM so a process manager sees a clean signal stop
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
            assert f"http://127.0.0.1:{port}" in proc.stdout.read()
        else:  # Ctrl-C, the way the command's help says to stop it: a clean stop, not click's "Aborted!" and 1
            assert proc.wait(timeout=15) == 0
            out = proc.stdout.read()
            assert "stopped (Ctrl-C)" in out and "Aborted" not in out, out
            # the banner and the stop line, not uvicorn's own "INFO:     Started server process [580]" beside them
            assert "Started server process" not in out and "INFO:" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_digest_serve_on_a_port_in_use_says_so_in_one_line_before_claiming_to_serve(tmp_path):
    config = tmp_path / "config.toml"
    _write_config(config, tmp_path, "http://127.0.0.1:1")
    (tmp_path / "profiles").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "serve", "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "feedback server on" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"error: web: cannot listen on 127.0.0.1:{port} (Address already in use); give a free one with --port (or "
        "set web.port), or stop what listens there"]


@pytest.mark.parametrize("args, says", [
    (["--port", "99999"], "Invalid value for '--port': 99999 is not in the range 1<=x<=65535."),
    (["--host", "nosuchhost.invalid"], "no such host"),
    (["--host", "192.0.2.1"], "192.0.2.1 is not an address of this machine"),  # TEST-NET-1: never local
])
def test_digest_serve_on_a_bad_port_or_host_says_which_and_how_to_fix_it(tmp_path, args, says):
    config = tmp_path / "config.toml"
    _write_config(config, tmp_path, "http://127.0.0.1:1")
    (tmp_path / "profiles").mkdir()
    proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "serve", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr
    if "--host" in args:  # the host is the problem, not the port
        assert "give --host an address of this machine" in proc.stderr and "--port" not in proc.stderr


def test_an_embedded_server_leaves_signal_handling_to_its_host_process(tmp_path):
    """The scheduler runs the app inside its own asyncio loop and owns SIGTERM."""
    import asyncio

    (tmp_path / "profiles").mkdir()
    _write_config(tmp_path / "config.toml", tmp_path, "http://127.0.0.1:1")
    settings = load_settings(tmp_path / "config.toml")

    async def host_process():
        server = build_server(settings, "127.0.0.1", 0, handle_signals=False)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        during = signal.getsignal(signal.SIGTERM)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        return during, status

    before = signal.getsignal(signal.SIGTERM)
    during, status = asyncio.run(host_process())
    assert status == 200 and during is before


# ---- votes are kept ---------------------------------------------------------------------------------------
def test_votes_survive_a_restart_and_a_profile_edit(tmp_path):
    (tmp_path / "profiles").mkdir()
    path = tmp_path / "profiles" / "olga.toml"
    path.write_text('email = "olga@example.test"\n[[interests]]\nlabel = "Graphs"\n')
    store = Store(tmp_path / "d.db")
    pid = store.add_papers([Paper("A liked paper about graphs", arxiv_id="2501.00010")]).paper_ids[0]
    store.record_votes("olga", [(pid, 1)], via="email")
    store.close()
    path.write_text('name = "Olga"\nemail = "olga@example.test"\nmax_items = 3\n'
                    '[[interests]]\nlabel = "Something else entirely"\n')
    store = Store(tmp_path / "d.db")
    assert [(v.paper_id, v.value, v.via) for v in store.votes("olga")] == [(pid, 1, "email")]
    anchors, _, _ = profile_anchors(store, load_profile(path))
    assert [a.kind for a in anchors] == ["facet", "liked"]


def test_an_existing_database_gets_the_pauses_table_and_keeps_its_data(tmp_path):
    import sqlite3

    import sqlite_utils

    from digest.store import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO votes (user, paper_id, value, via) VALUES ('ada', 'arxiv:1', 1, 'web')")
    db.conn.commit()
    db.conn.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.get_vote("ada", "arxiv:1") == 1
    assert store.pause_user("ada") is True and store.pause_user("ada") is False


# ---- votes by email: the pure part ------------------------------------------------------------------------
@pytest.mark.parametrize("text, votes", [
    ("+1 -3", [(1, 1), (3, -1)]),
    ("+2, +5\nthanks!", [(2, 1), (5, 1)]),
    ("  −4 \n", [(4, -1)]),  # a phone's minus sign
    ("+1\n-- \nAda, +44 20 7946 0958\n+9", [(1, 1)]),  # nothing after the signature separator
    ("Call me at +1 555 0100", []),  # a vote must stand on a line of its own
    ("-3 degrees outside", []),
    ("> +4\n+6", [(6, 1)]),  # quoted lines are not the reader's
    # a reply written below or between the quoted lines (mutt, Thunderbird): the unmarked lines are the reader's
    ("+2\n\nOn Mon, 3 Mar 2025 at 07:30, digest <d@x> wrote:\n> 1. A paper\n+7", [(2, 1), (7, 1)]),
    ("On Mon, 3 Mar 2025, digest wrote:\n> 1. Paper A\n> why\n+1\n\n> 2. Paper B\n-2\n> 3. Paper C\n\n"
     "-- \nAda\n+3", [(1, 1), (2, -1)]),
    ("Le lundi 3 mars 2025, digest a écrit :\n\n> 1. Paper A\n+1", [(1, 1)]),
    # ...but a quote that is not marked line by line (Outlook, or a forward) is all quoted, votes in it too
    ("+1\n\nOn Mon, 3 Mar 2025, digest wrote:\n1. Paper A\n+1 -3", [(1, 1)]),
    ("-1\n-----Original Message-----\nFrom: digest <d@x>\n+1 -3\n> +4\n+5", [(1, -1)]),
    ("+12, +13.\nThanks!", [(12, 1), (13, 1)]),  # a vote may end its sentence
    ("+1\n\nVon: digest <d@x>\nGesendet: Montag, 3. März 2025 07:30\n-7", [(1, 1)]),  # Outlook in German,
    ("+1\n\nDe : digest <d@x>\nEnvoyé : lundi 3 mars 2025 07:30\n-7", [(1, 1)]),  # French: not quoted with ">"
    ("+1\n\n发件人: digest <d@x>\n-7", [(1, 1)]),
    ("+1\n\nEl lun, 3 mar 2025 a las 7:30, digest (<d@x>) escribió:\n-7", [(1, 1)]),
    # Outlook's header block in a language not listed: its first line names the sender's address, and what follows
    # (here the reader's earlier reply, "+1 -3") is quoted, not voted again
    ("-1\n\nKimden: Ada <ada@example.test>\nGönderildi: 3 Mart 2025 Pazartesi 07:30\n\n+1 -3", [(1, -1)]),
    ("-1\n\nFeladó: Ada <ada@example.test>\nElküldve: 2025. március 3.\n+1 -3", [(1, -1)]),
    ("-1\n\n보낸 사람: Ada <ada@example.test>\n+1 -3", [(1, -1)]),
    ("-1\n\nLähettäjä: Ada Lovelace [mailto:ada@example.test]\n+1 -3", [(1, -1)]),
    ("", []),
])
def test_reply_votes_reads_only_the_readers_own_vote_lines(text, votes):
    assert reply_votes(text) == votes


def test_a_mailto_link_carries_the_token_in_its_subject():
    link = vote_mailto("replies@example.test", "abc.def.ghi", "down", "A <b>long</b> title " * 10)
    parts = urlsplit(link)
    assert parts.scheme == "mailto" and unquote(parts.path) == "replies@example.test"
    query = parse_qs(parts.query)
    assert query["subject"][0].endswith("[vote:abc.def.ghi]") and query["subject"][0].startswith("👎")
    assert "…" in query["subject"][0]  # a long title is shortened
    assert "Send this email as it is" in query["body"][0]


def test_a_prepared_vote_email_counts_whatever_the_papers_title_says(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    key = settings.web.secret_key(settings.data_path)
    token = make_token(key, "ada", "up", pids[1])
    planted = "KV cache [vote:aaaaaaaaaa.bbbbbb.cccccccccccccccccccc] tricks"  # an alert's title
    subject = parse_qs(urlsplit(vote_mailto("r@example.test", token, "up", planted)).query)["subject"][0]
    assert subject.count("[vote:") == 1 and subject.endswith(f"[vote:{token}]")
    vote = EmailMessage()
    vote["From"], vote["To"], vote["Message-ID"] = "ada@example.test", "r@example.test", "<m2@x>"
    for uid, written in enumerate([subject, f"👍 Like: {planted} [vote:{token}]"], 1):  # also one typed by hand
        del vote["Subject"]
        vote["Subject"] = written
        del vote["Message-ID"]
        vote["Message-ID"] = f"<m{uid}@x>"
        vote.set_content("Send this email as it is")
        assert ingest_raw(store, vote.as_bytes(), mailbox="INBOX", uid=uid, settings=settings)[0] == "feedback"
        assert store.get_vote("ada", pids[1]) == 1
        store.undo_vote("ada", pids[1])


def _replies_setup(tmp_path) -> tuple[Settings, Store, list[str]]:
    """A store holding one sent digest of three items for ada (Message-ID <d1@example.test>)."""
    from digest.models import ScoredPaper

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.toml").write_text('email = "Ada@Example.test"\n[[interests]]\nlabel = "x"\n')
    _write_config(tmp_path / "config.toml", tmp_path, "http://127.0.0.1:1")
    settings = load_settings(tmp_path / "config.toml")
    store = Store(settings.db_path)
    papers = [Paper(f"Paper number {i} about graphs", arxiv_id=f"2501.1000{i}") for i in range(3)]
    pids = list(store.add_papers(papers).paper_ids)
    digest_id = store.claim_digest("ada", "2025-03-03")
    store.save_digest_items(digest_id, [ScoredPaper(p, 0.5, "why") for p in papers], pids, n_candidates=3,
                            message_id="<d1@example.test>")
    store.mark_digest(digest_id, "sent")
    return settings, store, pids


def _raw_reply(sender: str, body: str, *, html: bool = False, subject: str = "Re: digest",
               message_id: str = "<r1@example.test>") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, "replies@example.test", subject, message_id
    msg["In-Reply-To"] = "<d1@example.test>"
    msg.set_content(body, subtype="html" if html else "plain")
    return msg.as_bytes()


def test_an_html_only_reply_counts_the_votes_above_the_quote_and_the_sender_case_does_not_matter(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    html = ("<div>+1</div><div>-3<br></div><div class='gmail_quote'>On Mon, digest wrote:"
            "<blockquote>+2 1. Paper number 0</blockquote></div>")
    status, report = ingest_raw(store, _raw_reply("ada@EXAMPLE.test", html, html=True), mailbox="INBOX", uid=7,
                                settings=settings)
    assert (status, report.feedback) == ("feedback", 1)
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[0]: 1, pids[2]: -1}
    # the same message again (same UID, or the same Message-ID in another folder) changes nothing
    assert ingest_raw(store, _raw_reply("ada@example.test", "-1"), mailbox="INBOX", uid=7,
                      settings=settings)[0] == "seen"
    assert ingest_raw(store, _raw_reply("ada@example.test", "-1"), mailbox="Archive", uid=1,
                      settings=settings)[0] == "duplicate"
    assert store.get_vote("ada", pids[0]) == 1


def test_an_email_vote_counts_as_given_when_it_arrived_so_a_later_web_vote_stands(tmp_path):
    """The poller reads a reply minutes (or, with the daemon down, hours) after it arrived; a vote the reader
    gave on the web in between is their last choice and stands. Its token's age is judged at its arrival."""
    settings, store, pids = _replies_setup(tmp_path)
    now = datetime.now(UTC)
    store.record_vote("ada", pids[0], -1, via="web")  # 👎 on the web...
    reply = _raw_reply("ada@example.test", "+1 +2", message_id="<late@x>")  # ...after replying "+1 +2" an hour ago
    assert ingest_raw(store, reply, mailbox="INBOX", uid=1, settings=settings,
                      received_at=now - timedelta(hours=1))[0] == "feedback"
    assert store.get_vote("ada", pids[0]) == -1  # the later web vote stands
    assert store.get_vote("ada", pids[1]) == 1  # a paper not voted on since: the email's vote counts
    assert {e["at"] for e in store.vote_events("ada") if e["via"] == "email"} == {
        (now - timedelta(hours=1)).isoformat(timespec="seconds")}  # recorded as given when it arrived
    store.undo_vote("ada", pids[1])  # an undo since is a later choice too
    again = _raw_reply("ada@example.test", "+2", message_id="<late2@x>")
    ingest_raw(store, again, mailbox="INBOX", uid=2, settings=settings, received_at=now - timedelta(minutes=30))
    assert store.get_vote("ada", pids[1]) == 0
    # a reply that arrived after the web vote is the last choice
    newer = _raw_reply("ada@example.test", "+1", message_id="<newer@x>")
    ingest_raw(store, newer, mailbox="INBOX", uid=3, settings=settings, received_at=datetime.now(UTC))
    assert store.get_vote("ada", pids[0]) == 1
    # a prepared vote email sent on a link's last valid day, read two days later, still counts
    key = settings.web.secret_key(settings.data_path)
    with time_machine.travel(now - timedelta(days=settings.web.token_max_age_days + 1), tick=False):
        token = make_token(key, "ada", "down", pids[2])
    prepared = _raw_reply("ada@example.test", "Send this email as it is", subject=f"👎 Less like this: x [vote:{token}]",
                          message_id="<prepared@x>")
    assert ingest_raw(store, prepared, mailbox="INBOX", uid=4, settings=settings,
                      received_at=now - timedelta(days=2))[0] == "feedback"
    assert store.get_vote("ada", pids[2]) == -1
    # ...but not one that arrived when the link had expired
    store.undo_vote("ada", pids[2])
    expired = prepared.replace(b"<prepared@x>", b"<expired@x>")
    assert ingest_raw(store, expired, mailbox="INBOX", uid=5, settings=settings,
                      received_at=now)[0] == "feedback_rejected"


@pytest.mark.mail
def test_the_poller_gives_an_email_vote_the_time_the_server_received_it(tmp_path, mail_servers, monkeypatch):
    from digest.config import ImapSettings
    from digest.ingest import poll_all

    settings, store, pids = _replies_setup(tmp_path)
    mailbox, password = mail_servers.new_user("ada-replies")
    monkeypatch.setenv("DIGEST_FEEDBACK_TEST_IMAP", password)
    imap = ImapSettings(host="127.0.0.1", port=mail_servers.imap_port, security="plain", username=mailbox,
                        password_env="DIGEST_FEEDBACK_TEST_IMAP")
    now = datetime.now(UTC)
    store.record_vote("ada", pids[0], 1, via="web")
    mail_servers.append(mailbox, _raw_reply("ada@example.test", "-1\n-2", message_id="<early@x>"),
                        arrived=now - timedelta(hours=2))  # replied before the 👍 above, read only now
    report = poll_all(store, dataclasses.replace(settings, imap=imap))
    assert report.error is None, report.error
    assert [m["status"] for m in store.messages() if m["kind"] == "feedback"] == ["feedback"]
    assert store.get_vote("ada", pids[0]) == 1 and store.get_vote("ada", pids[1]) == -1
    [event] = [e for e in store.vote_events("ada") if e["via"] == "email"]
    assert abs(datetime.fromisoformat(event["at"]) - (now - timedelta(hours=2))) < timedelta(seconds=2)


def test_a_profile_with_a_subaddress_takes_votes_from_the_mailboxs_own_address_only(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    (settings.profiles_path / "ada.toml").write_text('email = "Ada+Papers@Example.test"\n[[interests]]\nlabel = "x"\n')
    outcomes = {}
    for uid, sender in enumerate(["ada@example.test", "ada+other@example.test", "bob@example.test",
                                  "ada@elsewhere.test", "ada+papers@example.test"], 1):
        reply = _raw_reply(sender, f"+{uid % 3 + 1}", message_id=f"<s{uid}@x>")
        outcomes[sender] = ingest_raw(store, reply, mailbox="INBOX", uid=uid, settings=settings)[0]
    assert outcomes == {"ada@example.test": "feedback", "ada+other@example.test": "feedback_rejected",
                        "bob@example.test": "feedback_rejected", "ada@elsewhere.test": "feedback_rejected",
                        "ada+papers@example.test": "feedback"}


def test_a_reply_without_a_message_id_read_again_does_not_undo_a_later_web_vote(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    raw = _raw_reply("ada@example.test", "+1")
    raw = re.sub(rb"Message-ID: [^\r\n]*\r?\n", b"", raw, flags=re.IGNORECASE)
    assert b"message-id" not in raw.lower()
    assert ingest_raw(store, raw, mailbox="INBOX", uidvalidity=1, uid=5, settings=settings)[0] == "feedback"
    assert store.get_vote("ada", pids[0]) == 1
    store.record_vote("ada", pids[0], -1, via="web")  # changed her mind, on the web
    # the server renumbered its mailbox (a new UIDVALIDITY): every message is read again
    assert ingest_raw(store, raw, mailbox="INBOX", uidvalidity=2, uid=5, settings=settings)[0] == "duplicate"
    assert store.get_vote("ada", pids[0]) == -1
    # another reply without a Message-ID is another message
    other = raw.replace(b"+1", b"+2")
    assert ingest_raw(store, other, mailbox="INBOX", uidvalidity=2, uid=6, settings=settings)[0] == "feedback"
    assert store.get_vote("ada", pids[1]) == 1


def test_an_html_reply_written_below_the_quote_counts_the_votes_below_it(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    # Thunderbird, replying below the quote: its attribution line, the quoted digest, then the reader's votes
    html = ("<p></p><div class='moz-cite-prefix'>On 3/3/25 07:30, digest wrote:<br></div>"
            "<blockquote type='cite'><p>1. Paper number 0 about graphs</p><p>+3</p></blockquote>"
            "<p>+1</p><blockquote type='cite'><p>2. Paper number 1 about graphs</p></blockquote><p>-2</p>"
            "<pre class='moz-signature'>-- \nAda\n+3</pre>")
    assert ingest_raw(store, _raw_reply("ada@example.test", html, html=True), mailbox="INBOX", uid=1,
                      settings=settings)[0] == "feedback"
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[0]: 1, pids[1]: -1}


def test_an_outlook_reply_does_not_replay_the_votes_of_the_earlier_reply_it_quotes(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    store.record_votes("ada", [(pids[1], 1)], "web")  # after an earlier "-2" by email, a 👍 on the web
    # Outlook on the web: the earlier message follows its header block, not inside it nor in a blockquote
    html = ("<div>+3</div><div id='appendonsend'></div><hr><div id='divRplyFwdMsg'><b>From:</b> Ada<br>"
            "<b>Sent:</b> Monday</div><div><div>-2</div><div>-1</div></div>")
    assert ingest_raw(store, _raw_reply("ada@example.test", html, html=True), mailbox="INBOX", uid=1,
                      settings=settings)[0] == "feedback"
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[1]: 1, pids[2]: 1}
    # bare text after the header block is quoted too; an Outlook header inside a Gmail quote is the quote's
    bare = "<div>+1</div><div id='divRplyFwdMsg'><b>From:</b> Ada</div>\n-2\n"
    gmail = ("<div class='gmail_quote'>On Mon, Ada wrote:<div id='divRplyFwdMsg'>From: digest</div>-1</div>"
             "<div>-3</div>")
    for uid, (html, expected) in enumerate([(bare, {pids[0]: 1, pids[1]: 1, pids[2]: 1}),
                                            (gmail, {pids[0]: 1, pids[1]: 1, pids[2]: -1})], 2):
        assert ingest_raw(store, _raw_reply("ada@example.test", html, html=True, message_id=f"<o{uid}@x>"),
                          mailbox="INBOX", uid=uid, settings=settings)[0] == "feedback"
        assert {v.paper_id: v.value for v in store.votes("ada")} == expected


def test_an_outlook_reply_in_another_language_does_not_replay_the_earlier_reply_it_quotes(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    # Outlook for Windows in Turkish: its header block ("Kimden:" = From) is no #divRplyFwdMsg, the quoted earlier
    # reply "+1 -3" follows it unmarked; the reader's new vote is "-1"
    html = ("<div><p class=MsoNormal>-1</p></div><div style='border:none;border-top:solid #E1E1E1 1.0pt'>"
            "<p class=MsoNormal><b>Kimden:</b> Ada &lt;<a href='mailto:ada@example.test'>ada@example.test</a>&gt;<br>"
            "<b>Gönderildi:</b> 3 Mart 2025 Pazartesi 07:30</p></div><p class=MsoNormal>+1 -3</p>")
    assert ingest_raw(store, _raw_reply("ada@example.test", html, html=True), mailbox="INBOX", uid=1,
                      settings=settings)[0] == "feedback"
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[0]: -1}


def test_a_vote_token_in_a_digests_subject_made_of_titles_does_not_stop_the_replies_to_it(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    key = settings.web.secret_key(settings.data_path)
    (tmp_path / "profiles" / "bob.toml").write_text('email = "bob@example.test"\n[[interests]]\nlabel = "x"\n')
    bobs = make_token(key, "bob", "up", pids[0])  # even a real token of another reader, put in a title
    for uid, planted in enumerate(["[vote:aaaaaaaaaa.bbbbbb.cccccccccccccccccccc]", f"[vote:{bobs}]"], 1):
        reply = _raw_reply("ada@example.test", "+2 -3", subject=f"Re: {planted} Speculative decoding + 2 more",
                           message_id=f"<r{uid}@x>")
        assert ingest_raw(store, reply, mailbox="INBOX", uid=uid, settings=settings)[0] == "feedback"
        assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[1]: 1, pids[2]: -1}
        store.undo_vote("ada", pids[1]), store.undo_vote("ada", pids[2])
    assert store.votes("bob") == []
    # a mailto vote (a new message with its token, no reply headers) still counts as before
    mine = make_token(key, "ada", "down", pids[0])
    vote = EmailMessage()
    vote["From"], vote["To"], vote["Subject"] = "ada@example.test", "r@example.test", f"👎 x [vote:{mine}]"
    vote["Message-ID"] = "<m1@x>"
    vote.set_content("Send this email as it is")
    assert ingest_raw(store, vote.as_bytes(), mailbox="INBOX", uid=9, settings=settings)[0] == "feedback"
    assert store.get_vote("ada", pids[0]) == -1


@pytest.mark.parametrize("from_lines", [
    ["From: ada@example.test <mallory@evil.test>"],        # Python's parser takes ada, the provider mallory
    ["From: ada@example.test)<mallory@evil.test>"],
    ["From: <ada@example.test> <mallory@evil.test>"],
    ["From: ada@example.test, mallory@evil.test"],         # two authors
    ["From: Ada <ada@example.test>", "From: mallory@evil.test"],  # two From lines
    ['From: "ada@example.test" <mallory@evil.test>'],     # ada only in the display name
    [],
])
def test_a_reply_whose_from_header_is_not_one_clean_address_of_the_user_is_no_vote(tmp_path, from_lines):
    settings, store, pids = _replies_setup(tmp_path)
    raw = "\r\n".join([*from_lines, "To: replies@example.test", "Subject: Re: digest", "Message-ID: <r9@example.test>",
                        "In-Reply-To: <d1@example.test>", "", "+1", ""]).encode()
    status, _ = ingest_raw(store, raw, mailbox="INBOX", uid=9, settings=settings)
    assert status == "feedback_rejected" and store.votes("ada") == []
    [row] = store.messages("feedback_rejected")
    assert "a vote counts only from the user's own address" in row["error"] or "is not the address" in row["error"]
    # the reader's own mail program writes one clean address, display name and all: that one counts
    clean = raw.replace(b"r9@", b"r10@")
    for line in from_lines:
        clean = clean.replace(line.encode() + b"\r\n", b"")
    clean = b"From: =?utf-8?q?Ada_L=C3=B6?= <ada@example.test>\r\n" + clean
    assert ingest_raw(store, clean, mailbox="INBOX", uid=10, settings=settings)[0] == "feedback"
    assert store.get_vote("ada", pids[0]) == 1


def test_a_reader_at_an_internationalised_domain_votes_by_reply_in_either_form_of_it(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    (tmp_path / "profiles" / "ada.toml").write_text('email = "ada@müller.example"\n[[interests]]\nlabel = "x"\n')
    # the profile keeps the ASCII form (what was sent to); the reply's From has the domain as the reader wrote it
    for uid, sender in enumerate(["ada@müller.example", "Ada <ada@xn--mller-kva.example>"], 1):
        raw = "\r\n".join([f"From: {sender}", "To: replies@example.test", "Subject: Re: digest",
                            f"Message-ID: <r{uid}@example.test>", "In-Reply-To: <d1@example.test>", "",
                            f"+{uid}", ""]).encode()
        assert ingest_raw(store, raw, mailbox="INBOX", uid=uid, settings=settings)[0] == "feedback", sender
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[0]: 1, pids[1]: 1}
    # someone else's raw UTF-8 address (it broke the recording of the message before): refused, and kept
    raw = "\r\n".join(["From: mallory@évil.example", "To: replies@example.test", "Subject: Re: digest",
                        "Message-ID: <r9@example.test>", "In-Reply-To: <d1@example.test>", "", "-1", ""]).encode()
    assert ingest_raw(store, raw, mailbox="INBOX", uid=9, settings=settings)[0] == "feedback_rejected"
    assert store.messages("feedback_rejected")[0]["sender"] == "mallory@xn--vil-9la.example"
    assert store.get_vote("ada", pids[0]) == 1


@pytest.mark.parametrize("from_line", ["From: Ada Q. Lovelace <ada@example.test>",  # an unquoted "." (obsolete)
                                       "From: Ada L\u00f6 <ada@example.test>",  # a raw UTF-8 name (undecodable)
                                       "From: ada@example.test (Ada)"])
def test_a_from_header_with_a_harmless_defect_still_votes(tmp_path, from_line):
    settings, store, pids = _replies_setup(tmp_path)
    raw = "\r\n".join([from_line, "To: replies@example.test", "Subject: Re: digest", "Message-ID: <r9@example.test>",
                        "In-Reply-To: <d1@example.test>", "", "+1", ""]).encode()
    assert ingest_raw(store, raw, mailbox="INBOX", uid=9, settings=settings)[0] == "feedback"
    assert store.get_vote("ada", pids[0]) == 1


def test_digest_ingest_of_a_saved_reply_records_its_votes_as_the_poller_would(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    store.close()
    (tmp_path / "reply.eml").write_bytes(_raw_reply("ada@example.test", "+2\n-3\n\n> quoted digest"))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "ingest", str(tmp_path / "reply.eml")])
    assert result.exit_code == 0, result.output
    assert "votes by email: 1 reply recorded" in result.output and "1 not paper alerts" not in result.output
    # the counts add up (the reply is one of the emails read), and the vote is said once, not also as a log line
    assert "emails read: 1 (0 alerts, 1 vote reply, 0 already seen, 0 not paper alerts, 0 failed)" in result.output
    assert "INFO" not in result.output, result.output
    store = Store(settings.db_path)
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[1]: 1, pids[2]: -1}
    # the same file again: nothing new
    again = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "ingest", str(tmp_path / "reply.eml")])
    assert "1 already seen" in again.output and "votes by email" not in again.output


def test_an_expired_token_or_a_missing_item_number_is_recorded_with_its_reason(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    key = settings.web.secret_key(settings.data_path)
    with time_machine.travel(datetime.now(UTC) - timedelta(days=settings.web.token_max_age_days + 1)):
        old = make_token(key, "ada", "up", pids[1])
    stale = _raw_reply("ada@example.test", "", subject=f"👍 More like this: x [vote:{old}]", message_id="<r2@x>")
    assert ingest_raw(store, stale, mailbox="INBOX", uid=1, settings=settings)[0] == "feedback_rejected"
    partly = _raw_reply("ada@example.test", "+2 +9", message_id="<r3@x>")
    assert ingest_raw(store, partly, mailbox="INBOX", uid=2, settings=settings)[0] == "feedback"
    errors = {m["uid"]: m["error"] for m in store.messages()}
    assert "expired" in errors[1]
    assert errors[2] == "no item 9 in the digest of 2025-03-03 (3 items)"
    assert {v.paper_id: v.value for v in store.votes("ada")} == {pids[1]: 1}
    # without settings (no key to check tokens with) ingest_raw does not look for feedback
    assert ingest_raw(store, partly.replace(b"<r3@x>", b"<r4@x>"), mailbox="INBOX", uid=3)[0] == "not_alert"


# ---- the end-to-end paths with real mail, a real browser and the real model --------------------------------
TOPIC = [
    ("Graph neural networks for molecular property prediction",
     "We predict molecular properties with message-passing graph neural networks on atom graphs."),
    ("Equivariant message passing for protein-ligand binding",
     "An E(3)-equivariant graph network scores protein-ligand binding poses."),
    ("Pretraining graph transformers on millions of molecules",
     "Self-supervised pretraining of graph transformers improves molecular property prediction."),
    ("Few-shot molecular property prediction with meta-learned GNNs",
     "Meta-learning lets graph neural networks predict properties of molecules from few labels."),
]


@pytest.fixture(scope="module")
def embedder():
    from digest.embed import Embedder

    return Embedder()


@dataclass
class Delivered:
    settings: Settings
    profile: Profile
    address: str
    password: str
    reply_address: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


def _wait_for_mail(mail_servers, address: str, count: int = 1, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = mail_servers.messages(address)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no mail for {address}"
        time.sleep(0.1)


def deliver_digest(live: Live, mail_servers, embedder, user: str) -> Delivered:
    """A real digest: ranked with the model, sent through the SMTP relay, read back from Dovecot over IMAP."""
    address, password = mail_servers.new_user(user)
    reply_address, _ = mail_servers.new_user(f"{user}-replies")
    for title, abstract in TOPIC:
        live.paper(title, abstract)
    settings = dataclasses.replace(
        live.settings,
        smtp=SmtpSettings(host="127.0.0.1", port=mail_servers.smtp_port, security="plain",
                          from_addr="digest@example.test", retries=0),
        web=dataclasses.replace(live.settings.web, reply_address=reply_address))
    profile = _profile_file(live, user, address, [("Molecular GNNs", "Graph neural networks for molecules.")])
    delivery = deliver_user(live.store, embedder, settings, profile)
    assert delivery.status == "sent" and delivery.items >= 3, delivery
    (uid, flags, raw), = _wait_for_mail(mail_servers, address)
    return Delivered(settings, profile, address, password, reply_address, raw)


def _html_links(message: EmailMessage) -> list[tuple[str, str]]:
    html = message.get_body(preferencelist=("html",)).get_content()
    return [(a.get_text(" ", strip=True), a["href"]) for a in BeautifulSoup(html, "html.parser").select("a[href]")]


@pytest.mark.mail
@pytest.mark.model
@pytest.mark.browser
def test_a_thumbs_up_link_from_a_delivered_digest_records_the_vote_in_chromium(live, mail_servers, embedder,
                                                                                  browser):
    digest = deliver_digest(live, mail_servers, embedder, "pia")
    up_links = [href for text, href in _html_links(digest.message) if "👍" in text]
    assert up_links and all(h.startswith(f"{live.url}/vote/") for h in up_links)
    link = up_links[0]
    pid = read_token(live.key, link.rsplit("/", 1)[1], max_age_days=1).paper_id
    assert pid == live.store.digest_items(live.store.digest_for("pia", live.store.digests("pia")[0]["period"])
                                          ["id"])[0]["paper_id"]
    before = snapshot(live.store)
    try:
        browser.set_window_size(390, 844)  # a phone
        browser.get(link)
        assert "Tell your digest" in browser.text("#status")
        assert snapshot(live.store) == before  # a real browser opening the link records nothing
        # the same-origin stylesheet is allowed by the CSP, and nothing overflows a phone screen
        assert browser.execute("return getComputedStyle(document.querySelector('#vote')).borderRadius") == "22px"
        assert browser.execute("return document.documentElement.scrollWidth <= window.innerWidth")
        browser.click("#vote")
        browser.wait_for("#undo")
        assert "Thanks, recorded" in browser.text("#status")
        assert live.store.get_vote("pia", pid) == 1
        assert live.store.votes("pia")[0].via == "web"
        browser.click("#undo")
        browser.wait_for("#vote")
        assert live.store.get_vote("pia", pid) == 0
        browser.click("#vote")
        browser.wait_for("#undo")
        assert live.store.get_vote("pia", pid) == 1
    finally:
        browser.set_window_size(1024, 768)


@pytest.mark.mail
@pytest.mark.model
@pytest.mark.browser
def test_the_digest_opened_in_chromium_takes_votes_on_several_papers(live, mail_servers, embedder, browser):
    digest = deliver_digest(live, mail_servers, embedder, "rhea")
    opens = [href for text, href in _html_links(digest.message) if text == "Open in your browser"]
    text_part = digest.message.get_body(preferencelist=("plain",)).get_content()
    assert len(opens) == 1 and opens[0].startswith(f"{live.url}/digest/") and opens[0] in text_part
    row = live.store.digests("rhea")[0]
    pids = [r["paper_id"] for r in live.store.digest_items(row["id"])]
    before = snapshot(live.store)
    try:
        browser.set_window_size(390, 844)  # a phone
        browser.get(opens[0])
        # other tests' papers may be runners-up here, or below the bar (folded)
        more = live.store.digest_items(row["id"], more=True) + live.store.digest_items(row["id"], below=True)
        assert len(browser.find_all("article.item")) == len(pids) + len(more) and len(pids) >= 3
        assert snapshot(live.store) == before
        assert browser.execute("return document.documentElement.scrollWidth <= window.innerWidth")
        browser.click("#item-2 button[value=up]")
        browser.wait_for("#item-2 .status")
        browser.click("#item-3 button[value=down]")
        browser.wait_for("#item-3 .status")
        assert "👎" in browser.text("#item-3 .status")
        assert browser.execute("return location.hash") == "#item-3"  # back at the paper just voted on
        assert browser.execute(
            "return [...document.querySelectorAll('button[aria-pressed=true]')].map(b => b.value)") == ["up", "down"]
        assert {v.paper_id: v.value for v in live.store.votes("rhea")} == {pids[1]: 1, pids[2]: -1}
        browser.click("#item-2 button[value=undo]")
        browser.wait_for("#item-2 .status")
        assert {v.paper_id: v.value for v in live.store.votes("rhea")} == {pids[2]: -1}
        # a long abstract shows its first lines; a click opens the whole of it, without any script
        # (a search on a page sees the papers that had arrived when its link was made)
        missed = live.paper("Wombat burrow acoustics", "Low-frequency sound in wombat burrows.")
        long_page, _ = sent_digest(live, "rhea", "2025-01-01", ["A paper with a long abstract"])
        browser.get(long_page)
        visible = "return document.querySelector(arguments[0]).checkVisibility()"
        assert browser.execute(visible, "#item-1 .lead") and not browser.execute(visible, "#item-1 details p")
        browser.click("#item-1 details summary")
        assert browser.execute(visible, "#item-1 details p") and not browser.execute(visible, "#item-1 .lead")
        # a paper that was never in a digest: found by a search on the page, then voted on there
        browser.type("form.search input[name=q]", "wombat burrows\ue007")
        browser.wait_for("#found-1")
        assert browser.text("#found-1 .title") == "Wombat burrow acoustics"
        assert browser.execute("return document.documentElement.scrollWidth <= window.innerWidth")
        browser.click("#found-1 button[value=up]")
        browser.wait_for("#found-1 .status")
        assert browser.execute("return location.hash") == "#found-1" and "👍" in browser.text("#found-1 .status")
        assert browser.execute("return document.querySelector('form.search input').value") == "wombat burrows"
        assert live.store.get_vote("rhea", missed) == 1
    finally:
        browser.set_window_size(1024, 768)


def _send(mail_servers, sender: str, to: str, subject: str, body: str, **headers) -> None:
    """What the reader's mail client does: submit a message to the relay, which delivers it to Dovecot."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="example.test")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", mail_servers.smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)


def poll_replies(digest: Delivered, store: Store, mail_servers, monkeypatch) -> dict[str, str]:
    """The poller (digest.ingest.poll_all) over the reply mailbox. Returns subject -> recorded status."""
    from digest.config import ImapSettings
    from digest.ingest import poll_all

    monkeypatch.setenv("DIGEST_FEEDBACK_TEST_IMAP", mail_servers.users[digest.reply_address])
    imap = ImapSettings(host="127.0.0.1", port=mail_servers.imap_port, security="plain",
                        username=digest.reply_address, password_env="DIGEST_FEEDBACK_TEST_IMAP")
    report = poll_all(store, dataclasses.replace(digest.settings, imap=imap))
    assert report.error is None, report.error
    return {m["subject"]: m["status"] for m in store.messages() if m["kind"] == "feedback"
            and digest.reply_address in m["mailbox"]}


@pytest.mark.mail
@pytest.mark.model
def test_votes_sent_by_email_are_recorded_and_a_stranger_is_ignored(live, mail_servers, embedder, monkeypatch):
    digest = deliver_digest(live, mail_servers, embedder, "quinn")
    message = digest.message
    assert message["Reply-To"] == digest.reply_address
    period = live.store.digests("quinn")[0]["period"]
    items = [row["paper_id"] for row in live.store.digest_items(live.store.digest_for("quinn", period)["id"])]
    stranger, _ = mail_servers.new_user("stranger")

    # 1. item 2's "−2" mailto: link in the delivered email (what the reader's mail program opens), sent from
    #    the reader's own address as it is
    mailtos = {text: href for text, href in _html_links(message) if href.startswith("mailto:")}
    assert {"+1", "−1", "+2", "−2"} <= set(mailtos), mailtos.keys()
    mailto = urlsplit(mailtos["−2"])
    query = parse_qs(mailto.query)
    assert query["subject"][0].startswith("👎 Less like this: ")
    assert unquote(mailto.path) == digest.reply_address
    _send(mail_servers, digest.address, digest.reply_address, query["subject"][0], query["body"][0])
    # 2. a plain reply to the digest: "+1 -3" above the quoted digest
    quoted = "\n".join("> " + line for line in message.get_body(("plain",)).get_content().splitlines())
    reply_headers = {"In_Reply_To": message["Message-ID"], "References": message["Message-ID"]}
    _send(mail_servers, digest.address, digest.reply_address, "Re: " + message["Subject"],
          f"+1 -3\n\nOn {message['Date']}, digest wrote:\n{quoted}\n", **reply_headers)
    # 3. the same reply and the same mailto from someone else (a forwarded digest): never a vote
    _send(mail_servers, stranger, digest.reply_address, "Re: stranger " + message["Subject"], "-1 +3\n",
          **reply_headers)
    _send(mail_servers, stranger, digest.reply_address, "Fwd: " + query["subject"][0], query["body"][0])
    # 4. an out-of-office answer to the digest, and a reply that says no vote
    _send(mail_servers, digest.address, digest.reply_address, "Auto: out of office", "+2\n",
          Auto_Submitted="auto-replied", **reply_headers)
    _send(mail_servers, digest.address, digest.reply_address, "Re: thanks", "Thanks, great digest!\n",
          **reply_headers)
    _wait_for_mail(mail_servers, digest.reply_address, 6)

    statuses = poll_replies(digest, live.store, mail_servers, monkeypatch)
    assert statuses == {query["subject"][0]: "feedback", "Re: " + message["Subject"]: "feedback",
                        "Re: stranger " + message["Subject"]: "feedback_rejected",
                        "Fwd: " + query["subject"][0]: "feedback_rejected",
                        "Auto: out of office": "feedback_rejected", "Re: thanks": "feedback_rejected"}
    votes = {v.paper_id: (v.value, v.via) for v in live.store.votes("quinn")}
    assert votes == {items[0]: (1, "email"), items[1]: (-1, "email"), items[2]: (-1, "email")}
    reasons = {m["subject"]: m["error"] for m in live.store.messages("feedback_rejected")}
    assert f"sender {stranger} is not the address of user quinn" in reasons["Re: stranger " + message["Subject"]]
    assert "is not the address" in reasons["Fwd: " + query["subject"][0]]
    assert "automatic reply" in reasons["Auto: out of office"]
    assert "without votes" in reasons["Re: thanks"]
    # every one of them is marked processed on the server (and \\Seen is left to the reader)
    flags = [set(f) for _, f, _ in mail_servers.messages(digest.reply_address)]
    assert len(flags) == 6 and all(b"$Digested" in f and b"\\Seen" not in f for f in flags)
    # nothing was taken for a paper alert, and a second poll changes nothing
    assert not [m for m in live.store.messages() if digest.reply_address in m["mailbox"]
                and m["kind"] != "feedback"]
    votes_before, messages_before = live.store.votes("quinn"), live.store.messages()
    poll_replies(digest, live.store, mail_servers, monkeypatch)
    assert live.store.votes("quinn") == votes_before and live.store.messages() == messages_before


@pytest.mark.mail
def test_a_vote_token_in_an_email_cannot_be_replayed_for_another_user(live, mail_servers, monkeypatch):
    """An email from ada's address carrying bob's token is refused: the token names the user it votes for."""
    ada, _ = mail_servers.new_user("ada-mail")
    replies, _ = mail_servers.new_user("replies")
    _profile_file(live, "rosa", ada, [("Anything", "Papers.")])
    _profile_file(live, "sam", "sam@example.test", [("Anything", "Papers.")])
    pid = live.paper("Replay-proof email votes", "Tokens.", arxiv_id="2501.00011")
    settings = dataclasses.replace(live.settings, web=dataclasses.replace(live.settings.web, reply_address=replies))
    key = settings.web.secret_key(settings.data_path)
    sams = urlsplit(_links(settings, key, Profile("sam", "Sam", "sam@example.test"), pid, "up", title="Replay"))
    rosas = urlsplit(_links(settings, key, Profile("rosa", "Rosa", ada), pid, "up", title="Replay"))
    tampered = parse_qs(rosas.query)["subject"][0].replace("[vote:", "[vote:x")
    _send(mail_servers, ada, replies, parse_qs(sams.query)["subject"][0], "")
    _send(mail_servers, ada, replies, tampered, "")
    _wait_for_mail(mail_servers, replies, 2)
    digest = Delivered(settings, Profile("rosa", "Rosa", ada), ada, "", replies, b"")
    statuses = poll_replies(digest, live.store, mail_servers, monkeypatch)
    assert sorted(statuses.values()) == ["feedback_rejected", "feedback_rejected"]
    assert live.store.get_vote("sam", pid) == 0 and live.store.get_vote("rosa", pid) == 0
    reasons = [m["error"] for m in live.store.messages("feedback_rejected") if replies in m["mailbox"]]
    assert any(f"sender {ada} is not the address of user sam" in r for r in reasons)
    assert any(r.startswith("vote token refused: This link is not valid") for r in reasons)


# ---- a vote changes the next ranking (the real model) -----------------------------------------------------
NEAR = ("Spatio-temporal graph neural networks for traffic speed forecasting on road sensor networks",
        "We forecast traffic speed on road networks with spatio-temporal graph neural networks over loop sensors.")
NEAR_DUPLICATE = ("Forecasting road traffic speed with spatio-temporal graph networks over sensor graphs",
                  "A spatio-temporal graph neural network forecasts traffic speeds from road sensor graphs.")
OTHERS = [
    ("Graph attention networks for citation recommendation", "Attention over citation graphs recommends papers."),
    ("Transformers for medium-range weather forecasting", "A transformer forecasts global weather ten days ahead."),
    ("Recurrent networks for electricity load forecasting", "LSTMs forecast household electricity demand."),
    ("Graph neural networks for power grid state estimation", "GNNs estimate grid states from sparse sensors."),
    ("Protein structure prediction with language models", "Protein language models predict 3D structure."),
    ("Diffusion models for protein backbone design", "Generative diffusion designs novel protein backbones."),
]


def _position(ranking, title: str) -> tuple[int, float]:
    for i, item in enumerate(ranking.ranking.scored):
        if item.paper.title == title:
            return i, item.score
    raise AssertionError(f"{title} is not a candidate")


@pytest.mark.model
@pytest.mark.parametrize("action, interest", [
    ("down", ("Forecasting with graphs", "Graph neural networks that forecast time series on sensor networks.")),
    ("up", ("Protein structure", "Predicting and designing protein structures with deep learning.")),
])
def test_a_vote_through_the_server_moves_a_near_duplicate_in_the_next_ranking(live, embedder, action, interest):
    user = f"tess{action}"
    profile = _profile_file(live, user, f"{user}@example.test", [interest])
    voted = live.paper(*NEAR)
    live.paper(*NEAR_DUPLICATE)
    for title, abstract in OTHERS:
        live.paper(title, abstract)
    before_pos, before_score = _position(rank_user(live.store, embedder, live.settings, profile), NEAR_DUPLICATE[0])
    link = live.link(user, action, voted)
    with live.client() as client:
        assert client.post(live.path(link), data=_form(link)).status_code == 303
    after = rank_user(live.store, embedder, live.settings, profile)
    after_pos, after_score = _position(after, NEAR_DUPLICATE[0])
    item = after.ranking.scored[after_pos]
    if action == "down":
        assert after_score < before_score and after_pos > before_pos, (before_pos, after_pos)
        assert "👎" in item.reason
    else:
        assert after_score > before_score and after_pos < before_pos, (before_pos, after_pos)
        assert "liked" in item.reason


@pytest.mark.model
def test_a_profile_without_max_items_gets_the_configs_default_and_its_own_value_wins(live, embedder):
    profile = _profile_file(live, "maxi", "maxi@example.test", [("Graphs", "Graph neural networks.")])
    for title, abstract in OTHERS:
        live.paper(title, abstract)
    settings = dataclasses.replace(live.settings, ranking=dataclasses.replace(live.settings.ranking,
                                                                             default_max_items=2))
    unset = rank_user(live.store, embedder, settings, dataclasses.replace(profile, max_items=None)).ranking
    assert len(unset.scored) > 3 and len(unset.picked) == 2 and unset.max_items == 2
    own = rank_user(live.store, embedder, settings, dataclasses.replace(profile, max_items=3)).ranking
    assert len(own.picked) == 3


def test_an_unknown_address_says_what_to_do(live):
    with live.client() as client:
        for path in ("/nowhere", "/vote", "/vote/a/b", "/digest/"):
            page = client.get(path)
            assert page.status_code == 404 and "<title>Page not found</title>" in page.text
            assert "Open the link straight from your digest email" in page.text and "Traceback" not in page.text


def test_an_unknown_paper_gets_a_friendly_404_and_no_vote(live):
    link = live.link("uma", "up", "arxiv:9999.99999")
    with live.client() as client:
        page = client.get(live.path(link))
        posted = client.post(live.path(link), data=_form(link))
    assert page.status_code == posted.status_code == 404
    assert "Paper not found" in page.text and live.store.get_vote("uma", "arxiv:9999.99999") == 0


def test_the_pages_escape_paper_text(live):
    pid = live.paper('<script>alert("x")</script> & <b>bold</b> claims', "x", arxiv_id="2501.00012")
    with live.client() as client:
        page = client.get(live.path(live.link("vera", "up", pid)))
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert re.search(r"<title>[^<]*&lt;script&gt;", page.text)


# ---- a digest's own page: read it again, vote on several papers -------------------------------------------
def sent_digest(live: Live, user: str, period: str, titles: list[str], *, status: str = "sent",
                more: list[str] = (), below: list[str] = (), loose: list[str] = ()) -> tuple[str, list[str]]:
    """A digest of ``titles`` (and runners-up ``more``, and papers ``below`` its floor of 0.2, then ``loose``
    ones held back above it) as delivery leaves it in the store; returns (its page link, the ids of its papers,
    then of its runners-up, then below)."""
    below = [*loose, *below]
    everything = [*titles, *more, *below]
    pids = [live.paper(title, f"An abstract about {title.lower()}. " * 20) for title in everything]
    papers = live.store.get_papers(pids)
    digest_id = live.store.claim_digest(user, period)
    items = [ScoredPaper(papers[pid], 0.3 if i < len(titles) + len(more) else 0.1 - i / 100,
                         f"close to your seed paper on {title.split()[0]}")
             if title not in loose else
             ScoredPaper(papers[pid], 0.25, "matches your interest “Reefs” (0.12); held back: a loose match",
                         details={"loose": True, "closest": 0.12})
             for i, (pid, title) in enumerate(zip(pids, everything, strict=True))]
    parts = [list(zip(items, pids, strict=True))[a:b] for a, b in
             ((0, len(titles)), (len(titles), len(titles) + len(more)), (len(titles) + len(more), len(everything)))]
    live.store.save_digest_items(digest_id, items[:len(titles)], pids[:len(titles)], n_candidates=40,
                                 subject="digest", message_id=make_msgid(domain="example.test"),
                                 more=parts[1], below=parts[2], floor=0.2)
    live.store.mark_digest(digest_id, status)
    return live.link(user, "digest", str(digest_id)), pids


def _voting(article) -> dict:
    """What a paper on a digest page shows of the reader's vote: the buttons pressed, the note under it."""
    return {"pressed": [b["value"] for b in article.select("button[aria-pressed=true]")],
            "status": " ".join(s.get_text(" ", strip=True) for s in article.select(".status"))}


def _page_items(html: str) -> list[dict]:
    soup = BeautifulSoup(html, "html.parser")
    return [{"number": a["id"].removeprefix("item-"), "title": a.select_one(".title").get_text(strip=True),
             "why": a.select_one(".why").get_text(" ", strip=True), **_voting(a)}
            for a in soup.select("article.item[id^=item-]")]


def _item_form(link: str, item: int | str, do: str) -> dict:
    return {"token": link.rsplit("/", 1)[1], "item": str(item), "do": do}


def test_a_digest_page_shows_every_paper_and_takes_a_vote_on_each_without_leaving_the_page(live):
    titles = ["Sparse attention for long documents", "Protein folding with diffusion", "Tiny robots that swim"]
    link, pids = sent_digest(live, "wren", "2025-04-01", titles)
    with live.client() as client:
        before = snapshot(live.store)
        page = client.get(live.path(link))
        assert page.status_code == 200 and snapshot(live.store) == before  # reading changes nothing
        shown = _page_items(page.text)
        assert [i["title"] for i in shown] == titles and [i["number"] for i in shown] == ["1", "2", "3"]
        assert shown[1]["why"] == "Why: close to your seed paper on Protein"
        assert "Tue 1 Apr 2025" in page.text and not any(i["pressed"] for i in shown)
        # the email's first lines of the abstract, and the whole of it one click away
        abstract = BeautifulSoup(page.text, "html.parser").select_one("#item-2 details.abstract")
        assert abstract.select_one(".lead").get_text().endswith("…")
        assert abstract.select_one("p").get_text() == ("An abstract about protein folding with diffusion. " * 20).strip()

        voted = client.post(live.path(link), data=_item_form(link, 2, "up"))
        assert voted.status_code == 303
        assert voted.headers["location"] == f"{link.rsplit('/', 1)[1]}?done=up&item=2#item-2"
        assert live.store.get_vote("wren", pids[1]) == 1 and live.store.get_vote("wren", pids[0]) == 0
        client.post(live.path(link), data=_item_form(link, 3, "down"))
        again = client.get(live.path(link) + "?done=down&item=3")
        shown = _page_items(again.text)
        assert [i["pressed"] for i in shown] == [[], ["up"], ["down"]]
        assert shown[2]["status"] == "Thanks, recorded: 👎 Less like this." and not shown[1]["status"]
        assert "you voted on 2" in again.text

        client.post(live.path(link), data=_item_form(link, 2, "down"))  # changing one's mind
        client.post(live.path(link), data=_item_form(link, 3, "undo"))
    assert {v.paper_id: v.value for v in live.store.votes("wren")} == {pids[1]: -1}
    assert [e["value"] for e in live.store.vote_events("wren") if e["paper_id"] == pids[1]] == [1, -1]


def test_undo_on_a_digest_page_opened_before_a_later_vote_leaves_that_vote(live):
    """A reader gives 👍 on the digest's page, then changes it to 👎 with the email's link (another window, or an
    email vote), then presses Undo on the page still showing 👍: the 👎 given last stays, as a single vote's stale
    Undo already left it (it was removed: the reader had no vote, and the page said "Vote removed")."""
    link, pids = sent_digest(live, "zack", "2025-04-04", ["Retrieval heads in long-context models"])
    down = live.link("zack", "down", pids[0])
    with live.client() as client:
        assert client.post(live.path(link), data=_item_form(link, 1, "up")).status_code == 303
        shown = BeautifulSoup(client.get(live.path(link)).text, "html.parser").select_one("#item-1 form.votes")
        # the form as the browser sends it when Undo is pressed on this page
        stale = {i["name"]: i["value"] for i in shown.select("input[type=hidden]")} | {"do": "undo"}
        client.post(live.path(down), data=_form(down))
        assert live.store.get_vote("zack", pids[0]) == -1
        undone = client.post(live.path(link), data=stale)
        assert undone.status_code == 303
        assert live.store.get_vote("zack", pids[0]) == -1
        item = BeautifulSoup(client.get(live.path(link) + "?" + undone.headers["location"].split("?", 1)[1]).text,
                             "html.parser").select_one("#item-1")
        assert "Vote removed" not in item.text
        assert item.select_one(".status").get_text(strip=True).startswith("Nothing to undo here: this vote was "
                                                                           "changed after the page showed it")
        assert _voting(item)["pressed"] == ["down"]
        # pressed on a page showing the vote as it is, Undo removes it
        shown = BeautifulSoup(client.get(live.path(link)).text, "html.parser").select_one("#item-1 form.votes")
        fresh = {i["name"]: i["value"] for i in shown.select("input[type=hidden]")} | {"do": "undo"}
        assert client.post(live.path(link), data=fresh).headers["location"].startswith(f"{link.rsplit('/', 1)[1]}"
                                                                                       "?done=undo&")
        assert live.store.get_vote("zack", pids[0]) == 0
    assert [e["value"] for e in live.store.vote_events("zack")] == [1, -1, 0]


def test_a_digest_page_keeps_the_best_papers_below_the_bar_folded_with_their_scores_and_takes_votes_on_them(live):
    titles = ["Graph transformers for molecules"]
    link, pids = sent_digest(live, "yara", "2025-04-03", titles, more=["Molecular dynamics on GPUs"],
                             below=["Crystal structure prediction", "Solvent models revisited"])
    token = link.rsplit("/", 1)[1]
    with live.client() as client:
        soup = BeautifulSoup(client.get(live.path(link)).text, "html.parser")
        folded = soup.select_one("details.below")
        assert folded is not None and not folded.has_attr("open")
        assert folded.select_one("summary .open-label").get_text(strip=True) == "Show the 2 papers below your bar"
        assert [a["id"] for a in folded.select("article.item")] == ["item-3", "item-4"]  # after the runner-up
        assert "score 0.08" in folded.select_one("#item-3 .where").get_text(" ", strip=True)
        assert "did not clear your relevance bar (0.20)" in soup.select_one("#below + p").get_text(" ", strip=True)
        assert [i["number"] for i in _page_items(str(soup))] == ["1", "2", "3", "4"]

        voted = client.post(live.path(link), data=_item_form(link, 4, "up"))
        assert voted.headers["location"] == f"{token}?done=up&item=4#item-4"
        assert live.store.get_vote("yara", pids[3]) == 1
        again = BeautifulSoup(client.get(live.path(link) + "?done=up&item=4").text, "html.parser")
        assert again.select_one("details.below").has_attr("open")  # unfolded where the vote was made
        assert "of the runners-up" not in again.select_one("#counts").text  # a vote below the bar is none of them
        assert _voting(again.select_one("#item-4")) == {"pressed": ["up"], "status": "Thanks, recorded: 👍 More like this."}
        # a vote in the digest itself leaves the fold closed
        client.post(live.path(link), data=_item_form(link, 1, "up"))
        assert not BeautifulSoup(client.get(live.path(link) + "?done=up&item=1").text,
                                 "html.parser").select_one("details.below").has_attr("open")
    assert live.store.sent_paper_ids("yara") == {pids[0]}  # the runner-up and those below the bar were not sent
    # a quiet day's page (its note links to #below) shows them unfolded: there is nothing else on it
    quiet, _ = sent_digest(live, "yara", "2025-04-04", [], below=["Nearly a match on graphs"])
    with live.client() as client:
        page = BeautifulSoup(client.get(live.path(quiet)).text, "html.parser")
    assert page.select_one("details.below").has_attr("open") and [a["id"] for a in page.select("article.item")] == \
        ["item-1"]


def test_a_quiet_days_page_says_which_papers_were_held_back_as_loose_matches(live):
    link, _ = sent_digest(live, "yara", "2025-04-05", [], below=["Solvent models revisited"],
                          loose=["Legal text segmentation", "Pangenomes of pears"])
    with live.client() as client:
        soup = BeautifulSoup(client.get(live.path(link)).text, "html.parser")
    meta = soup.select_one("#below + p").get_text(" ", strip=True)
    assert "2 of them scored above it but were held back as loose matches" in meta, meta
    assert [i["title"] for i in _page_items(str(soup))][:2] == ["Legal text segmentation", "Pangenomes of pears"]
    assert "held back: a loose match" in _page_items(str(soup))[0]["why"]
    # a day without them says nothing of the kind
    plain, _ = sent_digest(live, "yara", "2025-04-06", [], below=["Nearly a match on graphs"])
    with live.client() as client:
        assert "loose" not in BeautifulSoup(client.get(live.path(plain)).text, "html.parser").select_one(
            "#below + p").get_text(" ", strip=True)


@pytest.mark.parametrize("case", ["no such item", "a number of 5000 digits", "not a number", "a superscript digit",
                                  "unknown action", "another page's token", "a vote token", "altered"])
def test_a_digest_page_votes_only_on_its_own_papers_with_its_own_token(live, case):
    user = f"xena-{case.replace(' ', '-')}"
    link, pids = sent_digest(live, user, "2025-04-02", ["A first paper", "A second one"])
    other_link, _ = sent_digest(live, f"{user}-friend", "2025-04-02", ["Someone else's paper"])
    target, form = link, _item_form(link, 1, "up")
    if case == "no such item":
        form["item"] = "3"
    elif case == "a number of 5000 digits":  # more than int() reads: a 404 like any other, not a 500
        form["item"] = "9" * 5000
    elif case == "not a number":
        form["item"] = pids[0]
    elif case == "a superscript digit":  # str.isdigit() says yes, int() says no
        form["item"] = "²"
    elif case == "unknown action":
        form["do"] = "delete"
    elif case == "another page's token":
        form["token"] = other_link.rsplit("/", 1)[1]
    elif case == "a vote token":
        target = live.link(user, "up", pids[0])
        form["token"] = target.rsplit("/", 1)[1]
    else:
        target = link[:-3] + ("abc" if not link.endswith("abc") else "abd")
        form["token"] = target.rsplit("/", 1)[1]
    before = snapshot(live.store)
    with live.client() as client:
        answer = client.post(live.path(target).replace("/vote/", "/digest/"), data=form)
    assert answer.status_code == {"no such item": 404, "a number of 5000 digits": 404, "altered": 403}.get(case, 400), \
        answer.text
    assert "Traceback" not in answer.text and snapshot(live.store) == before


def test_a_digest_link_opens_no_vote_page_and_a_vote_link_no_digest_page(live):
    link, pids = sent_digest(live, "zoe", "2025-04-03", ["Only paper"])
    vote = live.link("zoe", "up", pids[0])
    with live.client() as client:
        as_vote = client.get(live.path(link).replace("/digest/", "/vote/"))
        as_digest = client.get(live.path(vote).replace("/vote/", "/digest/"))
        gone = client.get(live.path(live.link("zoe", "digest", "999999")))
    assert as_vote.status_code == as_digest.status_code == 400
    assert "link to a digest" in as_vote.text and "vote link" in as_digest.text
    assert gone.status_code == 404 and "Digest not found" in gone.text


def test_a_digest_page_leads_to_the_readers_digests_before_and_after_it_and_no_one_elses(live):
    links = [sent_digest(live, "abe", f"2025-05-0{day}", [f"Paper of day {day}"])[0] for day in (1, 2, 4)]
    sent_digest(live, "abe", "2025-05-03", ["Never sent"], status="retry")  # not sent: not in the series
    sent_digest(live, "bea", "2025-05-02", ["Bea's paper"])
    # all begun well before the links were made (a link made in a later second than a claim must see it)
    live.store.db.execute("UPDATE digests SET claimed_at = ? WHERE user IN ('abe', 'bea')",
                          [(datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")])
    live.store.db.conn.commit()
    with live.client() as client:
        def visit(url: str) -> BeautifulSoup:
            answer = client.get(url)
            assert answer.status_code == 200, answer.text
            return BeautifulSoup(answer.text, "html.parser")

        middle = live.path(links[1])
        page = visit(middle)
        earlier = urljoin(middle, page.select_one("#earlier")["href"])
        later = urljoin(middle, page.select_one("#later")["href"])
        assert "Paper of day 1" in visit(earlier).text
        last = visit(later)
        assert "Paper of day 4" in last.text and last.select_one("#later") is None
        assert visit(live.path(links[0])).select_one("#earlier") is None
        unsubscribe = urljoin(middle, page.select_one("footer a")["href"])
        assert read_token(live.key, unsubscribe.rsplit("/", 1)[1], max_age_days=None).action == "unsubscribe"
        assert "Pause your digests" in visit(unsubscribe).text


def test_a_vote_page_links_to_the_whole_digest_its_paper_came_in(live):
    link, pids = sent_digest(live, "cyd", "2025-06-01", ["One", "Two"])
    with live.client() as client:
        page = client.get(live.path(live.link("cyd", "down", pids[1])))
        lone = client.get(live.path(live.link("cyd", "up", live.paper("Never in a digest"))))
        whole = BeautifulSoup(page.text, "html.parser").select_one("#whole-digest")
        assert whole is not None and "Sun 1 Jun 2025" in whole.get_text()
        opened = client.get(urljoin(live.path(link), whole["href"]))
    assert [i["title"] for i in _page_items(opened.text)] == ["One", "Two"]
    assert "whole-digest" not in lone.text


def test_a_digest_page_shows_the_runners_up_which_take_votes_and_are_not_ranked_again_once_judged(live):
    link, pids = sent_digest(live, "dee", "2025-07-01", ["In the email"], more=["Runner-up one", "Runner-up two"])
    with live.client() as client:
        page = client.get(live.path(link))
        soup = BeautifulSoup(page.text, "html.parser")
        assert [i["title"] for i in _page_items(page.text)] == ["In the email", "Runner-up one", "Runner-up two"]
        assert [a["id"] for a in soup.select("#more ~ article.item")] == ["item-2", "item-3"]
        assert "2 more papers cleared your relevance bar" in page.text
        client.post(live.path(link), data=_item_form(link, 3, "down"))
        after = _page_items(client.get(live.path(link) + "?done=down&item=3").text)
        assert [(i["pressed"], i["status"]) for i in after] == [([], ""), ([], ""),
                                                                (["down"], "Thanks, recorded: 👎 Less like this.")]
    assert live.store.get_vote("dee", pids[2]) == -1
    # the runners-up were not sent; the one judged on the page is no candidate any more, the other still is
    assert live.store.sent_paper_ids("dee") == {pids[0]}
    candidates = {pid for pid, _ in live.store.candidate_papers("dee", "2000-01-01")}
    assert pids[1] in candidates and pids[0] not in candidates and pids[2] not in candidates
    # the runners-up were not in the email's items (a reply's numbers: see the next test)
    assert [r["rank"] for r in live.store.digest_items(live.store.digests("dee")[0]["id"])] == [1]


def _found(html: str) -> dict[str, dict]:
    """The papers a digest page's search shows: title -> its key, status line, pressed buttons, note."""
    soup = BeautifulSoup(html, "html.parser")
    return {a.select_one(".title").get_text(strip=True): {
        "key": a["id"].removeprefix("found-"), "where": a.select_one(".where").get_text(" ", strip=True), **_voting(a)}
        for a in soup.select("article.item[id^=found-]")}


def test_a_digest_page_finds_any_paper_that_had_arrived_and_takes_a_vote_on_it(live):
    sent_digest(live, "hal", "2025-07-01", ["Quokka diets sent before"])
    missed = live.paper("Quokka habitats nobody sent", "Marsupials of Rottnest Island.")  # before the link is made
    link, pids = sent_digest(live, "hal", "2025-08-01", ["Quokka dynamics"], more=["Quokka runner-up"])
    later = live.store.add_papers([Paper("Quokka futures")], first_seen=(
        datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")).paper_ids[0]
    token = link.rsplit("/", 1)[1]
    with live.client() as client:
        before = snapshot(live.store)
        page = client.get(live.path(link), params={"q": "  QUOKKAS "})
        assert page.status_code == 200 and snapshot(live.store) == before  # a search changes nothing
        found = _found(page.text)
        # every paper of the store with the word, except the one that came in after the link was made
        assert set(found) == {"Quokka diets sent before", "Quokka dynamics", "Quokka runner-up",
                              "Quokka habitats nobody sent"}
        assert "4 papers match “QUOKKAS”" in page.text
        assert found["Quokka dynamics"]["where"].startswith("number 1 on this page")
        assert found["Quokka runner-up"]["where"].startswith("number 2 on this page")
        assert BeautifulSoup(page.text, "html.parser").select_one(
            f"#found-{found['Quokka runner-up']['key']} .where a")["href"] == "#item-2"
        assert found["Quokka diets sent before"]["where"].startswith("sent in your digest of Tue 1 Jul 2025")
        assert re.match(r"arrived \w{3} \d+ \w{3} \d{4}, not sent to you", found["Quokka habitats nobody sent"]["where"])
        # the digest's own papers are listed once above, untouched by the search
        assert [i["title"] for i in _page_items(page.text)] == ["Quokka dynamics", "Quokka runner-up"]

        key = found["Quokka habitats nobody sent"]["key"]
        form = {"token": token, "paper": missed, "key": key, "q": "QUOKKAS", "do": "up"}
        voted = client.post(live.path(link), data=form)
        assert voted.status_code == 303
        assert voted.headers["location"] == f"{token}?{urlencode({'q': 'QUOKKAS', 'done': 'up', 'paper': missed})}#found-{key}"
        assert live.store.get_vote("hal", missed) == 1
        again = _found(client.get(urljoin(live.path(link), voted.headers["location"])).text)
        assert again["Quokka habitats nobody sent"] == {**found["Quokka habitats nobody sent"], "pressed": ["up"],
                                                        "status": "Thanks, recorded: 👍 More like this."}
        assert not any(again[t]["status"] or again[t]["pressed"] for t in again if t != "Quokka habitats nobody sent")
        # a vote on the digest's own paper from the results is the same vote as from its place above
        client.post(live.path(link), data={**form, "paper": pids[0], "do": "down"})
        assert _page_items(client.get(live.path(link)).text)[0]["pressed"] == ["down"]
        client.post(live.path(link), data={**form, "do": "undo"})
        assert live.store.get_vote("hal", missed) == 0

        # a paper that came in after the link was made, or one not in the store: no vote, nothing changes
        before = snapshot(live.store)
        for pid in (later, "arxiv:0000.00000", ""):
            answer = client.post(live.path(link), data={**form, "paper": pid})
            assert answer.status_code == (400 if not pid else 404) and "Traceback" not in answer.text
        assert snapshot(live.store) == before and live.store.get_vote("hal", later) == 0


def test_a_digest_page_search_says_when_nothing_or_too_much_matches(live):
    for i in range(23):  # before the link is made: a page finds only papers that had arrived by then (to the second)
        live.paper(f"Numbat study {i}", "Termites.")
    link, _ = sent_digest(live, "ivy", "2025-08-02", ["Axolotl regeneration"])
    with live.client() as client:
        none = client.get(live.path(link), params={"q": "axolotl platypus"})
        many = client.get(live.path(link), params={"q": "numbat " * 40})
        empty = client.get(live.path(link), params={"q": "   "})
    assert "No paper matches “axolotl platypus”" in none.text and not _found(none.text)
    assert len(_found(many.text)) == 20 and "23 papers match" in many.text and "the 20 best are shown" in many.text
    assert 'value="numbat numbat' in many.text and len(BeautifulSoup(many.text, "html.parser").select_one(
        "form.search input")["value"]) <= 200
    assert empty.status_code == 200 and not _found(empty.text) and 'id="found"' not in empty.text


def test_a_reply_votes_on_a_runner_up_by_its_number_on_the_digests_page(tmp_path):
    settings, store, pids = _replies_setup(tmp_path)
    extra = store.add_papers([Paper("A runner-up about graphs", arxiv_id="2501.20000")]).paper_ids[0]
    row = store.digests("ada")[0]
    items = [ScoredPaper(p, 0.5, "why") for p in store.get_papers(pids).values()]
    store.save_digest_items(row["id"], items, pids, n_candidates=9, message_id="<d1@example.test>",
                            more=[(ScoredPaper(store.get_papers([extra])[extra], 0.3, "why not"), extra)])
    reply = _raw_reply("ada@example.test", "-4 +5", message_id="<r9@x>")
    assert ingest_raw(store, reply, mailbox="INBOX", uid=9, settings=settings)[0] == "feedback"
    assert {v.paper_id: v.value for v in store.votes("ada")} == {extra: -1}
    assert store.messages()[-1]["error"] == "no item 5 in the digest of 2025-03-03 (3 items in the email, 1 more on its page)"
    # the number that was not a vote is left in `digest status`'s recent events, not only in the message row
    [event] = [e for e in store.recent_events() if e["component"] == "feedback"]
    assert event["level"] == "WARNING" and event["message"] == (
        "email vote from ada@example.test: recorded 1, ignored the rest: no item 5 in the digest of 2025-03-03 "
        "(3 items in the email, 1 more on its page)")


def test_a_digest_page_ignores_an_unknown_done_note_and_a_signed_link_to_another_readers_digest(live):
    link, pids = sent_digest(live, "fay", "2025-10-01", ["Fay's paper"])
    other, _ = sent_digest(live, "gus", "2025-10-01", ["Gus's paper"])
    gus_digest = read_token(live.key, other.rsplit("/", 1)[1], max_age_days=None).paper_id
    crossed = live.link("fay", "digest", gus_digest)  # validly signed, but the digest is not fay's
    before = snapshot(live.store)
    with live.client() as client:
        odd = client.get(live.path(link) + "?done=bogus&item=1")
        assert odd.status_code == 200 and not _page_items(odd.text)[0]["status"]
        looked = client.get(live.path(crossed))
        posted = client.post(live.path(crossed), data=_item_form(crossed, 1, "up"))
    assert looked.status_code == posted.status_code == 404 and "Gus's paper" not in looked.text
    assert snapshot(live.store) == before


def test_links_on_a_digest_page_expire_with_its_own_link_and_lead_only_to_digests_that_existed_then(live):
    first, _ = sent_digest(live, "hal", "2025-11-01", ["First"])
    second, pids = sent_digest(live, "hal", "2025-11-02", ["Second"])
    third, _ = sent_digest(live, "hal", "2025-11-03", ["Third"])
    # the second digest's link was made 3 days ago; the first two digests were begun before, the third after
    issued = datetime.now(UTC) - timedelta(days=3)
    live.store.db.execute("UPDATE digests SET claimed_at = ? WHERE user = 'hal' AND period < '2025-11-03'",
                          [(issued - timedelta(minutes=1)).isoformat(timespec="seconds")])
    live.store.db.conn.commit()
    with time_machine.travel(issued, tick=False):
        second_id = read_token(live.key, second.rsplit("/", 1)[1], max_age_days=None).paper_id
        page_link = live.link("hal", "digest", second_id)
        vote_link = live.link("hal", "up", pids[0])
    with live.client() as client:
        page = BeautifulSoup(client.get(live.path(page_link)).text, "html.parser")
        vote = BeautifulSoup(client.get(live.path(vote_link)).text, "html.parser")
    assert page.select_one("#later") is None  # the third digest is not reachable from the second's old link
    derived = [page.select_one("#earlier")["href"], page.select_one("footer a")["href"],
               vote.select_one("#whole-digest")["href"]]
    stamps = {read_token(live.key, href.rsplit("/", 1)[1], max_age_days=None).issued_at for href in derived}
    assert stamps == {float(int(issued.timestamp()))}  # not a fresh lease: they expire when the page's link does


def test_a_renamed_profiles_page_reaches_the_digests_of_its_earlier_name(live):
    live.store.save_profile_texts({"ivy": 'email = "ivy@example.test"\n', "ivy2": 'email = "IVY@example.test"\n'})
    old_link, pids = sent_digest(live, "ivy", "2025-12-01", ["Sent as ivy"])
    sent_digest(live, "ivy2", "2025-12-02", ["Sent as ivy2"])
    old_id = read_token(live.key, old_link.rsplit("/", 1)[1], max_age_days=None).paper_id
    new_page = live.link("ivy2", "digest", old_id)  # an adopted digest: composed for the new name
    with live.client() as client:
        page = client.get(live.path(new_page))
        assert [i["title"] for i in _page_items(page.text)] == ["Sent as ivy"]
        later = BeautifulSoup(page.text, "html.parser").select_one("#later")["href"]
        after = client.get(urljoin(live.path(new_page), later)).text
        assert [i["title"] for i in _page_items(after)] == ["Sent as ivy2"]
        vote = BeautifulSoup(client.get(live.path(live.link("ivy2", "up", pids[0]))).text, "html.parser")
        assert vote.select_one("#whole-digest") is not None


def test_digest_page_prints_the_link_to_a_users_latest_or_dated_digest_page(live):
    sent_digest(live, "eli", "2025-08-01", ["Older"])
    sent_digest(live, "eli", "2025-08-02", ["Newer", "Also newer"], more=["Runner-up"])
    sent_digest(live, "eli", "2025-08-03", ["Never went out"], status="retry")
    runner = CliRunner()

    def page(*args):
        return runner.invoke(cli, ["--config", str(live.config), "page", "eli", *args])

    latest, dated = page(), page("--date", "2025-08-01")
    assert latest.exit_code == dated.exit_code == 0, latest.output + dated.output
    assert latest.output.splitlines()[0] == "eli: the digest of Sat 2 Aug 2025 (2 papers, 1 more above the floor)"
    with live.client() as client:
        shown = _page_items(client.get(live.path(latest.output.splitlines()[1])).text)
        assert [i["title"] for i in shown] == ["Newer", "Also newer", "Runner-up"]
        assert [i["title"] for i in _page_items(client.get(live.path(dated.output.splitlines()[1])).text)] == ["Older"]
    none, bad = page("--date", "2025-08-03"), page("--date", "August")
    assert none.exit_code == 1 and "eli: no digest with papers went out on 2025-08-03" in none.output
    # a quiet day with papers below the bar has a page too, and `digest page --date` finds it
    sent_digest(live, "eli", "2025-07-30", [], below=["Almost", "Nearly"])
    quiet = page("--date", "2025-07-30")
    assert quiet.exit_code == 0 and quiet.output.splitlines()[0] == \
        "eli: the digest of Wed 30 Jul 2025 (0 papers, the best 2 below it)"
    assert bad.exit_code == 1 and bad.output == "error: --date 'August': not a date; write it like 2026-11-28\n"


def test_a_url_with_a_trailing_slash_is_not_redirected_with_the_host_header(live):
    link, _ = sent_digest(live, "jan", "2026-01-01", ["Slash"])
    with live.client() as client:
        answer = client.get(live.path(link) + "/", headers={"host": "evil.example"})
    assert answer.status_code == 404 and "location" not in answer.headers


def test_a_digest_page_says_what_is_so_now_and_where_newer_digests_are(live):
    link, pids = sent_digest(live, "kit", "2026-02-01", ["Mine", "Also mine"], more=["Runner-up"])
    with live.client() as client:
        # a ?done= note only while it is true: no vote was given on paper 2
        assert not _page_items(client.get(live.path(link) + "?done=up&item=2").text)[1]["status"]
        client.post(live.path(link), data=_item_form(link, 1, "up"))
        client.post(live.path(link), data=_item_form(link, 3, "down"))
        page = client.get(live.path(link) + "?done=down&item=3").text
        assert _page_items(page)[2]["status"] == "Thanks, recorded: 👎 Less like this."
        assert "you voted on 1 of them and 1 of the runners-up" in page and 'id="newer"' not in page
        sent_digest(live, "kit", "2026-02-02", ["Later"])  # begun after the link above was made
        live.store.db.execute("UPDATE digests SET claimed_at = '2099-01-01T00:00:00+00:00' WHERE user = 'kit' AND "
                              "period = '2026-02-02'")
        live.store.db.conn.commit()
        page = BeautifulSoup(client.get(live.path(link)).text, "html.parser")
    assert page.select_one("#later") is None and "from their own emails" in page.select_one("#newer").get_text()


def test_a_digest_begun_in_the_same_second_as_a_link_was_made_is_reachable_from_it(live):
    first, _ = sent_digest(live, "lou", "2026-03-01", ["First"])
    second, _ = sent_digest(live, "lou", "2026-03-02", ["Second"])
    issued = read_token(live.key, first.rsplit("/", 1)[1], max_age_days=None).issued_at
    same_second = datetime.fromtimestamp(issued, UTC).isoformat(timespec="seconds")
    live.store.db.execute("UPDATE digests SET claimed_at = ? WHERE user = 'lou'", [same_second])
    live.store.db.conn.commit()
    with live.client() as client:
        page = BeautifulSoup(client.get(live.path(first)).text, "html.parser")
    assert page.select_one("#later") is not None  # claimed_at <= the link's issue time, to the second
    # a copy resent after a crash: its digest was claimed again after this link was made; it stays in the series
    live.store.db.execute("UPDATE digests SET claimed_at = '2099-01-01T00:00:00+00:00' WHERE user = 'lou' AND "
                          "period = '2026-03-02'")
    live.store.db.conn.commit()
    second_page = live.link("lou", "digest", read_token(live.key, second.rsplit("/", 1)[1], max_age_days=None).paper_id)
    with live.client() as client:
        page = BeautifulSoup(client.get(live.path(second_page)).text, "html.parser")
    assert page.select_one("#earlier") is not None


def test_a_renamed_readers_page_shows_and_undoes_the_votes_of_their_earlier_name(live):
    live.store.save_profile_texts({"max": 'email = "max@example.test"\n', "max2": 'email = "max@example.test"\n'})
    old_link, pids = sent_digest(live, "max", "2026-04-01", ["Voted as max"])
    live.store.record_vote("max", pids[0], 1)
    new_link = live.link("max2", "digest", read_token(live.key, old_link.rsplit("/", 1)[1], max_age_days=None).paper_id)
    with live.client() as client:
        assert _page_items(client.get(live.path(new_link)).text)[0]["pressed"] == ["up"]
        client.post(live.path(new_link), data=_item_form(new_link, 1, "undo"))
        assert _page_items(client.get(live.path(new_link)).text)[0]["pressed"] == []
    assert live.store.get_vote("max", pids[0]) == 0


def test_a_renamed_reader_has_one_vote_per_paper_the_last_given_under_either_name(live):
    # rho.toml became rho2.toml (same address). rho2 said 👎 on her page; then she pressed 👍 behind a link of an
    # old email, made for "rho": her last choice is 👍 everywhere (both pages, the ranking), not two votes of which
    # the ranking keeps the older
    live.store.save_profile_texts({"rho": 'email = "rho@example.test"\n', "rho2": 'email = "RHO@example.test"\n'})
    profile = _profile_file(live, "rho2", "rho@example.test", [("Anything", "Papers.")])
    old_page, pids = sent_digest(live, "rho", "2026-07-01", ["Voted under both names", "Voted by reply"])
    new_page = live.link("rho2", "digest", read_token(live.key, old_page.rsplit("/", 1)[1], max_age_days=None).paper_id)
    up = live.link("rho", "up", pids[0])
    try:
        with live.client() as client:
            client.post(live.path(new_page), data=_item_form(new_page, 1, "down"))
            assert "You said <strong>👎 Less like this</strong>" in client.get(live.path(up)).text  # the old link knows
            assert client.post(live.path(up), data=_form(up)).status_code == 303
            for page in (old_page, new_page):
                assert _page_items(client.get(live.path(page)).text)[0]["pressed"] == ["up"], page
            assert [(n, v.value) for n, v in reader_votes(live.store, ["rho2", *earlier_names(live.store, profile)])
                    if v.paper_id == pids[0]] == [("rho", 1)]
            # the link's Undo takes that vote back, whichever name holds it
            client.post(live.path(new_page), data=_item_form(new_page, 1, "down"))
            assert client.post(live.path(live.link("rho", "down", pids[0])), data=_form(live.link("rho", "down", pids[0]),
                                                                                     "undo")).status_code == 303
            assert live.store.votes_on(["rho", "rho2"], [pids[0]]) == {}
        # a reply to the old digest (made for "rho") replaces rho2's vote the same way
        live.store.record_vote("rho2", pids[1], -1)
        reply = EmailMessage()
        reply["From"], reply["To"], reply["Subject"] = "rho@example.test", "r@example.test", "Re: digest"
        reply["Message-ID"], reply["In-Reply-To"] = "<rho-reply@x>", live.store.digests("rho")[0]["message_id"]
        reply.set_content("+2\n")
        assert ingest_raw(live.store, reply.as_bytes(), mailbox="INBOX", uid=1, settings=live.settings)[0] == "feedback"
        assert live.store.votes_on(["rho2"], [pids[1]]) == {} and live.store.get_vote("rho", pids[1]) == 1
    finally:
        Path(profile.path).unlink()


def test_digest_page_finds_a_renamed_readers_digests_by_the_address_in_their_profile_file(live):
    live.store.save_profile_texts({"ned": 'email = "ned@example.test"\n'})
    sent_digest(live, "ned", "2026-05-01", ["Sent as ned"])
    profiles = live.config.parent / "profiles"
    (profiles / "ned2.toml").write_text('email = "NED@example.test"\n[[interests]]\nlabel = "x"\n')
    try:
        shown = CliRunner().invoke(cli, ["--config", str(live.config), "page", "ned2"])
        assert shown.exit_code == 0, shown.output
        with live.client() as client:  # the server knows ned2's address from the same file
            page = client.get(live.path(shown.output.splitlines()[1])).text
    finally:
        (profiles / "ned2.toml").unlink()
    assert [i["title"] for i in _page_items(page)] == ["Sent as ned"]


def test_the_page_of_a_digest_not_sent_yet_opens_even_when_nothing_was_sent_to_the_reader(live):
    # its first copy may have arrived although the run died before recording it (it is resent later)
    link, _ = sent_digest(live, "oli", "2026-06-01", ["Pending"], status="retry")
    with live.client() as client:
        page = client.get(live.path(link))
    assert page.status_code == 200 and [i["title"] for i in _page_items(page.text)] == ["Pending"]
    assert 'id="earlier"' not in page.text and 'id="newer"' not in page.text


# ---- what a screen reader gets ---------------------------------------------------------------------------
@pytest.mark.browser
def test_a_screen_reader_gets_headings_buttons_that_name_their_paper_and_titles_that_say_what_happened(live, browser):
    # the vote page had no heading at all, a digest page's papers were no headings to move between, its 30-odd
    # buttons were all read "More like this" / "Undo" without their paper, and a page's title stayed the same
    # after a press (the first thing a screen reader reads when the page after it loads)
    found = live.paper("Wombat burrow acoustics", "Low-frequency sound in wombat burrows.")
    titles = ["Sparse attention for long documents", "Protein folding with diffusion"]
    link, pids = sent_digest(live, "zoe", "2025-05-02", titles, more=["Tiny robots that swim"])
    up = live.link("zoe", "up", pids[0])

    def label(element: str) -> str:
        return browser._cmd("GET", f"/element/{element}/computedlabel")

    def names(css: str) -> list[str]:
        return [label(e) for e in browser.find_all(css)]

    def title() -> str:
        return browser.execute("return document.title")

    seen = set()
    browser.get(up)
    assert names("h1") == [titles[0]] and title() == f"👍 More like this? · {titles[0]}"
    assert browser.execute("return getComputedStyle(document.querySelector('h1 .title')).fontSize") == "18px"
    seen.add(title())
    browser.click("#vote")
    browser.wait_for("#undo")
    assert title() == f"Recorded: 👍 More like this · {titles[0]}" and live.store.get_vote("zoe", pids[0]) == 1
    seen.add(title())
    browser.click("#undo")
    browser.wait_for("#vote")
    assert title() == f"Vote removed · {titles[0]}" and live.store.get_vote("zoe", pids[0]) == 0
    seen.add(title())

    browser.get(link)
    page_title = "Your paper digest of Fri 2 May 2025"
    assert names("h1") == [page_title] and title() == page_title
    assert names("h2") == ["The papers of the email", "Also above your bar that day", "Find a paper in your alerts"]
    assert names("h3") == [*titles, "Tiny robots that swim"]
    assert browser.execute("return document.querySelector('#papers').getBoundingClientRect().height") <= 1
    assert names("#item-2 form.votes button") == ["More like this: paper 2", "Less like this: paper 2"]
    assert browser.text("#item-2 button[value=up]") == "👍 More like this"  # what is seen is unchanged
    seen.add(title())
    browser.click("#item-2 button[value=down]")
    browser.wait_for("#item-2 button[value=undo]")
    assert title() == f"Recorded: 👎 Less like this, paper 2 · {page_title}"
    assert names("#item-2 form.votes button") == ["More like this: paper 2", "Less like this: paper 2",
                                                  "Undo: paper 2"]
    seen.add(title())
    browser.click("#item-2 button[value=undo]")
    browser.wait_for("#item-2 .status")
    assert title() == f"Vote removed, paper 2 · {page_title}" and live.store.get_vote("zoe", pids[1]) == 0
    seen.add(title())
    browser.get(link + "?q=wombat")
    assert title() == f"Search “wombat” · {page_title}"
    assert names("#found-1 form.votes button") == ["More like this: Wombat burrow acoustics",
                                                  "Less like this: Wombat burrow acoustics"]
    assert names("#found-1 h3") == ["Wombat burrow acoustics"] and live.store.get_vote("zoe", found) == 0
    seen.add(title())

    browser.get(live.link("zoe", "unsubscribe"))
    assert title() == "Pause your digests?"
    seen.add(title())
    browser.click("#pause")
    browser.wait_for("#resume")
    assert title() == "Digests paused"
    seen.add(title())
    browser.click("#resume")
    deadline = time.monotonic() + 5
    while title() == "Digests paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert title() == "Digests on again" and names("h1") == ["Your digests are on again."]
    seen.add(title())
    assert len(seen) == 10  # every state its own title


@pytest.mark.browser
def test_unfolding_the_papers_below_the_bar_by_keyboard_keeps_the_focus_on_its_button(live, browser):
    # the button hid itself once pressed, so the focus fell back to the page's body: a screen reader said nothing
    link, _ = sent_digest(live, "kit", "2025-05-03", ["Axolotl limbs"], below=["Salamander tails", "Newt eyes"])
    browser.get(link)
    summary = browser.find("details.below > summary")
    browser.execute("arguments[0].focus()", {"element-6066-11e4-a52e-4f735466cecf": summary})

    def press(key: str) -> None:
        browser._cmd("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})

    def label() -> str:
        return browser._cmd("GET", f"/element/{summary}/computedlabel")

    assert label() == "Show the 2 papers below your bar"
    press("\ue007")  # Enter
    assert browser.execute("return document.querySelector('details.below').open")
    assert browser.execute("return document.activeElement === arguments[0]",
                           {"element-6066-11e4-a52e-4f735466cecf": summary})
    assert browser.execute("return arguments[0].matches(':focus-visible')",
                           {"element-6066-11e4-a52e-4f735466cecf": summary})
    assert label() == "Hide the 2 papers below your bar"
    visible = "return document.querySelector(arguments[0]).checkVisibility()"  # the abstracts' own more / less
    assert browser.execute(visible, "#item-2 .abstract .open-label") and not browser.execute(visible, "#item-2 .abstract .close-label")
    press("\ue004")  # Tab: on into the first paper below the bar
    assert browser.execute("return document.activeElement.closest('article').id") == "item-2"
