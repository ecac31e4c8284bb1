"""`digest run`: the daemon sends each digest at its local time exactly once, catches up after downtime,
follows profile edits, stops cleanly, and survives kill -9.

In-process tests run the real Daemon (APScheduler, worker thread, the real model, the real pipeline writing
to an outbox) with the clock moved by time-machine; the subprocess tests run `python -m digest run` against
the real Dovecot + SMTP servers.
"""

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine
from conftest import hold_write_lock

from digest.config import load_settings
from digest.embed import content_hash
from digest.errors import DigestError
from digest.pipeline import ingest_paths
from digest.profiles import load_profile
from digest.schedule import SWEEP_MINUTES, WATCH_SECONDS, Daemon, next_send
from digest.store import Store

REPO = Path(__file__).resolve().parent.parent
ALERT = REPO / "sample_inbox" / "02-scholar-allamanis-related-research.eml"  # 3 papers: quick to embed
SECOND_ALERT = REPO / "sample_inbox" / "03-scholar-cell-cell-communication-citations.eml"
ALERT_TITLE = "Personalized Code Recommendation"  # one of its papers, picked for a code-ML profile

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def embedder():
    from digest.embed import Embedder

    shared = Embedder()
    assert shared.dimension == 384 + 768  # the default MiniLM + mpnet ensemble, loaded once for every daemon
    return shared


def write_profile(directory: Path, user: str, *, tz: str = "UTC", send_at: str = "07:30", **extra) -> Path:
    lines = [f'email = "{extra.pop("email", f"{user}@example.test")}"', f'timezone = "{tz}"',
             f'send_at = "{send_at}"']
    lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {str(v).lower()}"
              for k, v in extra.items()]
    lines += ["[[interests]]", 'label = "Machine learning for code"',
              'description = "Neural models of source code and programs as graphs"']
    path = directory / f"{user}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path):
    """A data dir, a profiles dir and a config with an outbox and no web server."""
    (tmp_path / "profiles").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path / "profiles"}"\n'
                      f'outbox = "{tmp_path / "outbox"}"\n[web]\nenabled = false\n'
                      '[schedule]\ngrace_minutes = 180\nshutdown_timeout = 20\n')
    return tmp_path, config


def outbox(tmp_path) -> list[str]:
    folder = tmp_path / "outbox"
    return sorted(p.name for p in folder.glob("*.eml")) if folder.exists() else []


async def until(condition, timeout=60.0, step=0.05):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition.__doc__ or condition}")
        await asyncio.sleep(step)


def drive(daemon: Daemon, scenario, timeout=120.0) -> int:
    """Run the daemon in this thread's event loop while ``scenario()`` runs; stop it when it ends."""
    async def main():
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(scenario(), timeout)
        finally:
            if not daemon.stopping:
                daemon.request_stop()
        return await task

    return asyncio.run(main())


def text_of(raw: bytes) -> str:
    """The text/plain part of a digest email."""
    return message_from_bytes(raw, policy=default).get_body(("plain",)).get_content()


def records(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


# -- on time, in the user's time zone ----------------------------------------------------------------------
def test_the_digest_goes_out_at_07_30_london_time_on_the_day_the_clocks_go_forward(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="Europe/London", send_at="07:30")
    settings = load_settings(config)
    # 31 Mar 2024: British Summer Time starts; 07:30 BST is 06:30 UTC. Start three seconds before.
    with time_machine.travel(datetime(2024, 3, 31, 6, 29, 57, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        yesterday = store.claim_digest("ada", "2024-03-29")
        store.mark_digest(yesterday, "sent")  # ada had Friday's digest; Saturday's was missed (daemon down)
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: outbox(tmp_path))
            assert datetime.now(UTC) >= datetime(2024, 3, 31, 6, 30, tzinfo=UTC)

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == ["ada-2024-03-31.eml"]
    row = store.digest_for("ada", "2024-03-31")
    assert row["status"] == "sent" and row["n_items"] >= 1
    # at its send time (a loaded machine may take a minute or two to rank it), not before, nor hours later
    assert "2024-03-31T06:30:00" <= row["claimed_at"] < "2024-03-31T06:35:00"
    assert ALERT_TITLE in text_of((tmp_path / "outbox" / "ada-2024-03-31.eml").read_bytes())
    # Saturday's digest, 23 hours late, is not sent but said once, with user and period
    skipped = records(caplog, "job=catch-up user=ada period=2024-03-30: missed the digest")
    assert len(skipped) == 1 and "beyond schedule.grace_minutes = 180" in skipped[0].getMessage()
    assert any("missed the digest for 2024-03-30" in e["message"] for e in store.recent_events())
    assert records(caplog, "job=send user=ada period=2024-03-31: wrote ")


def test_each_user_gets_their_digest_at_their_own_local_time(home, embedder):
    tmp_path, config = home
    # 07:00 in Tokyo is 22:00 UTC the day before; 18:00 in Los Angeles (PDT) is 01:00 UTC the next day
    write_profile(tmp_path / "profiles", "kei", tz="Asia/Tokyo", send_at="07:00")
    write_profile(tmp_path / "profiles", "lou", tz="America/Los_Angeles", send_at="18:00")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 21, 59, 58, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: outbox(tmp_path))
            jobs = {job.id: job.next_run_time for job in daemon.scheduler.get_jobs()}
            assert jobs["send:lou"] == datetime(2024, 6, 3, 18, 0, tzinfo=ZoneInfo("America/Los_Angeles"))

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == ["kei-2024-06-04.eml"]  # Tokyo's date
    assert store.digest_for("kei", "2024-06-04")["claimed_at"] >= "2024-06-03T22:00:00"
    assert store.digest_for("lou", "2024-06-03") is None


# -- catch-up and restarts -------------------------------------------------------------------------------------
def test_a_digest_missed_within_the_grace_window_is_sent_once_and_a_restart_sends_nothing(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="America/New_York", send_at="07:30")
    settings = load_settings(config)
    # 12:30 UTC = 08:30 EDT: an hour after ada's send time, inside the 3 h grace window
    with time_machine.travel(datetime(2024, 6, 3, 12, 30, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])

        async def first():
            await until(lambda: outbox(tmp_path))

        assert drive(Daemon(settings, embedder=embedder), first) == 0
        assert records(caplog, "job=catch-up user=ada period=2024-06-03: due 07:30 America/New_York (1 h ago)")

        caplog.clear()
        restarted = Daemon(settings, embedder=embedder)

        async def second():
            await until(lambda: restarted.ready.is_set())

        assert drive(restarted, second) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]
    assert [d["attempts"] for d in store.digests("ada")] == [1]
    assert not records(caplog, "job=send") and not records(caplog, "job=catch-up")


def test_a_digest_refused_for_an_address_since_corrected_is_sent_to_the_new_one_and_only_that(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", send_at="07:30")  # ada@example.test, corrected after the refusal
    write_profile(tmp_path / "profiles", "bob", send_at="07:30")  # refused at the address the profile still names
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), tick=True):  # 30 min after the send time
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        store.mark_digest(store.claim_digest("ada", "2024-06-03"), "failed", error="550 5.1.1 no such user",
                          address="ada@exmaple.test")
        store.mark_digest(store.claim_digest("bob", "2024-06-03"), "failed", error="550 5.1.1 no such user",
                          address="bob@example.test")
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: outbox(tmp_path))
            await until(lambda: daemon.ready.is_set())

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]  # bob's address is the refused one: not tried again
    assert store.digest_for("ada", "2024-06-03")["status"] == "sent"
    assert store.digest_for("bob", "2024-06-03")["status"] == "failed"
    assert records(caplog, "job=send user=ada period=2024-06-03: wrote")


def test_a_digest_missed_beyond_the_grace_window_is_skipped_and_logged(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 11, 0, tzinfo=UTC), tick=True):  # 3.5 h late
        store = Store(settings.db_path)
        store.mark_digest(store.claim_digest("ada", "2024-06-02"), "sent")
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: daemon.ready.is_set())

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == []
    assert store.digest_for("ada", "2024-06-03") is None
    [skip] = records(caplog, "missed the digest")
    assert skip.levelno == logging.WARNING
    assert "user=ada period=2024-06-03" in skip.getMessage() and "3 h 30 min ago" in skip.getMessage()
    # a later start sees the same missed day again: `digest status` still lists it once
    with time_machine.travel(datetime(2024, 6, 3, 12, 0, tzinfo=UTC), tick=True):
        daemon = Daemon(settings, embedder=embedder)

        async def again():
            await until(lambda: daemon.ready.is_set())

        assert drive(daemon, again) == 0
    assert len(records(caplog, "missed the digest")) == 2
    assert len([e for e in store.recent_events(20) if "missed the digest for 2024-06-03" in e["message"]]) == 1


def test_a_digest_a_run_started_is_finished_beyond_the_grace_window(home, embedder, caplog):
    """`digest send` stopped with Ctrl-C at 13:49 for a 06:00 digest: status promised "the next `digest run` or
    `digest send` sends it, once", but the daemon's catch-up skipped it as beyond the grace window, silently."""
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="06:00")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 13, 49, tzinfo=UTC), tick=True):  # 7 h 49 min late
        store = Store(settings.db_path)
        store.mark_digest(store.claim_digest("ada", "2024-06-02"), "sent")
        store.claim_digest("ada", "2024-06-03")  # the interrupted run's claim ...
        store.close()  # ... which it no longer works on
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: outbox(tmp_path))

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]
    assert records(caplog, "beyond the grace window, but an earlier run started it (left claimed): finishing it now")
    assert not records(caplog, "missed the digest")


def test_a_reader_who_moved_west_after_a_digest_does_not_get_the_older_day_sent_too(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    # Tokyo's 07:30 digest of 4 June went out; then the profile moved to Los Angeles, 18:00 (still 3 June there)
    write_profile(tmp_path / "profiles", "ada", tz="America/Los_Angeles", send_at="18:00")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 4, 0, 59, 58, tzinfo=UTC), tick=True):  # 17:59:58 PDT, 3 June
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        store.mark_digest(store.claim_digest("ada", "2024-06-04"), "sent")
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: records(caplog, "job=send user=ada period=2024-06-03: passed over"))

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == [] and store.digest_for("ada", "2024-06-03") is None  # one digest, not two


def test_a_weekly_digest_is_not_sent_on_its_off_days(home, embedder):
    tmp_path, config = home
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30", frequency="weekly:mon")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 4, 7, 30, 30, tzinfo=UTC), tick=True):  # Tuesday 07:30:30
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: daemon.ready.is_set())
            assert daemon.scheduler.get_job("send:ada").next_run_time == datetime(2024, 6, 10, 7, 30, tzinfo=UTC)

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == []


def test_a_user_who_unsubscribed_by_link_gets_no_digest_and_no_catch_up(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 7, 29, 58, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        store.pause_user("ada", via="web")
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: records(caplog, "job=send user=ada period=2024-06-03: paused"))
            await daemon._sweep_job()  # the catch-up does not try again

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == [] and store.digest_for("ada", "2024-06-03")["status"] == "skipped"
    assert len(records(caplog, "user=ada")) == 2  # scheduled, then paused: said once
    # resumed later that day: the day was the pause's, so no catch-up sends it, and no "missed" warning comes
    store.resume_user("ada")
    with time_machine.travel(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), tick=True):
        daemon = Daemon(settings, embedder=embedder)

        async def later():
            await until(lambda: daemon.ready.is_set())

        assert drive(daemon, later) == 0
    assert outbox(tmp_path) == [] and not records(caplog, "missed the digest")


# -- profiles are watched --------------------------------------------------------------------------------------
def test_added_edited_broken_and_removed_profiles_reschedule_without_a_restart(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    profiles = tmp_path / "profiles"
    settings = load_settings(config)
    daemon = Daemon(settings, embedder=embedder)
    # send times six and seven hours away: nothing is due while the test runs
    later = datetime.now(UTC) + timedelta(hours=6)
    at_6h, at_7h = f"{later:%H:%M}", f"{later + timedelta(hours=1):%H:%M}"

    def next_run(user):
        job = daemon.scheduler.get_job(f"send:{user}")
        return job and job.next_run_time

    async def scenario():
        await until(lambda: daemon.ready.is_set())
        path = write_profile(profiles, "ada", send_at=at_6h)
        await until(lambda: next_run("ada"))
        assert next_run("ada") == next_send(load_profile(path), datetime.now(UTC))

        write_profile(profiles, "ada", send_at=at_7h)  # edited: rescheduled
        await until(lambda: next_run("ada") and f"{next_run('ada'):%H:%M}" == at_7h)

        path.write_text(path.read_text().replace(f'send_at = "{at_7h}"', 'send_at = "7h"'))  # broken
        await until(lambda: records(caplog, "send_at: must look like"))
        write_profile(profiles, "ben", send_at=at_6h)  # another change: ada's error is not repeated
        await until(lambda: next_run("ben"))
        await asyncio.sleep(3 * WATCH_SECONDS)
        assert f"{next_run('ada'):%H:%M}" == at_7h  # ada keeps her last good schedule

        write_profile(profiles, "ada", send_at=at_6h)  # fixed
        await until(lambda: f"{next_run('ada'):%H:%M}" == at_6h)
        path.unlink()  # removed: no more digests
        await until(lambda: next_run("ada") is None)

        ben = profiles / "ben.toml"
        ben.write_text("email = [")  # broken, then broken another way (no fix), then deleted rather than fixed
        await until(lambda: records(caplog, "ben.toml:1: not valid TOML"))
        ben.write_text('email = "ben@example.test"\nsend_at = "7h"\n')
        await until(lambda: records(caplog, "ben.toml:2: send_at"))
        ben.unlink()
        await until(lambda: records(caplog, "ben.toml was removed, and its error with it"))

        # ada's file breaks (her last good version stands in), then cid's file, which loads, takes her address:
        # the stand-in gives way, and the log says why ada gets nothing rather than "removed"
        path = write_profile(profiles, "ada", send_at=at_6h)
        write_profile(profiles, "cid", send_at=at_7h)
        await until(lambda: next_run("ada") and next_run("cid"))
        path.write_text(path.read_text().replace(f'send_at = "{at_6h}"', 'send_at = "6h"'))
        await until(lambda: len(records(caplog, "send_at: must look like")) == 2)
        write_profile(profiles, "cid", send_at=at_7h, email="ada@example.test")
        await until(lambda: next_run("ada") is None)
        assert next_run("cid")

    assert drive(daemon, scenario) == 0
    [gone] = records(caplog, "job=profiles user=ada: the profile cannot be used")
    assert gone.getMessage().endswith("no digests until it is fixed") and gone.levelno == logging.WARNING
    assert records(caplog, "ada.toml: cannot serve its last good version: that names ada@example.test")
    error = records(caplog, "send_at: must look like")[0]
    assert error.levelno == logging.ERROR and "ada.toml:3: send_at" in error.getMessage()
    assert "still sending with its last good version" in error.getMessage()
    [fixed] = records(caplog, "job=profiles: fixed:")
    assert fixed.getMessage().endswith("ada.toml")  # ben's was not fixed: his file is gone
    assert records(caplog, "job=profiles user=ada: profile removed")
    assert outbox(tmp_path) == []


def test_an_edited_or_broken_library_file_reaches_the_running_daemon_and_is_reported_once(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    profiles = tmp_path / "profiles"
    library = tmp_path / "zotero.bib"  # outside the profiles folder, as a reference manager would keep it
    library.write_text("@article{a, title = {Learning to represent programs with graphs}}\n")
    later = datetime.now(UTC) + timedelta(hours=6)
    write_profile(profiles, "ada", send_at=f"{later:%H:%M}", library=str(library))
    daemon = Daemon(load_settings(config), embedder=embedder)

    def titles():
        return [s.title for s in daemon.profiles["ada"].library_seeds]

    async def scenario():
        await until(lambda: daemon.ready.is_set())
        assert titles() == ["Learning to represent programs with graphs"]
        with library.open("a") as f:
            f.write("@article{b, title = {Code2vec: learning distributed representations of code}}\n"
                    "@article{c, year = 2019}\n")
        await until(lambda: len(titles()) == 2)
        await until(lambda: records(caplog, "has no title"))
        # the new entry is embedded when the library is read, long before a send time
        await until(lambda: records(caplog, "job=embed user=ada: 1 new profile texts embedded"))
        new_text = "Code2vec: learning distributed representations of code"
        assert daemon.loop_store.get_vectors(embedder.name, {content_hash(new_text)})
        library.write_text("half-written export\n")
        await until(lambda: records(caplog, "no BibTeX entry with a title found"))
        await asyncio.sleep(3 * WATCH_SECONDS)
        assert len(titles()) == 2  # the last good read keeps serving

    assert drive(daemon, scenario) == 0
    assert records(caplog, "job=profiles user=ada: profile updated")
    # at start: the profile's interest and the library's first entry, once
    assert len(records(caplog, "job=embed user=ada: 2 new profile texts embedded")) == 1
    [warning] = records(caplog, "has no title")
    assert warning.levelno == logging.WARNING and f"{library}:3: @article{{c}} has no title" in warning.getMessage()
    [error] = records(caplog, "no BibTeX entry with a title found")
    assert error.levelno == logging.ERROR and "its last good read (2 papers) keeps serving" in error.getMessage()
    assert outbox(tmp_path) == []


def test_a_note_on_a_profile_file_is_logged_as_its_readers_not_as_a_library_warning_of_user_none(home, caplog):
    """A profile's own note (max_items above what an email shows) was logged by `digest run` as
    'job=profiles user=None: library: profiles/big.toml:4: max_items: ...': no reader, and a library it is not
    about. Library warnings keep their label; a misnamed file, nobody's, has no user."""
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    profiles = tmp_path / "profiles"
    library = tmp_path / "zotero.bib"
    library.write_text("@article{a, title = {Learning to represent programs with graphs}}\n@article{c, year = 2019}\n")
    write_profile(profiles, "big", max_items=100, library=str(library))
    (profiles / "tess.toml.txt").write_text((profiles / "big.toml").read_text().replace("big@", "tess@"))
    settings = load_settings(config)
    store = Store(settings.db_path)
    try:
        Daemon(settings)._read_profiles(store)
    finally:
        store.close()
    [note] = records(caplog, "max_items: 100 papers")
    assert note.getMessage().startswith(f"job=profiles user=big: {profiles / 'big.toml'}:"), note.getMessage()
    [skipped] = records(caplog, "has no title")
    assert skipped.getMessage().startswith(f"job=profiles user=big: library: {library}:2:"), skipped.getMessage()
    [misnamed] = records(caplog, "tess.toml.txt")
    assert misnamed.getMessage().startswith("job=profiles: "), misnamed.getMessage()
    assert not records(caplog, "user=None")


def test_a_profile_added_after_its_send_time_gets_todays_digest_within_the_grace_window(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: daemon.ready.is_set())
            write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:45")
            await until(lambda: outbox(tmp_path))

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]
    # the schedule line says it goes now, not tomorrow
    [line] = records(caplog, "job=profiles user=ada: scheduled:")
    assert line.getMessage().endswith("; next the 2024-06-03 digest now (due 15 min ago, within the grace window)")


def test_resuming_a_paused_profile_or_moving_send_at_earlier_misses_nothing_and_warns_of_nothing(home, embedder,
                                                                                                 caplog):
    """paused = false at 12:00 for a 07:30 digest (beyond the grace window), or send_at moved from 18:00 to 07:30
    at 12:00: no send time was missed (the user paused, or the time was not theirs when it passed), so no
    WARNING "missed the digest ... skipped" in the log and in `digest status`'s recent errors; the next digest
    is tomorrow's, as the profiles line says."""
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30", paused=True)
    write_profile(tmp_path / "profiles", "ben", tz="UTC", send_at="18:00")
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 12, 0, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        for user in ("ada", "ben"):
            store.mark_digest(store.claim_digest(user, "2024-06-02"), "sent")
        daemon = Daemon(settings, embedder=embedder)

        async def scenario():
            await until(lambda: daemon.ready.is_set())
            write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30", paused=False)
            write_profile(tmp_path / "profiles", "ben", tz="UTC", send_at="07:30")
            await until(lambda: records(caplog, "job=profiles user=ben: rescheduled"))
            await asyncio.sleep(0.2)
            await until(lambda: daemon._sweep_task is not None and daemon._sweep_task.done())

        assert drive(daemon, scenario) == 0
    assert outbox(tmp_path) == []
    for user in ("ada", "ben"):
        [line] = records(caplog, f"job=profiles user={user}: rescheduled")
        assert line.getMessage().endswith("next Tue 2024-06-04 07:30 UTC")
    assert not records(caplog, "missed the digest")
    assert not [e for e in store.recent_events(20) if "missed the digest" in e["message"]]


def test_a_clock_set_back_a_day_and_then_forward_keeps_every_job_on_time(home, embedder, caplog):
    """APScheduler keeps next runs as wall-clock times: set back, the clock would stall the interval jobs (here
    the profile watcher) and a send job scheduled by the wrong clock for as long as the jump. The daemon sees
    the jump on the monotonic clock (time-machine moves the wall clock only, as an NTP step does) and moves
    them back; a jump forward sends the digest that fell due meanwhile, once."""
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    profiles = tmp_path / "profiles"
    write_profile(profiles, "ada", tz="UTC", send_at="11:00")
    settings = load_settings(config)
    # the machine booted with its clock a day ahead
    with time_machine.travel(datetime(2024, 6, 4, 10, 0, tzinfo=UTC), tick=True) as clock:
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        daemon = Daemon(settings, embedder=embedder)

        def next_run(job_id):
            job = daemon.scheduler.get_job(job_id)
            return job and job.next_run_time

        async def scenario():
            await until(lambda: daemon.ready.is_set())
            assert next_run("send:ada") == datetime(2024, 6, 4, 11, 0, tzinfo=UTC)
            clock.shift(timedelta(days=-1))  # NTP puts it right: 3 June, 10:00
            await until(lambda: records(caplog, "job=clock: the clock went back 1 d"), timeout=30)
            assert next_run("send:ada") == datetime(2024, 6, 3, 11, 0, tzinfo=UTC)
            assert next_run("sweep") <= datetime.now(UTC) + timedelta(minutes=SWEEP_MINUTES)
            write_profile(profiles, "ben", tz="UTC", send_at="12:00")  # the profile watcher still watches
            await until(lambda: next_run("send:ben"), timeout=3 * WATCH_SECONDS + 5)
            assert next_run("send:ben") == datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
            assert outbox(tmp_path) == []

            clock.shift(timedelta(hours=2, minutes=30))  # the machine slept: 12:30, both send times passed
            await until(lambda: len(outbox(tmp_path)) == 2, timeout=90)
            await asyncio.sleep(2 * WATCH_SECONDS)

        assert drive(daemon, scenario, timeout=240) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml", "ben-2024-06-03.eml"]
    assert [d["period"] for d in store.digests("ada")] == ["2024-06-03"]
    [back] = records(caplog, "job=clock: the clock went back")
    assert back.levelno == logging.WARNING and "went back 1 d;" in back.getMessage()
    assert records(caplog, "job=clock: the clock jumped 2 h 30 min forward")


class HeldEmbedder:
    """The session's real embedder, held at the start of two chunks of a library until the test lets it go: a
    digest falls due, and a stop comes, at a known point between chunks rather than in a race with the CPU."""

    def __init__(self, inner, library_texts: set[str]):
        self.inner, self.library, self.chunks = inner, library_texts, 0
        self.reached = [threading.Event(), threading.Event()]
        self.go = [threading.Event(), threading.Event()]

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts):
        if any(t in self.library for t in texts):
            n, self.chunks = self.chunks, self.chunks + 1
            if n in (1, 2):  # the library's second and third chunks
                self.reached[n - 1].set()
                assert self.go[n - 1].wait(120)
        return self.inner.encode(texts)


def test_a_long_library_embedding_gives_way_to_a_digest_due_and_to_a_stop_and_resumes_at_the_next_start(
        home, embedder, caplog):
    """A new library of 94 papers takes a while to embed: a digest due meanwhile is sent between two chunks, a
    SIGTERM stops it after the chunk at hand, and the next start embeds the rest."""
    from digest.library import read_library
    from digest.parse import iter_raw_messages, parse_message

    tmp_path, config = home
    caplog.set_level(logging.INFO)
    [(_, raw)] = list(iter_raw_messages(REPO / "tests" / "fixtures" / "emails" / "hf-trending-papers.txt"))
    papers = parse_message(raw).papers
    library = tmp_path / "library.bib"
    # abstracts cut to their first 300 characters: six chunks of a second or two each
    library.write_text("".join(f"@article{{p{i}, title = {{{p.title}}}, abstract = {{{p.abstract[:300]}}}}}\n"
                               for i, p in enumerate(papers)))
    write_profile(tmp_path / "profiles", "ben", send_at="18:00", library=str(library))
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), tick=True):
        store = Store(settings.db_path)
        ingest_paths(store, [ALERT])
        texts = {f"{s.title}. {s.abstract}" for s in read_library(library).seeds}
        hashes = {content_hash(t) for t in texts}
        assert len(hashes) == 94

        def embedded() -> int:
            return len(store.get_vectors(embedder.name, hashes))

        held = HeldEmbedder(embedder, texts)
        daemon = Daemon(settings, embedder=held)

        async def scenario():
            await until(lambda: held.reached[0].is_set(), timeout=120)  # one chunk of the library is stored
            # ada's profile arrives with a send time already past today: her digest is due now
            write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:45")
            await until(lambda: records(caplog, "job=catch-up user=ada"), timeout=60)  # queued behind the chunk
            held.go[0].set()
            await until(lambda: outbox(tmp_path), timeout=120)
            await until(lambda: held.reached[1].is_set(), timeout=60)  # the library goes on after the digest
            daemon.request_stop(signal.SIGTERM)
            held.go[1].set()

        assert drive(daemon, scenario) == 0  # a clean stop, within the shutdown timeout (20 s)
        assert outbox(tmp_path) == ["ada-2024-06-03.eml"]
        [gave_way] = records(caplog, "the rest after the digest due now")
        [sent] = records(caplog, "job=send user=ada")
        assert caplog.records.index(gave_way) < caplog.records.index(sent)
        [stopped] = records(caplog, "job=embed user=ben")[-1:]
        assert stopped.getMessage().endswith("; stopping")
        assert records(caplog, "job=stop: stopped cleanly")
        kept = embedded()
        assert kept == 47  # three chunks of 16, less the profile's interest, one of the texts of the first chunk

        caplog.clear()
        restarted = Daemon(settings, embedder=embedder)

        async def again():
            await until(lambda: records(caplog, "job=embed user=ben:"), timeout=120)

        assert drive(restarted, again) == 0
    assert embedded() == 94
    # only what was missing (the profile's interest is one more text, embedded at the first start)
    assert records(caplog, f"job=embed user=ben: {94 - kept} new profile texts embedded")
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]


def test_a_long_embedding_of_new_papers_says_how_far_it_got(home, embedder, caplog, monkeypatch):
    """151 new papers embedded after a poll: ~50 s of a silent log, as if the daemon had stalled."""
    import digest.schedule as schedule_module
    from digest.models import Paper

    tmp_path, config = home
    caplog.set_level(logging.INFO)
    config.write_text(config.read_text() + '[imap]\nhost = "127.0.0.1"\nsecurity = "plain"\n')
    settings = load_settings(config)
    monkeypatch.setattr(schedule_module, "EMBED_LOG_SECONDS", 0.0)  # every chunk, instead of every 15 s

    def poll(store, settings, *, stop):
        store.add_papers([Paper(f"A study of topic number {i} in depth") for i in range(40)])
        return "40 new papers"

    daemon = Daemon(settings, embedder=embedder, poll=poll)

    async def scenario():
        await until(lambda: records(caplog, "job=embed: 40 new papers embedded"), timeout=120)

    assert drive(daemon, scenario) == 0
    progress = [r.getMessage() for r in records(caplog, "embedded so far")]
    assert progress and progress[0].startswith("job=embed: 16 of 40 new papers embedded so far ("), progress


class FailingEmbedder:
    """The session's real embedder, failing on any batch that holds one of ``poison``'s texts."""

    def __init__(self, inner, poison: set[str]):
        self.inner, self.poison = inner, poison

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts):
        if any(t in self.poison for t in texts):
            raise RuntimeError("the model could not encode this batch")
        return self.inner.encode(texts)


def test_one_users_library_that_fails_to_embed_leaves_the_others_libraries_embedded(home, embedder, caplog):
    from digest.library import read_library

    tmp_path, config = home
    caplog.set_level(logging.INFO)
    libraries = {}
    for user, topic in (("ann", "protein folding"), ("bob", "graph neural networks"), ("cid", "dark matter")):
        libraries[user] = tmp_path / f"{user}.bib"
        libraries[user].write_text("".join(f"@article{{{user}{i}, title = {{A study of {topic}, part {i}}}}}\n"
                                           for i in range(3)))
        write_profile(tmp_path / "profiles", user, send_at="18:00", library=str(libraries[user]))
    texts = {u: {s.title for s in read_library(path).seeds} for u, path in libraries.items()}
    settings = load_settings(config)
    with time_machine.travel(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), tick=True):
        daemon = Daemon(settings, embedder=FailingEmbedder(embedder, texts["bob"]))

        async def scenario():
            await until(lambda: records(caplog, "job=embed user=cid"), timeout=120)
            daemon.request_stop(signal.SIGTERM)

        assert drive(daemon, scenario) == 0
    [failed] = records(caplog, "job=embed user=bob: failed")
    assert "the model could not encode this batch" in failed.getMessage()
    store = Store(settings.db_path)
    for user in ("ann", "cid"):  # before and after the failing one
        assert len(store.get_vectors(embedder.name, {content_hash(t) for t in texts[user]})) == 3, user
    assert not store.get_vectors(embedder.name, {content_hash(t) for t in texts["bob"]})
    assert any(e["user"] == "bob" and "could not encode" in e["message"] for e in store.recent_events())


# -- stopping ----------------------------------------------------------------------------------------------------
def test_a_stop_lets_the_running_poll_finish_and_starts_no_new_work(home, embedder, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    config.write_text(config.read_text() + '[imap]\nhost = "127.0.0.1"\nsecurity = "plain"\n')
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30")
    settings = load_settings(config)
    polls = []

    def slow_poll(store, settings, *, stop):
        """A poll that takes a while and does not look at `stop` (the worst case)."""
        polls.append("started")
        time.sleep(1.5)
        polls.append("finished")
        return "0 new messages"

    with time_machine.travel(datetime(2024, 6, 3, 7, 40, tzinfo=UTC), tick=True):
        daemon = Daemon(settings, embedder=embedder, poll=slow_poll)

        async def scenario():
            await until(lambda: "started" in polls)
            daemon.request_stop(signal.SIGTERM)

        assert drive(daemon, scenario) == 0
        assert polls[-1] == "finished"
        assert outbox(tmp_path) == []  # the digest was not started: nothing claimed
        assert Store(settings.db_path).digest_for("ada", "2024-06-03") is None
        assert records(caplog, "job=stop: stopped cleanly")

        # the next start sends it (still inside the grace window)
        restarted = Daemon(settings, embedder=embedder, poll=lambda store, settings, *, stop: "0 new messages")

        async def again():
            await until(lambda: outbox(tmp_path))

        assert drive(restarted, again) == 0
    assert outbox(tmp_path) == ["ada-2024-06-03.eml"]


@pytest.mark.parametrize("removed", ["digest.db", "digest.db-wal"])
def test_a_database_deleted_while_the_daemon_runs_stops_it_before_the_next_job(home, embedder, caplog, removed):
    tmp_path, config = home
    config.write_text(config.read_text() + '[imap]\nhost = "127.0.0.1"\nsecurity = "plain"\n')
    settings = load_settings(config)
    polls = []
    daemon = Daemon(settings, embedder=embedder, poll=lambda store, settings, *, stop: polls.append(1) or "0 new")

    async def scenario():
        await until(lambda: polls and daemon.ready.is_set())
        (settings.data_path / removed).unlink()  # by hand, while it runs
        await daemon._unit("poll (test)", daemon._poll_blocking, "test")

    assert drive(daemon, scenario) == 2  # a setup error: systemd's RestartPreventExitStatus=2 does not loop on it
    assert polls == [1], "no poll into a database that is gone"
    [line] = records(caplog, "while digest run was running; stopping")
    assert f"{settings.db_path}: {'deleted or moved' if removed == 'digest.db' else 'left without its -wal'}" \
        in line.getMessage()


def test_a_database_deleted_while_an_idle_daemon_without_polls_runs_stops_it_too(home, embedder, caplog):
    """No imap.host: no job runs between digests, so the profile watcher is what notices; the exit code says it."""
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    settings = load_settings(config)
    daemon = Daemon(settings, embedder=embedder)

    async def scenario():
        await until(lambda: daemon.ready.is_set())
        settings.db_path.unlink()
        await until(lambda: daemon.stopping, timeout=4 * WATCH_SECONDS)

    assert drive(daemon, scenario) == 2
    [line] = records(caplog, "job=watch: ")
    assert f"{settings.db_path}: deleted or moved while digest run was running; stopping" in line.getMessage()
    assert records(caplog, "job=stop: stopped, exit code 2") and not records(caplog, "stopped cleanly")


def test_other_programs_opening_checkpointing_and_closing_the_database_do_not_stop_the_daemon(home, embedder):
    """The -wal file the daemon watches must not vanish because another process (digest status, rank, backup, a
    separate web server, sqlite3) opened the database, checkpointed it and closed it: SQLite deletes the -wal only
    when the last connection closes, and the daemon holds its own."""
    tmp_path, config = home
    config.write_text(config.read_text() + '[imap]\nhost = "127.0.0.1"\nsecurity = "plain"\n')
    settings = load_settings(config)
    polls = []
    daemon = Daemon(settings, embedder=embedder, poll=lambda store, settings, *, stop: polls.append(1) or "0 new")
    other = ("import sys; from digest.store import Store\n"
             "s = Store(sys.argv[1]); s.log_event('INFO', 'test', 'another process')\n"
             "s.db.execute('PRAGMA wal_checkpoint(TRUNCATE)'); s.close()\n")

    async def scenario():
        await until(lambda: polls and daemon.ready.is_set())
        for n in range(3):
            subprocess.run([sys.executable, "-c", other, str(settings.db_path)], check=True, timeout=60)
            await daemon._unit("poll (test)", daemon._poll_blocking, "test")
            assert len(polls) == n + 2 and not daemon.stopping
        daemon.request_stop()

    assert drive(daemon, scenario) == 0
    assert (settings.data_path / "digest.db-wal").exists() is False  # the last connection closed it cleanly



def test_a_profile_added_while_another_process_holds_the_write_lock_is_scheduled_once_it_is_released(home, caplog,
                                                                                                       monkeypatch):
    """Another process (a `digest send`, an sqlite3 shell with an open transaction) holds the database's write lock
    for longer than SQLite's 30 s wait while a profile is added: the watcher could not record it, had already taken
    the change as seen, and never scheduled the new reader until a restart (their digests silently never went
    out), after an APScheduler traceback and a "maximum number of running instances" warning every 2 s. Now the
    change is read again once the lock is gone, with one precise line meanwhile. (The store's wait for a lock is
    6 s here instead of 30, to keep the test short.)"""
    import digest.store

    monkeypatch.setattr(digest.store, "BUSY_SECONDS", 6.0)
    tmp_path, config = home
    config.write_text(config.read_text() + '[model]\nname = "all-MiniLM-L6-v2"\n')  # the fast model: loaded at start
    caplog.set_level(logging.INFO)
    write_profile(tmp_path / "profiles", "ada", send_at="07:30")
    settings = load_settings(config)
    daemon = Daemon(settings)
    held_for = 14.0  # longer than the store's wait

    async def scenario():
        await until(lambda: daemon.ready.is_set())
        holder = hold_write_lock(settings.db_path, held_for)
        try:
            assert (await asyncio.to_thread(holder.stdout.readline)).strip() == "held"
            write_profile(tmp_path / "profiles", "cat", send_at="07:45")
            # said once the lock has lasted 6 s; nothing could be recorded meanwhile, so nothing changed yet
            await until(lambda: records(caplog, "job=profiles: a change in"), timeout=held_for + 10)
            assert holder.poll() is None and "cat" not in daemon.profiles
            await until(lambda: "cat" in daemon.profiles, timeout=held_for)  # read again once the lock is gone
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait()

    assert drive(daemon, scenario, timeout=180) == 0
    assert records(caplog, "job=profiles user=cat: scheduled: daily at 07:45 UTC")
    [unread] = records(caplog, "job=profiles: a change in")
    assert unread.levelno == logging.ERROR
    message = unread.getMessage()
    assert str(tmp_path / "profiles") in message and "held the database's write lock for 6 s" in message
    assert "it is read as soon as the database can be written" in message
    assert len(records(caplog, "the database can be written again; the profile changes are read")) == 1
    assert not records(caplog, "maximum number of running instances")
    assert not [r for r in caplog.records if r.exc_info or "raised an exception" in r.getMessage()]


@pytest.mark.mail
def test_a_poll_that_meets_the_write_lock_of_another_process_says_so_and_the_next_poll_stores_the_mail(
        home, caplog, mail_servers, monkeypatch):
    """The daemon's poll while another process holds the database's write lock beyond SQLite's 30 s: one line with
    the cause and what to do (it was `failed: OperationalError: database is locked`, then a second 30-s wait to
    write that as an event, which, before a digest, failed the digest too), and the alert, left unmarked on the
    server, is stored by the next poll."""
    import digest.store
    from digest.ingest import poll_all

    tmp_path, config = home
    alerts, password = mail_servers.new_user("alerts")
    mail_servers.append(alerts, ALERT.read_bytes())
    config.write_text(config.read_text() + f"""[model]
name = "all-MiniLM-L6-v2"
[imap]
host = "127.0.0.1"
port = {mail_servers.imap_port}
security = "plain"
username = "{alerts}"
""")
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", password)
    monkeypatch.setattr(digest.store, "BUSY_SECONDS", 4.0)  # the store's wait for a lock: 30 s, too long for a test
    settings = load_settings(config)
    caplog.set_level(logging.INFO)
    daemon = Daemon(settings, poll=poll_all)
    try:
        holder = hold_write_lock(settings.db_path, 7)
        try:
            assert holder.stdout.readline().strip() == "held"
            daemon._poll_blocking("test")
        finally:
            holder.wait(timeout=60)
        [failed] = records(caplog, "job=poll (test): failed")
        message = failed.getMessage()
        assert f"{settings.db_path}: another process held the database's write lock for 4 s" in message
        assert "find the process keeping it" in message and "the next poll reads again" in message
        [(_, flags, _)] = mail_servers.messages(alerts)
        assert b"$Digested" not in flags  # not stored, so not marked
        daemon._poll_blocking("again")
        assert records(caplog, "job=poll (again): INBOX: 1 fetched, 1 ingested")
        [(_, flags, _)] = mail_servers.messages(alerts)
        assert b"$Digested" in flags
        assert daemon.work_store.count_papers() == 3
    finally:
        daemon._close()


def test_a_digest_whose_send_meets_the_write_lock_of_another_process_is_sent_by_the_next_catch_up(home, caplog,
                                                                                                 monkeypatch):
    """The database is write-locked by another process for longer than SQLite's 30 s when a digest is due: the send
    job fails with the cause and fix, says that nothing went out and that the catch-up tries again (it said only
    `failed: ...`), and the next catch-up, the lock gone, sends it once. (The store waits 5 s for a lock here.)"""
    import digest.store

    monkeypatch.setattr(digest.store, "BUSY_SECONDS", 5.0)
    tmp_path, config = home
    config.write_text(config.read_text() + '[model]\nname = "all-MiniLM-L6-v2"\n')
    caplog.set_level(logging.INFO)
    due = local_minute("UTC", timedelta(minutes=-2))
    write_profile(tmp_path / "profiles", "dan", send_at=f"{due:%H:%M}")
    settings = load_settings(config)
    daemon = Daemon(settings)
    assert daemon.embedder.dimension == 384  # loaded now: the start's catch-up meets the lock at once
    holder = hold_write_lock(settings.db_path, 12)

    async def scenario():
        await until(lambda: daemon.ready.is_set(), timeout=90)  # the start's catch-up met the lock
        await asyncio.to_thread(holder.wait, 60)
        assert outbox(tmp_path) == []
        await daemon._sweep_job()  # the next catch-up (every SWEEP_MINUTES)

    try:
        assert holder.stdout.readline().strip() == "held"
        assert drive(daemon, scenario, timeout=180) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    [failed] = records(caplog, "job=send user=dan: failed")
    message = failed.getMessage()
    assert f"{settings.db_path}: another process held the database's write lock for 5 s" in message
    assert message.endswith("; nothing was sent, and the catch-up tries this digest again (every 10 min, within "
                            "schedule.grace_minutes of its send time)")
    assert outbox(tmp_path) == [f"dan-{due:%Y-%m-%d}.eml"]


@pytest.mark.mail
@pytest.mark.parametrize("how", ["removed", "renamed"])
def test_a_profile_removed_while_its_digest_is_being_retried_is_not_promised_a_retry(tmp_path, caplog, mail_servers,
                                                                                    how):
    """The mail server answers "try later" to ben's digest, and ben.toml is deleted while the daemon retries it:
    the digest is left 'retry' and no job of the daemon sends it any more (`digest status` says to put the file
    back). The log said "will retry within schedule.grace_minutes"; it now says that nothing retries it, and how to
    send it."""
    ben, _ = mail_servers.new_user("ben")
    (tmp_path / "profiles").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f"""data_dir = "{tmp_path / 'data'}"
profiles_dir = "{tmp_path / 'profiles'}"
[model]
name = "all-MiniLM-L6-v2"
[smtp]
host = "127.0.0.1"
port = {mail_servers.smtp_port}
security = "starttls"
ca_file = "{mail_servers.ca_cert}"
from_addr = "digest@example.test"
retries = 3
retry_backoff = 1.0
[web]
enabled = false
[schedule]
grace_minutes = 30
shutdown_timeout = 20
""")
    caplog.set_level(logging.INFO)
    due = local_minute("UTC", timedelta(minutes=-2))
    path = write_profile(tmp_path / "profiles", "ben", send_at=f"{due:%H:%M}", email=ben)
    refusals = ["451 4.3.0 try later"] * 4  # every attempt of the catch-up's send
    mail_servers.set_faults({ben: refusals})
    daemon = Daemon(load_settings(config))

    async def scenario():
        await until(lambda: len(mail_servers.faults().get(ben, [])) < len(refusals), timeout=90)
        if how == "removed":
            path.unlink()  # while the sender waits to try again
        else:
            path.rename(path.with_name("benedict.toml"))  # the same reader under another file name
        await until(lambda: records(caplog, f"job=send user=ben period={due:%Y-%m-%d}: not delivered"), timeout=60)

    try:
        assert drive(daemon, scenario) == 0
    finally:
        mail_servers.clear_faults()
    assert records(caplog, "job=profiles user=ben: profile removed; no more digests")
    [line] = records(caplog, f"job=send user=ben period={due:%Y-%m-%d}: not delivered")
    message = line.getMessage()
    assert "will retry" not in message
    if how == "renamed":  # no advice to put the file back: that would make two files of one address
        assert f"the profile is {path.with_name('benedict.toml')} now (the same address), which sends it, once" \
            in message, message
        return
    assert f"DATA: 451 4.3.0 try later; {path} was removed (or cannot be used) meanwhile, so nothing retries it: " \
           "put the file back to send it, once" in message
    assert mail_servers.messages(ben) == []
    assert Store(tmp_path / "data" / "digest.db").digest_for("ben", f"{due:%Y-%m-%d}")["status"] == "retry"


def test_a_second_daemon_on_the_same_data_directory_is_refused(home, embedder):
    _, config = home
    settings = load_settings(config)
    first = Daemon(settings, embedder=embedder)
    try:
        with pytest.raises(DigestError, match="another `digest run` .* already uses this data directory"):
            Daemon(settings, embedder=embedder)
    finally:
        first._close()
    Daemon(settings, embedder=embedder)._close()  # free again once the first one is gone


def test_a_missing_profiles_directory_stops_the_start_with_its_path(tmp_path, embedder):
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\nprofiles_dir = "{tmp_path / "nope"}"\noutbox = "{tmp_path}"\n'
                      '[web]\nenabled = false\n')
    with pytest.raises(DigestError, match=f"{tmp_path / 'nope'}: profiles directory not found"):
        Daemon(load_settings(config), embedder=embedder)


# -- the real thing: `python -m digest run` against real IMAP + SMTP servers -------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DigestRun:
    """``python -m digest --config CONFIG run`` as a subprocess, with its log in a file."""

    def __init__(self, service: "Service"):
        self.log_path = service.log_path
        self.start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as handle:
            self.proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(service.config), "run"],
                                         cwd=REPO, stdin=subprocess.DEVNULL, stdout=handle,
                                         stderr=subprocess.STDOUT, env=service.env)

    def log(self) -> str:
        """This run's part of the log."""
        return self.log_path.read_bytes()[self.start_at:].decode("utf-8", "replace")

    def wait_for(self, condition, what: str, timeout: float = 180.0):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"digest run exited ({self.proc.returncode}) before {what}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")
            time.sleep(0.1)

    def wait_for_log(self, text: str, timeout: float = 180.0) -> None:
        self.wait_for(lambda: text in self.log(), repr(text), timeout)

    def stop(self, timeout: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"digest run did not stop within {timeout} s of SIGTERM:\n{self.log()}") from None


@dataclass
class Service:
    root: Path
    config: Path
    env: dict
    alerts: str  # the IMAP account digest reads its alerts from
    log_path: Path
    web: str  # the feedback server's base URL

    def status(self) -> str:
        result = subprocess.run([sys.executable, "-m", "digest", "--config", str(self.config), "status"],
                                cwd=REPO, capture_output=True, text=True, timeout=60, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    @property
    def store(self) -> Store:
        return Store(self.root / "data" / "digest.db")


@pytest.fixture
def service(tmp_path, mail_servers):
    """A real `digest run` setup: alerts in an IMAP mailbox (read over TLS), digests sent over SMTP
    (STARTTLS) through the relay into the users' own mailboxes."""
    (tmp_path / "profiles").mkdir()
    port = free_port()
    alerts, password = mail_servers.new_user("alerts")
    mail_servers.append(alerts, ALERT.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
profiles_dir = "{tmp_path / 'profiles'}"
log_level = "INFO"
[imap]
host = "127.0.0.1"
port = {mail_servers.imaps_port}
security = "tls"
ca_file = "{mail_servers.ca_cert}"
username = "{alerts}"
[smtp]
host = "127.0.0.1"
port = {mail_servers.smtp_port}
security = "starttls"
ca_file = "{mail_servers.ca_cert}"
from_addr = "digest@example.test"
retries = 3
retry_backoff = 1.0
[web]
enabled = true
host = "127.0.0.1"
port = {port}
base_url = "http://127.0.0.1:{port}"
[schedule]
grace_minutes = 30
shutdown_timeout = 20
""")
    env = {**os.environ, "DIGEST_IMAP_PASSWORD": password}
    env.pop("DIGEST_CONFIG", None)
    return Service(tmp_path, config, env, alerts, tmp_path / "run.log", f"http://127.0.0.1:{port}")


def local_minute(tz: str, delta: timedelta) -> datetime:
    """The local time ``delta`` from now in ``tz``, rounded up to a whole minute."""
    when = datetime.now(ZoneInfo(tz)) + delta
    return (when + timedelta(minutes=1)).replace(second=0, microsecond=0) if when.second or when.microsecond \
        else when


@pytest.mark.mail
def test_digest_run_sends_each_digest_once_on_time_stops_on_sigterm_and_sends_nothing_after_restart(
        service, mail_servers):
    profiles = service.root / "profiles"
    ada, _ = mail_servers.new_user("ada")
    cat, _ = mail_servers.new_user("cat")
    # cat (St John's, -03:30 or -02:30) was due three minutes before the start: sent by the catch-up
    cat_due = local_minute("America/St_Johns", timedelta(minutes=-3))
    write_profile(profiles, "cat", tz="America/St_Johns", send_at=f"{cat_due:%H:%M}", email=cat)

    run = DigestRun(service)
    run.wait_for_log("job=start: ready")
    # a first start makes the store, and says so (under a mistyped --data-dir, a new store is what it would make)
    assert "note: no store at " in run.log() and "yet: starting a new one there (from data_dir in " in run.log()
    [(_, _, cat_mail)] = run.wait_for(lambda: mail_servers.messages(cat), "cat's digest")
    assert ALERT_TITLE in text_of(cat_mail)  # read from IMAP by the poller at start
    assert "job=catch-up user=cat" in run.log()
    [(_, flags, _)] = mail_servers.messages(service.alerts)
    assert b"$Digested" in flags  # the alert is marked processed (and never deleted)
    # the feedback server runs in the same process: the digest's vote links open their confirmation page
    assert httpx.get(f"{service.web}/healthz").status_code == 200
    vote = re.search(re.escape(service.web) + r"/vote/[\w.-]+", text_of(cat_mail)).group(0)
    page = httpx.get(vote)
    assert page.status_code == 200 and "<form" in page.text and 'method="post"' in page.text.lower()

    # a new alert arrives, then ada (Kolkata, +05:30) is added, due at the next whole minute at least 20 s
    # away: her cron job polls first, so the new alert is in the store before her digest is ranked
    mail_servers.append(service.alerts, SECOND_ALERT.read_bytes())
    ada_due = local_minute("Asia/Kolkata", timedelta(seconds=20))
    write_profile(profiles, "ada", tz="Asia/Kolkata", send_at=f"{ada_due:%H:%M}", email=ada)
    run.wait_for_log("job=profiles user=ada: scheduled: daily at")
    [(_, _, ada_mail)] = run.wait_for(lambda: mail_servers.messages(ada), "ada's digest",
                                      timeout=(ada_due - datetime.now(UTC)).total_seconds() + 120)
    sent_at = parsedate_to_datetime(message_from_bytes(ada_mail)["Date"])
    assert ada_due <= sent_at < ada_due + timedelta(minutes=2), (sent_at, ada_due)
    # the relay hands the mail to Dovecot before the daemon has its 250 reply and logs it: wait, do not race
    run.wait_for_log(f"job=send user=ada period={ada_due:%Y-%m-%d}: sent", timeout=30)
    assert "job=poll (before ada's digest): INBOX: 1 fetched, 1 ingested" in run.log()
    store = service.store
    [second] = [m for m in store.messages("ingested") if "cell" in (m["subject"] or "").lower()]
    assert second["processed_at"] <= store.digest_for("ada", f"{ada_due:%Y-%m-%d}")["claimed_at"]

    assert run.stop(timeout=20 + 10) == 0
    assert "job=stop: stopped cleanly" in run.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.web}/healthz")  # the web server stopped with the daemon
    assert "Traceback" not in run.log()

    out = service.status()
    assert "daemon: not running" in out
    assert f"last: {ada_due:%Y-%m-%d} sent" in out and f"last: {cat_due:%Y-%m-%d} sent" in out
    next_ada = next_send(load_profile(profiles / "ada.toml"), datetime.now(UTC))
    in_utc = next_ada.astimezone(UTC)  # its UTC day named when it is another day (18:30-24:00 UTC)
    utc = f"{in_utc:%a %H:%M}" if in_utc.date() != next_ada.date() else f"{in_utc:%H:%M}"
    assert f"next: {next_ada:%a %Y-%m-%d} {ada_due:%H:%M} IST ({utc} UTC)" in out, out
    # the folder as host/FOLDER, once (not the store's imap://user@host/FOLDER key, nor "INBOX:" twice)
    assert re.search(r"last poll: [^\s/]+/INBOX: [^:]+: 1 fetched", out), out
    assert "imap://" not in out

    again = DigestRun(service)
    again.wait_for_log("job=start: ready")
    assert again.stop(timeout=30) == 0
    assert "job=send" not in again.log() and "job=catch-up" not in again.log() and "note: no store" not in again.log()
    assert len(mail_servers.messages(ada)) == 1 and len(mail_servers.messages(cat)) == 1


@pytest.mark.mail
def test_kill_9_in_the_middle_of_a_send_loses_nothing_and_sends_once_after_restart(service, mail_servers):
    ben, _ = mail_servers.new_user("ben")
    due = local_minute("UTC", timedelta(minutes=-2))
    write_profile(service.root / "profiles", "ben", tz="UTC", send_at=f"{due:%H:%M}", email=ben)
    # the relay answers "try later" to ben for a while: the daemon is inside its SMTP retries when killed
    refusals = ["451 4.3.0 try later"] * 20
    mail_servers.set_faults({ben: refusals})
    try:
        run = DigestRun(service)
        def refused_and_waiting():  # the run waits (1 s, 2 s, ...) before its next attempt
            row = service.store.digest_for("ben", f"{due:%Y-%m-%d}")
            return len(mail_servers.faults().get(ben, [])) < len(refusals) and row and row["status"] == "claimed"

        run.wait_for(refused_and_waiting, "a refused SMTP attempt")
        run.proc.kill()
        run.proc.wait()
    finally:
        mail_servers.clear_faults()
    store = service.store
    period = f"{due:%Y-%m-%d}"
    cut = store.digest_for("ben", period)
    # claimed and frozen, not sent: the server refused each attempt, so it is 'claimed' again (not 'sending',
    # which would mean a copy may have arrived) while the run waits to retry
    assert cut["status"] == "claimed" and cut["message_id"]
    assert mail_servers.messages(ben) == []
    assert store.count_papers() == 3  # the alert read before the kill is stored ...
    [(_, flags, _)] = mail_servers.messages(service.alerts)
    assert b"$Digested" in flags  # ... and marked, so it is not read again
    assert "pending: 1" in service.status()

    again = DigestRun(service)
    again.wait_for(lambda: mail_servers.messages(ben), "ben's digest after the restart")
    assert f"job=recover user=ben period={period}" in again.log()
    assert again.stop(timeout=30) == 0
    assert len(mail_servers.messages(ben)) == 1
    row = store.digest_for("ben", period)
    assert row["status"] == "sent" and row["attempts"] == 2
    [(_, _, raw)] = mail_servers.messages(ben)
    assert ALERT_TITLE in text_of(raw)
    assert message_from_bytes(raw)["Message-ID"] == cut["message_id"]  # the same digest, not a new one
    assert store.count_papers() == 3 and len(store.messages()) == 1  # nothing read or stored twice


@pytest.mark.mail
def test_with_imap_idle_new_mail_is_read_within_seconds_and_sigterm_still_stops_at_once(service, mail_servers):
    service.config.write_text(service.config.read_text().replace("[smtp]", "idle = true\n[smtp]"))
    run = DigestRun(service)
    run.wait_for_log("job=start: ready")
    run.wait_for_log("job=poll (interval): INBOX: 1 fetched, 1 ingested")  # the alert already there
    mail_servers.append(service.alerts, SECOND_ALERT.read_bytes())
    run.wait_for_log("job=poll (new mail): INBOX: 1 fetched, 1 ingested", timeout=30)  # not in 15 minutes
    assert run.stop(timeout=20) == 0  # the IDLE connection does not hold the stop up
    assert service.store.count_papers() == 13


@pytest.mark.mail
def test_a_digest_that_failed_for_a_while_is_retried_by_the_sweep_within_the_grace_window(
        home, embedder, mail_servers, caplog):
    tmp_path, config = home
    caplog.set_level(logging.INFO)
    ada, _ = mail_servers.new_user("ada")
    config.write_text(config.read_text().replace(f'outbox = "{tmp_path / "outbox"}"\n', "") + f"""
[smtp]
host = "127.0.0.1"
port = {mail_servers.smtp_port}
security = "starttls"
ca_file = "{mail_servers.ca_cert}"
from_addr = "digest@example.test"
retries = 1
retry_backoff = 0.1
""")
    write_profile(tmp_path / "profiles", "ada", tz="UTC", send_at="07:30", email=ada)
    settings = load_settings(config)
    mail_servers.set_faults({ada: ["451 4.3.0 mailbox busy"] * 2})  # both attempts of the first run fail
    try:
        with time_machine.travel(datetime(2024, 6, 3, 7, 35, tzinfo=UTC), tick=True) as clock:
            store = Store(settings.db_path)
            ingest_paths(store, [ALERT])
            daemon = Daemon(settings, embedder=embedder)

            async def scenario():
                await until(lambda: daemon.ready.is_set())
                assert store.digest_for("ada", "2024-06-03")["status"] == "retry"
                assert mail_servers.messages(ada) == []
                clock.shift(timedelta(minutes=SWEEP_MINUTES))  # the next sweep is due
                daemon.scheduler.wakeup()
                await until(lambda: mail_servers.messages(ada))

            assert drive(daemon, scenario) == 0
    finally:
        mail_servers.clear_faults()
    row = store.digest_for("ada", "2024-06-03")
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len(mail_servers.messages(ada)) == 1
    assert records(caplog, "job=send user=ada period=2024-06-03: not delivered, will retry")
    assert records(caplog, "job=send user=ada period=2024-06-03: sent")


def test_a_model_that_cannot_load_stops_the_daemon_with_a_config_error(home):
    tmp_path, config = home
    config.write_text(config.read_text().replace("[web]", f'[model]\nname = "{tmp_path / "no-model"}"\n[web]'))
    daemon = Daemon(load_settings(config))

    async def scenario():
        await until(lambda: daemon.stopping, timeout=120)

    assert drive(daemon, scenario) == 2


def test_a_daemon_with_nowhere_to_send_digests_refuses_to_start(tmp_path, embedder):
    config = tmp_path / "config.toml"
    (tmp_path / "profiles").mkdir()
    config.write_text(f'data_dir = "{tmp_path}"\nprofiles_dir = "{tmp_path / "profiles"}"\n[web]\nenabled = false\n')
    with pytest.raises(DigestError, match=r"smtp.host is not set in .*config.toml, so digests cannot be sent"):
        Daemon(load_settings(config), embedder=embedder)


def test_a_database_file_that_cannot_be_looked_at_for_a_moment_does_not_stop_the_daemon(home, embedder, caplog,
                                                                                          monkeypatch):
    """On NFS a stat can fail with ESTALE (or EIO) for a moment while the file is there: the job runs and the
    daemon goes on; only a file that is not there stops it. (ESTALE cannot be made here without NFS: the look
    at the file is what fails.)"""
    import errno

    from digest import schedule

    tmp_path, config = home
    config.write_text(config.read_text() + '[imap]\nhost = "127.0.0.1"\nsecurity = "plain"\n')
    settings = load_settings(config)
    polls = []
    daemon = Daemon(settings, embedder=embedder, poll=lambda store, settings, *, stop: polls.append(1) or "0 new")
    real = schedule._file_identity

    def stale(path):
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), str(path))

    async def scenario():
        await until(lambda: polls and daemon.ready.is_set())
        monkeypatch.setattr(schedule, "_file_identity", stale)
        await daemon._unit("poll (test)", daemon._poll_blocking, "test")
        monkeypatch.setattr(schedule, "_file_identity", real)
        await daemon._unit("poll (test)", daemon._poll_blocking, "test")
        assert not daemon.stopping
        daemon.request_stop()

    assert drive(daemon, scenario) == 0
    assert polls == [1, 1, 1]
    [line] = records(caplog, "cannot check the database file")
    assert "Stale file handle" in line.getMessage() and "running the job" in line.getMessage()


def test_a_send_waiting_its_turn_when_the_schedule_is_edited_is_left_to_the_new_schedule(home, embedder, caplog):
    """The send job fixes its due time, then waits for the worker (a poll, another digest): a timezone edited
    meanwhile must not send under the new zone with the old due time (a Kolkata 21:31 digest going out at 08:01 in
    Los Angeles, dated there, 13 hours early); the new schedule's own send time sends the day's digest."""
    from digest.schedule import previous_send

    tmp_path, config = home
    caplog.set_level(logging.INFO)
    path = write_profile(tmp_path / "profiles", "ada", tz="Asia/Kolkata", send_at="21:31")
    settings = load_settings(config)
    daemon = Daemon(settings, embedder=embedder)
    try:
        due = previous_send(daemon.profiles["ada"], datetime.now(UTC))
        write_profile(tmp_path / "profiles", "ada", tz="America/Los_Angeles", send_at="21:31")
        daemon.profiles["ada"] = load_profile(path)  # the watcher's reload, while the send waited
        daemon._deliver_blocking("ada", due)
        assert outbox(tmp_path) == []
        assert records(caplog, "is no longer the profile's (edited meanwhile)")
        # unedited, the same call sends (the test above is not vacuous)
        daemon.profiles["ada"] = load_profile(write_profile(tmp_path / "profiles", "ada", tz="Asia/Kolkata",
                                                            send_at="21:31"))
        daemon._deliver_blocking("ada", due)
        assert len(outbox(tmp_path)) == 1
    finally:
        daemon._close()
