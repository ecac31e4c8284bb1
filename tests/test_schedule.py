"""The schedule, computed with controlled time: local send times across time zones and daylight-saving
changes, frequencies, catch-up inside and outside the grace window, and what `digest status` shows."""

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import time_machine
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.models import Paper
from digest.profiles import Interest, Profile
from digest.schedule import (
    RunLock,
    done_period,
    due_catch_up,
    next_send,
    period_of,
    previous_send,
    send_trigger,
    status_report,
)
from digest.store import Store


def profile(tz="UTC", send_at="07:30", frequency="daily", user="ada", **kw):
    return Profile(user=user, name=user.title(), email=f"{user}@example.org", timezone=tz, send_at=send_at,
                   frequency=frequency, interests=(Interest("LLM inference", ""),), **kw)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def sends(p, after, n):
    out = []
    for _ in range(n):
        after = next_send(p, after)
        out.append(after)
    return out


# -- local time, time zones, daylight saving ----------------------------------------------------------------
def test_a_london_digest_stays_at_07_30_local_when_the_clocks_go_forward_in_march():
    p = profile("Europe/London", "07:30")
    got = sends(p, utc(2024, 3, 29, 12), 3)  # British Summer Time starts Sun 31 Mar 2024, 01:00 UTC
    assert [t.strftime("%Y-%m-%d %H:%M %Z") for t in got] == [
        "2024-03-30 07:30 GMT", "2024-03-31 07:30 BST", "2024-04-01 07:30 BST"]
    assert [t.astimezone(UTC).hour for t in got] == [7, 6, 6]


def test_a_new_york_digest_stays_at_07_00_local_when_the_clocks_go_back_in_november():
    p = profile("America/New_York", "07:00")
    got = sends(p, utc(2024, 11, 1, 12), 3)  # EDT ends Sun 3 Nov 2024, 02:00 local
    assert [t.strftime("%d %H:%M %Z") for t in got] == ["02 07:00 EDT", "03 07:00 EST", "04 07:00 EST"]
    assert [t.astimezone(UTC).hour for t in got] == [11, 12, 12]


def test_a_london_digest_stays_at_local_time_when_the_clocks_go_back_in_october():
    got = sends(profile("Europe/London", "06:15"), utc(2024, 10, 26, 12), 2)  # BST ends Sun 27 Oct 2024
    assert [t.astimezone(UTC).strftime("%d %H:%M") for t in got] == ["27 06:15", "28 06:15"]
    assert {t.strftime("%H:%M") for t in got} == {"06:15"}


def test_a_new_york_digest_stays_at_local_time_when_the_clocks_go_forward_in_march():
    got = sends(profile("America/New_York", "08:00"), utc(2024, 3, 9, 18), 2)  # EDT starts Sun 10 Mar 2024
    assert [t.astimezone(UTC).strftime("%d %H:%M") for t in got] == ["10 12:00", "11 12:00"]


def test_a_wall_time_that_happens_twice_sends_only_once():
    # 01:30 happens twice in New York on 3 Nov 2024 (EDT, then EST an hour later): one digest, the first
    p = profile("America/New_York", "01:30")
    got = sends(p, utc(2024, 11, 2, 12), 3)
    assert [t.astimezone(UTC) for t in got] == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30),
                                                 utc(2024, 11, 5, 6, 30)]


def test_a_wall_time_that_does_not_exist_sends_just_after_the_jump():
    # 02:30 does not exist in New York on 10 Mar 2024 (02:00 -> 03:00): sent at 03:30 EDT, then 02:30 again
    p = profile("America/New_York", "02:30")
    got = sends(p, utc(2024, 3, 9, 12), 3)
    assert [t.strftime("%d %H:%M %Z") for t in got] == ["10 03:30 EDT", "11 02:30 EDT", "12 02:30 EDT"]
    assert got[0].astimezone(UTC) == utc(2024, 3, 10, 7, 30)


@pytest.mark.parametrize(("tz", "send_at", "start", "expected"), [
    # Chile, Cuba and Lebanon move their clocks at midnight, 00:00 -> 01:00 (Sun 8 Sep, Sun 10 Mar, Sun 31 Mar
    # 2024): that day's 00:30 (or 00:00) does not exist, and APScheduler's CronTrigger skipped the whole day
    ("America/Santiago", "00:30", "2024-09-07", ["07 00:30 -04", "08 01:30 -03", "09 00:30 -03"]),
    ("America/Havana", "00:00", "2024-03-09", ["09 00:00 CST", "10 01:00 CDT", "11 00:00 CDT"]),
    ("Asia/Beirut", "00:30", "2024-03-30", ["30 00:30 EET", "31 01:30 EEST", "01 00:30 EEST"]),
])
def test_a_wall_time_in_a_gap_at_midnight_sends_just_after_the_jump_and_the_day_is_not_lost(tz, send_at, start,
                                                                                            expected):
    p = profile(tz, send_at)
    got = sends(p, datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(tz)) - timedelta(minutes=1), 3)
    assert [t.strftime("%d %H:%M %Z") for t in got] == expected
    assert [period_of(p, t)[-2:] for t in got] == [e[:2] for e in expected]  # one digest per local day
    jump_day = got[1]
    assert previous_send(p, jump_day + timedelta(minutes=5)) == jump_day  # the catch-up sees that day's send too
    c = due_catch_up(p, jump_day + timedelta(minutes=5), period_of(p, got[0]), GRACE)
    assert c.send and c.due_at == jump_day and c.late == timedelta(minutes=5)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Pacific/Auckland"])
def test_a_send_time_after_midnight_fires_every_day_around_the_spring_change_as_the_scheduler_asks(tz):
    # after each run APScheduler asks the trigger for the next time from the one that just fired; CronTrigger
    # then skipped the day after the clocks went forward for a send time between 00:00 and 00:59 (Berlin: no
    # digest on Mon 1 Apr 2024), and previous_send, which walks the same way, did not see that day either
    p = profile(tz, "00:30")
    trigger = send_trigger(p)
    start = {"Europe/Berlin": "2024-03-29", "America/New_York": "2024-03-08",
             "Australia/Sydney": "2024-10-04", "Pacific/Auckland": "2024-09-27"}[tz]
    fire = trigger.get_next_fire_time(None, datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(tz)))
    days = [fire]
    for _ in range(4):
        fire = trigger.get_next_fire_time(fire, fire + timedelta(milliseconds=5))  # as the scheduler asks
        days.append(fire)
    dates = [datetime.fromisoformat(start).date() + timedelta(days=n) for n in range(5)]
    assert [(d.date(), d.strftime("%H:%M")) for d in days] == [(d, "00:30") for d in dates]
    assert [previous_send(p, d + timedelta(minutes=5)) for d in days] == days


@pytest.mark.parametrize(("tz", "send_at", "expected_utc"), [
    ("UTC", "07:30", utc(2024, 6, 3, 7, 30)),
    ("Asia/Tokyo", "07:30", utc(2024, 6, 3, 22, 30)),          # +09:00, already Tuesday in Tokyo
    ("Asia/Kolkata", "07:30", utc(2024, 6, 4, 2, 0)),          # +05:30
    ("Australia/Sydney", "07:30", utc(2024, 6, 3, 21, 30)),    # +10:00 (southern winter, no DST)
    ("America/Los_Angeles", "07:30", utc(2024, 6, 3, 14, 30)),  # -07:00 (PDT)
    ("Pacific/Chatham", "07:30", utc(2024, 6, 3, 18, 45)),     # +12:45
])
def test_the_same_local_time_is_a_different_instant_in_each_time_zone(tz, send_at, expected_utc):
    got = next_send(profile(tz, send_at), utc(2024, 6, 3, 6))  # Monday 3 June 2024, 06:00 UTC
    assert got.astimezone(UTC) == expected_utc
    assert got.strftime("%H:%M") == send_at and got.tzinfo == ZoneInfo(tz)


def test_southern_hemisphere_daylight_saving_is_followed_too():
    # Sydney leaves daylight saving on Sun 7 Apr 2024 (03:00 AEDT -> 02:00 AEST)
    got = sends(profile("Australia/Sydney", "07:00"), utc(2024, 4, 5, 12), 3)
    assert [t.astimezone(UTC).strftime("%d %H:%M") for t in got] == ["05 20:00", "06 21:00", "07 21:00"]  # Sat 6 07:00 AEDT, Sun 7 07:00 AEST


# -- frequencies --------------------------------------------------------------------------------------------
def test_weekdays_skip_the_weekend():
    got = sends(profile("Europe/Berlin", "08:00", "weekdays"), utc(2024, 6, 6, 12), 3)  # Thursday afternoon
    assert [t.strftime("%a %d") for t in got] == ["Fri 07", "Mon 10", "Tue 11"]


def test_weekly_on_several_days_sends_on_those_days_only():
    got = sends(profile("UTC", "09:00", "weekly:mon,thu"), utc(2024, 6, 4, 12), 4)  # Tuesday
    assert [t.strftime("%a %d") for t in got] == ["Thu 06", "Mon 10", "Thu 13", "Mon 17"]


def test_weekly_days_are_the_users_local_days_not_utc_days():
    # 07:00 Monday in Tokyo is Sunday 22:00 UTC
    got = next_send(profile("Asia/Tokyo", "07:00", "weekly:mon"), utc(2024, 6, 5, 0))
    assert got.strftime("%a %H:%M") == "Mon 07:00"
    assert got.astimezone(UTC).strftime("%a %H:%M") == "Sun 22:00"


def test_the_trigger_days_follow_send_days_with_monday_as_zero():
    p = profile(frequency="weekly:sun,wed")
    assert p.send_days == (2, 6)
    assert "day_of_week='wed,sun'" in repr(send_trigger(p))


def test_next_send_is_strictly_after_and_previous_send_is_at_or_before():
    p = profile("UTC", "07:30")
    at = utc(2024, 6, 3, 7, 30)
    assert next_send(p, at) == utc(2024, 6, 4, 7, 30)
    assert next_send(p, at - timedelta(microseconds=1)) == at
    assert previous_send(p, at) == at
    assert previous_send(p, at - timedelta(seconds=1)) == utc(2024, 6, 2, 7, 30)


def test_previous_send_of_a_weekly_digest_goes_back_to_its_day():
    p = profile("Europe/London", "07:30", "weekly:fri")
    assert previous_send(p, utc(2024, 6, 5, 12)) == datetime(2024, 5, 31, 7, 30, tzinfo=ZoneInfo("Europe/London"))


def test_times_without_a_time_zone_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send(profile(), datetime(2024, 6, 3, 7))


def test_the_period_is_the_local_date_of_the_send_time_as_the_pipeline_computes_it():
    from digest.pipeline import local_period

    p = profile("Pacific/Auckland", "06:00")
    due = next_send(p, utc(2024, 6, 3, 12))
    assert period_of(p, due) == local_period(p, due) == "2024-06-04"


# -- catch-up -----------------------------------------------------------------------------------------------
GRACE = timedelta(minutes=180)


def test_a_digest_missed_by_less_than_the_grace_window_is_sent_on_start():
    p = profile("Europe/London", "07:30")
    now = utc(2024, 6, 3, 8, 0)  # 09:00 BST: 90 minutes after the send time
    c = due_catch_up(p, now, last_period="2024-06-02", grace=GRACE)
    assert c.send and c.period == "2024-06-03" and c.late == timedelta(minutes=90)
    assert c.due_at == utc(2024, 6, 3, 6, 30)


def test_a_digest_missed_by_more_than_the_grace_window_is_skipped():
    p = profile("Europe/London", "07:30")
    c = due_catch_up(p, utc(2024, 6, 3, 10, 0), last_period="2024-06-02", grace=GRACE)
    assert c is not None and not c.send and c.period == "2024-06-03" and c.late == timedelta(hours=3, minutes=30)


def test_the_grace_window_includes_its_last_second():
    p = profile("UTC", "07:30")
    assert due_catch_up(p, utc(2024, 6, 3, 10, 30), None, GRACE).send
    assert not due_catch_up(p, utc(2024, 6, 3, 10, 30, 1), None, GRACE).send


def test_a_digest_already_sent_is_not_caught_up():
    p = profile("UTC", "07:30")
    assert due_catch_up(p, utc(2024, 6, 3, 8), last_period="2024-06-03", grace=GRACE) is None


def test_after_days_of_downtime_only_the_latest_digest_is_considered():
    p = profile("UTC", "07:30")
    c = due_catch_up(p, utc(2024, 6, 6, 8), last_period="2024-06-01", grace=GRACE)
    assert c.period == "2024-06-06" and c.send


def test_a_late_catch_up_after_local_midnight_keeps_the_period_of_its_send_time():
    p = profile("America/New_York", "23:30")
    now = utc(2024, 6, 4, 4, 10)  # 00:10 EDT on the 4th, 40 min after the 3rd's send time
    c = due_catch_up(p, now, "2024-06-02", GRACE)
    assert c.send and c.period == "2024-06-03"


def test_catch_up_is_measured_from_the_send_time_across_a_dst_change():
    # 07:30 BST on 31 Mar 2024 is 06:30 UTC; at 09:00 UTC it is 2.5 h late, inside a 3 h window
    c = due_catch_up(profile("Europe/London", "07:30"), utc(2024, 3, 31, 9, 0), "2024-03-30", GRACE)
    assert c.send and c.late == timedelta(hours=2, minutes=30)


def test_a_weekly_digest_is_not_caught_up_on_its_off_days():
    p = profile("UTC", "07:30", "weekly:mon")
    assert due_catch_up(p, utc(2024, 6, 5, 8), "2024-06-03", GRACE) is None  # Wednesday; Monday was sent


# -- status ---------------------------------------------------------------------------------------------------
@pytest.fixture
def setup(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "ada.toml").write_text('email = "ada@example.org"\ntimezone = "Europe/London"\nsend_at = "07:30"\n'
                                       'frequency = "weekdays"\n[[interests]]\nlabel = "LLM inference"\n')
    (profiles / "ben.toml").write_text('email = "ben@example.org"\ntimezone = "America/New_York"\n'
                                       'send_at = "06:45"\npaused = true\n[[interests]]\nlabel = "Cells"\n')
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{profiles}"\n')
    return tmp_path, config


def test_status_says_which_recent_errors_were_put_right_since(setup):
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    broken = tmp_path / "profiles" / "carl.toml"
    broken.write_text('email = "carl@example.org"\ntimezone = "Mars/Olympus"\n')
    with time_machine.travel(datetime(2024, 3, 29, 9, 0, tzinfo=UTC), tick=False) as clock:
        digest_id = store.claim_digest("ada", "2024-03-29")
        store.mark_digest(digest_id, "retry", error="SMTP failed 4 times, last: 451 4.3.0 later")
        store.log_event("ERROR", "send", "SMTP failed 4 times, last: 451 4.3.0 later", user="ada")
        store.log_event("ERROR", "profiles", f"{tmp_path / 'profiles' / 'ben.toml'}:2: timezone: unknown", user="ben")
        store.log_event("ERROR", "profiles", f"{broken}:2: timezone: unknown", user="carl")
        store.log_event("ERROR", "profiles", f"{tmp_path / 'profiles' / 'gone.toml'}:1: not TOML", user="gone")
        store.log_event("ERROR", "poll", "imap: cannot reach 127.0.0.1:993 (Connection refused)")
        store.log_event("WARNING", "poll", "quarantined INBOX UID 7 (Alert): the listing layout changed")
        store.log_event("WARNING", "poll", "INBOX: UIDVALIDITY changed (1 -> 2); rescanning the folder")
        clock.shift(timedelta(minutes=10))
        store.mark_digest(digest_id, "sent")  # the retry went through
        store.set_poll_state("imaps://x/INBOX", result="INBOX: 2 fetched, 2 ingested")  # the mailbox is back
        clock.shift(timedelta(minutes=10))
        store.log_event("ERROR", "send", "SMTP failed 4 times, last: 421 too busy", user="ada")  # a later one
        # the next day's digest is refused: that does not undo the delivery that put the first error right
        store.mark_digest(store.claim_digest("ada", "2024-03-30"), "failed", error="550 5.1.1 no such user")
        report = status_report(settings, store)
        result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    later, rescan, quarantined, poll, gone, carl, ben, first = report["recent_errors"]
    assert rescan["resolved"] == {"by": "a poll succeeded", "at": "2024-03-29T09:10:00+00:00"}  # the rescan is done
    assert poll["resolved"] == {"by": "a poll succeeded", "at": "2024-03-29T09:10:00+00:00"}
    assert quarantined["resolved"] is None  # the message is still quarantined, however many polls went well
    from digest.schedule import _resolved  # a folder's error is a mailbox's, whatever the folder is called

    folder_error = {**poll, "message": "skipped-alerts: cannot open folder 'skipped-alerts'"}
    assert _resolved(store, folder_error, []) == poll["resolved"]
    assert gone["resolved"] == {"by": "the file is gone (removed or renamed)", "at": None}
    assert first["resolved"] == {"by": "digest sent", "at": "2024-03-29T09:10:00+00:00"}
    assert ben["resolved"] == {"by": "the file loads now", "at": None}  # ben.toml is fine now
    assert carl["resolved"] is None  # carl.toml is still broken
    assert later["resolved"] is None  # after the last digest: it may still stand
    out = result.output
    assert "ERROR send ada: SMTP failed 4 times, last: 451 4.3.0 later (resolved: digest sent 2024-03-29 09:10 UTC)" in out
    assert "timezone: unknown (resolved: the file loads now)" in out
    assert "421 too busy\n" in out


@time_machine.travel(datetime(2024, 3, 29, 9, 0, tzinfo=UTC), tick=False)  # Friday
def test_status_shows_each_users_next_digest_in_their_time_zone_and_utc(setup):
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.record_message(mailbox="INBOX", uidvalidity=1, uid=1, message_id="<m1@x>", status="failed", error="bad")
    store.set_poll_state("INBOX", uidvalidity=1, last_uid=7, result="3 new messages, 12 papers")
    digest_id = store.claim_digest("ada", "2024-03-28")
    store.mark_digest(digest_id, "retry", error="SMTP failed 4 times, last: 451 4.3.0 later")
    store.log_event("ERROR", "send", "SMTP failed 4 times, last: 451 4.3.0 later", user="ada")
    report = status_report(settings, store)
    ada, ben = report["users"]
    # Friday 09:00 UTC: Friday's 07:30 digest is due and not sent, inside the 3-hour grace window: due now
    assert ada["next_local"] == "2024-03-29T07:30:00+00:00" and ada["next"].startswith("due now: the 2024-03-29 digest")
    assert ada["last"]["status"] == "retry" and "451" in ada["last"]["error"]
    assert ben["paused"] and "next" not in ben
    assert report["counts"]["messages"] == {"failed": 1}
    assert report["counts"]["digests"] == {"retry": 1}
    store.put_vectors(settings.model.name, {"h1": np.ones(4, dtype=np.float32)})
    store.put_vectors("another-model", {"h1": np.ones(4, dtype=np.float32)})  # not the configured model's
    later = status_report(settings, store)
    assert later["counts"]["vectors"] == 1 and later["model"] == settings.model.name
    assert later["store_bytes"] >= settings.db_path.stat().st_size > 0
    assert report["polls"][0]["result"] == "3 new messages, 12 papers"
    assert report["recent_errors"][0]["user"] == "ada"
    assert report["daemon"] is None

    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "next: due now: the 2024-03-29 digest was due 1 h 30 min ago and is not sent yet" in out
    assert "daemon: not running" in out
    assert "last poll: INBOX: just now: 3 new messages, 12 papers" in out
    # a folder in a hierarchy is named once, whole (the "/" in it is not the one after the host)
    store.set_poll_state("imap://me@mail.example.org/Alerts/arXiv", result="Alerts/arXiv: 1 fetched, 1 ingested")
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "last poll: mail.example.org/Alerts/arXiv: just now: 1 fetched, 1 ingested" in out
    assert "last: 2024-03-28 retry" in out and "451 4.3.0 later" in out
    assert "next: paused" in out
    assert "messages: 1 (1 failed)" in out and "pending: 1" in out
    assert f"embedded: 1 text with {settings.model.name}" in out and re.search(r"store: \d+\.\d MB", out)
    assert "recent errors:" in out and "2024-03-29 09:00 UTC ERROR send ada: SMTP failed" in out

    as_json = json.loads(CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output)
    assert as_json["users"][0]["next_utc"] == "2024-03-29T07:30:00+00:00"
    # once Friday's is done, the next is Monday 1 April, 07:30 BST (06:30 UTC: the clocks changed)
    store.mark_digest(store.claim_digest("ada", "2024-03-29"), "sent")
    ada = status_report(settings, store)["users"][0]
    assert ada["next_local"] == "2024-04-01T07:30:00+01:00" and ada["next_utc"] == "2024-04-01T06:30:00+00:00"
    assert ada["next"].startswith("Mon 2024-04-01 07:30 BST (06:30 UTC), in 2 d 21 h")


@time_machine.travel(datetime(2024, 3, 28, 5, 0, tzinfo=UTC), tick=False)  # Thursday, before ada's 07:30 GMT
def test_status_next_send_skips_a_period_whose_digest_already_went_out(setup):
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    assert status_report(settings, store)["users"][0]["next_local"] == "2024-03-28T07:30:00+00:00"
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "sent")  # `digest send` ran early today
    assert status_report(settings, store)["users"][0]["next_local"] == "2024-03-29T07:30:00+00:00"
    store.mark_digest(store.claim_digest("ada", "2024-03-29"), "skipped")  # and a done Friday (weekdays only)
    assert status_report(settings, store)["users"][0]["next_local"] == "2024-04-01T07:30:00+01:00"


@time_machine.travel(datetime(2024, 3, 28, 12, 0, tzinfo=UTC), tick=False)  # Thursday, 4 h 30 min after 07:30 GMT
def test_status_says_a_started_digest_beyond_the_grace_window_is_finished_now_as_the_daemon_does(setup):
    """Today's digest failed with a temporary error (retry) and is now beyond the 3-hour grace window: the daemon's
    sweep finishes it however late (docs/running.md, Catch-up), so status must not say the next one is tomorrow."""
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent")
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "retry", error="451 4.3.0 later")
    ada = status_report(settings, store)["users"][0]
    assert ada["next_local"] == "2024-03-28T07:30:00+00:00"
    assert ada["next"].startswith("due now: the 2024-03-28 digest was due 4 h 30 min ago")
    assert "finish" in ada["next"]
    # one nobody started is skipped by the daemon beyond the window: the next is tomorrow's
    store.db.execute("DELETE FROM digests WHERE period = '2024-03-28'")
    store.db.conn.commit()
    assert status_report(settings, store)["users"][0]["next_local"] == "2024-03-29T07:30:00+00:00"


@time_machine.travel(datetime(2024, 3, 28, 12, 0, tzinfo=UTC), tick=False)  # Thursday, 4 h 30 min after 07:30 GMT
def test_a_digest_left_in_retry_under_an_earlier_file_name_is_finished_beyond_the_grace_window_too(setup):
    """ada's digest of the day is in retry; ada.toml is renamed eve.toml (the same address): delivery finishes
    ada's digest as eve's (docs/delivery.md), but the catch-up looked for a started digest under 'eve' only, so
    beyond the grace window it skipped the day and ada's digest stayed pending for good."""
    from digest.profiles import load_profile
    from digest.schedule import started_status

    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    ada = tmp_path / "profiles" / "ada.toml"
    store.save_profile_texts({"ada": ada.read_text()})
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent")
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "retry", error="451 4.3.0 later")
    ada.rename(tmp_path / "profiles" / "eve.toml")
    [eve] = [u for u in status_report(settings, store)["users"] if u["user"] == "eve"]
    assert eve["next"].startswith("due now: the 2024-03-28 digest was due 4 h 30 min ago and an earlier run started "
                                  "it (left retry)")
    eve_profile = load_profile(tmp_path / "profiles" / "eve.toml")
    c = due_catch_up(eve_profile, datetime.now(UTC), done_period(store, eve_profile), GRACE)
    assert not c.send and started_status(store, c, eve_profile) == "retry"  # what the daemon's sweep asks


@time_machine.travel(datetime(2024, 3, 28, 8, 0, tzinfo=UTC), tick=False)  # Thursday, 30 min after 07:30 GMT
def test_status_says_a_frozen_digest_waiting_to_try_the_mail_server_again_is_being_sent_not_prepared(setup):
    """A `digest send` whose server answered 451 waits out its backoff with the row back at 'claimed' (so a crash
    then is no possible delivery): status said 'is being prepared by a running digest', as if it were still being
    ranked, for a digest whose papers and Message-ID were fixed and which the server had just deferred."""
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent")
    digest_id = store.claim_digest("ada", "2024-03-28")
    store.save_digest_items(digest_id, [], [], n_candidates=0, subject="Quiet day", message_id="<m@example.test>")
    assert store.mark_sending(digest_id)
    store.unmark_sending(digest_id)  # the server said 451: back to 'claimed' for the wait
    assert store.digest_for("ada", "2024-03-28")["status"] == "claimed"
    ada = status_report(settings, store)["users"][0]
    assert ada["next"] == "being sent now: the 2024-03-28 digest (due 30 min ago) is being sent by a running digest"


@time_machine.travel(datetime(2024, 3, 28, 8, 0, tzinfo=UTC), tick=False)  # Thursday, 30 min after 07:30 GMT
def test_status_says_a_digest_a_live_run_is_sending_is_being_sent_not_due_and_unsent(setup):
    """A run (here: this process) holds today's digest this minute: status must not tell the reader it is "not sent
    yet" and to run `digest send`; a claim whose run died still says it is due (the next run sends it)."""
    import socket

    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent")
    digest_id = store.claim_digest("ada", "2024-03-28")
    ada = status_report(settings, store)["users"][0]
    assert ada["next"] == "being sent now: the 2024-03-28 digest (due 30 min ago) is being prepared by a running digest"
    assert store.mark_sending(digest_id)
    ada = status_report(settings, store)["users"][0]
    assert ada["next"].endswith("is being sent by a running digest")
    assert ada["next_local"] == "2024-03-28T07:30:00+00:00"
    store.db.execute("UPDATE digests SET claimed_by = ? WHERE id = ?", [f"{socket.gethostname()}::999999999::x",
                                                                        digest_id])
    store.db.conn.commit()
    assert status_report(settings, store)["users"][0]["next"].startswith(
        "due now: the 2024-03-28 digest was due 30 min ago and is not sent yet")


def test_status_says_written_for_a_digest_that_went_to_an_outbox_file(setup):
    tmp_path, config = setup
    store = Store(load_settings(config).db_path)
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "sent", path="/srv/out/ada-2024-03-28.eml")
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "last: 2024-03-28 written" in out and "to /srv/out/ada-2024-03-28.eml" in out
    assert "last: 2024-03-28 sent" not in out
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent")  # and one that went out by SMTP
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "digests: 2 (1 sent, 1 written)" in out


def test_status_waiting_counts_what_the_ranking_would_rank_not_the_readers_own_seed_papers(setup):
    tmp_path, config = setup
    profile = tmp_path / "profiles" / "ada.toml"
    profile.write_text(profile.read_text() + '[[seeds]]\narxiv = "2211.17192"\n')
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.add_papers([Paper("Fast Inference from Transformers via Speculative Decoding", arxiv_id="2211.17192"),
                      Paper("A new paper on KV caches", arxiv_id="2501.00001")])
    [ada] = [u for u in status_report(settings, store)["users"] if u["user"] == "ada"]
    assert ada["waiting"] == 1  # the seed paper that arrived is not news to ada


def test_status_names_an_unfinished_digest_whose_profile_is_gone(setup):
    tmp_path, config = setup
    store = Store(load_settings(config).db_path)
    store.mark_digest(store.claim_digest("hana", "2024-03-28"), "retry", error="451 later")  # hana.toml deleted
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "retry", error="451 later")  # ada's shows as hers
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "pending: 2" in out
    assert "hana's 2024-03-28 digest (retry): no profile hana.toml any more, so nothing sends it" in out
    assert "ada's 2024-03-28" not in out
    # with the profiles folder itself missing, no profile can be told gone: none is named
    (tmp_path / "profiles").rename(tmp_path / "elsewhere")
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "profiles directory not found" in out and "any more" not in out


def test_status_names_the_messages_that_could_not_be_read_and_why(setup):
    tmp_path, config = setup
    store = Store(load_settings(config).db_path)
    store.record_message(mailbox="imap://reader@mail.example.org/INBOX", uidvalidity=7, uid=42, message_id=None,
                         subject="Nature Medicine contents", sender="alerts@nature.com", status="failed",
                         error="nature_portfolio_toc: no papers found in it")
    for n in range(6):
        store.record_message(mailbox=f"file:/tmp/m{n}.eml", message_id=None, status="failed", error=f"broken {n}")
    store.record_message(mailbox="file:/tmp/fine.eml", message_id="<a@b>", status="ingested")
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    lines = [line for line in out.splitlines() if line.startswith("  failed: ")]
    assert lines[0] == "  failed: /tmp/m5.eml: broken 5"  # the latest first
    assert len(lines) == 5 and "  ... and 2 more (`digest status --json` lists them all)" in out
    report = status_report(load_settings(config), store)
    assert report["failed_messages"][-1]["subject"] == "Nature Medicine contents" and len(report["failed_messages"]) == 7
    store.db.execute("DELETE FROM messages WHERE mailbox LIKE 'file:%'")
    store.db.conn.commit()
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "  failed: mail.example.org/INBOX UID 42 (Nature Medicine contents): nature_portfolio_toc: no papers " \
           "found in it" in out


def test_status_shows_a_user_who_unsubscribed_by_link_and_how_to_resume(setup):
    tmp_path, config = setup
    Store(load_settings(config).db_path).pause_user("ada", via="web")
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "next: none: unsubscribed by link (web) just now; `digest resume ada` resumes" in out


@time_machine.travel(datetime(2024, 3, 28, 5, 0, tzinfo=UTC), tick=False)  # Thursday, before ada's 07:30 GMT
def test_status_shows_an_unsubscribe_under_an_earlier_file_name_of_the_profile(setup):
    """ada unsubscribed by link, then ada.toml was renamed eve.toml (the same address): delivery holds the pause
    (nothing goes out to eve either, until `digest resume eve`), so status must not promise eve a digest."""
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    ada = tmp_path / "profiles" / "ada.toml"
    store.save_profile_texts({"ada": ada.read_text()})
    store.pause_user("ada", via="web")
    ada.rename(tmp_path / "profiles" / "eve.toml")
    [eve] = [u for u in status_report(settings, store)["users"] if u["user"] == "eve"]
    assert eve["unsubscribed"] and eve["unsubscribed"]["via"] == "web" and "next" not in eve
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "next: none: unsubscribed by link (web) just now; `digest resume eve` resumes" in out


def test_status_says_when_the_daemon_is_running(setup):
    tmp_path, config = setup
    lock = RunLock(tmp_path / "data")
    lock.acquire()
    try:
        out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
        assert "daemon: running (pid " in out
    finally:
        lock.release()
    assert "daemon: not running" in CliRunner().invoke(cli, ["--config", str(config), "status"]).output


def test_status_without_a_database_creates_nothing_and_still_shows_the_schedule(setup):
    tmp_path, config = setup
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0 and "ada <ada@example.org>: weekdays at 07:30 Europe/London" in result.output
    assert not (tmp_path / "data").exists()


def test_status_names_a_broken_profile_and_keeps_its_last_good_schedule(setup):
    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    store.save_profile_texts({"ada": (tmp_path / "profiles" / "ada.toml").read_text()})
    (tmp_path / "profiles" / "ada.toml").write_text('email = "ada@example.org"\nsend_at = "7h"\n')
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "profile broken: using its last good version" in out
    assert "ada.toml:2: send_at: must look like" in out


def test_status_does_not_import_torch(setup):
    _, config = setup
    code = ("import sys\nfrom digest.cli import main\nsys.argv = ['digest', '--config', sys.argv[1], 'status']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- the store's part -----------------------------------------------------------------------------------------
def test_last_done_period_ignores_digests_still_in_flight():
    store = Store(None)
    sent = store.claim_digest("ada", "2024-06-02")
    store.mark_digest(sent, "sent")
    store.claim_digest("ada", "2024-06-03")
    assert store.last_done_period("ada") == "2024-06-02"
    assert [(d["period"], d["status"]) for d in store.unfinished_digests()] == [("2024-06-03", "claimed")]
    assert store.last_done_period("ben") is None


def test_a_renamed_profile_has_had_the_digest_its_earlier_name_had():
    """dan.toml renamed eve.toml (same address): dan's sent digest is eve's, so the catch-up does not announce
    one (``deliver_user`` would answer 'already'); dan's refused or superseded digests do not count."""
    store = Store(None)
    eve = profile(user="eve")
    store.save_profile_texts({"dan": 'email = "EVE@example.org"\n', "zed": 'email = "zed@example.org"\n'})
    for user, period, status in [("dan", "2024-06-02", "sent"), ("dan", "2024-06-04", "failed"),
                                 ("zed", "2024-06-05", "sent"), ("eve", "2024-06-01", "sent")]:
        store.mark_digest(store.claim_digest(user, period), status)
    assert store.last_done_period("eve", eve.email) == "2024-06-01"
    assert done_period(store, eve) == "2024-06-02"  # not dan's failed one, nor zed's (another address)
    assert due_catch_up(eve, utc(2024, 6, 2, 8), done_period(store, eve), timedelta(hours=2)) is None


@pytest.mark.parametrize(("tz", "send_at", "shown"), [
    ("Pacific/Kiritimati", "07:30", "Mon 2024-06-10 07:30 +14 (Sun 17:30 UTC)"),  # +14: still Sunday in UTC
    ("Pacific/Pago_Pago", "23:30", "Mon 2024-06-10 23:30 SST (Tue 10:30 UTC)"),   # -11: already Tuesday in UTC
    ("Asia/Kathmandu", "07:30", "Mon 2024-06-10 07:30 +0545 (01:45 UTC)"),          # the same day: the time alone
])
def test_the_utc_time_of_a_send_names_its_day_when_the_utc_date_differs(tz, send_at, shown):
    """`next: Mon 2024-06-10 07:30 +14 (17:30 UTC)` read as Monday 17:30 UTC, ten hours after the digest went out
    (an admin watching a UTC server log waits for it on Monday afternoon): a `weekly:mon` digest there goes out
    on Sunday in UTC."""
    from digest.schedule import describe_time

    assert describe_time(next_send(profile(tz, send_at, "weekly:mon"), utc(2024, 6, 5))) == shown


def test_durations_show_their_two_largest_units():
    from datetime import timedelta

    from digest.schedule import describe_delta

    assert describe_delta(timedelta(hours=24, minutes=38)) == "in 1 d 38 min"  # was a bare "in 1 d"
    assert describe_delta(timedelta(days=-2, hours=-3, minutes=-5)) == "2 d 3 h ago"
    assert describe_delta(timedelta(minutes=90)) == "in 1 h 30 min"
    assert describe_delta(timedelta(seconds=42)) == "in 42 s" and describe_delta(timedelta(0)) == "just now"


def test_digest_run_refused_at_the_start_leaves_no_data_directory_behind(tmp_path):
    """A busy feedback port (or no profiles folder) stops `digest run` with exit status 2 before it creates a
    database or a link-signing key in a data directory that may be a typo."""
    import socket

    (tmp_path / "profiles").mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(f'profiles_dir = "{tmp_path / "profiles"}"\noutbox = "{tmp_path / "out"}"\n'
                      f'[web]\nhost = "127.0.0.1"\nport = {port}\n')
    new_dir = tmp_path / "typo-data"
    try:
        result = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "--data-dir", str(new_dir),
                                 "run"], capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert result.returncode == 2, result.stderr
    assert f"web: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not new_dir.exists()


def test_status_says_when_a_digest_was_left_half_sent_by_a_run_that_died(setup):
    import socket

    tmp_path, config = setup
    settings = load_settings(config)
    store = Store(settings.db_path)
    digest_id = store.claim_digest("ada", "2024-03-28")
    assert store.mark_sending(digest_id)
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "last: 2024-03-28 sending" in out and "its run stopped" not in out  # this process holds it: alive
    # the run that claimed it was killed (kill -9): its pid is gone
    store.db.execute("UPDATE digests SET claimed_by = ? WHERE id = ?", [f"{socket.gethostname()}::999999999::x",
                                                                        digest_id])
    store.db.conn.commit()
    report = status_report(settings, store)
    assert report["users"][0]["last"]["claim"] == "dead"
    out = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "last: 2024-03-28 sending (its run stopped before it finished; the next `digest run` or `digest send` " \
           "sends it, once)" in out


def test_a_second_digest_run_on_a_data_directory_in_use_exits_1_with_the_locks_message(tmp_path):
    """Another run holds the data directory (and so its web port): exit 1, which a supervisor retries, and the
    message says which run; not the busy port's exit 2, which would stop systemd for good."""
    import socket

    from digest.schedule import RunLock

    (tmp_path / "profiles").mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path / "profiles"}"\n'
                      f'outbox = "{tmp_path / "out"}"\n[web]\nhost = "127.0.0.1"\nport = {busy.getsockname()[1]}\n')
    lock = RunLock(tmp_path / "data")
    lock.acquire()  # the first `digest run`
    try:
        result = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "run"],
                                capture_output=True, text=True, timeout=60)
    finally:
        lock.release()
        busy.close()
    assert result.returncode == 1, result.stderr
    assert f"another `digest run` (pid {os.getpid()}) already uses this data directory" in result.stderr
