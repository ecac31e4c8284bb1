"""The IMAP poller against the real loopback Dovecot (fixture ``mail_servers``), with real alert emails."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import ingest
from digest.cli import cli
from digest.config import load_settings
from digest.errors import ConfigError, MailboxError
from digest.ingest import connect, idle_wait, mailbox_key, poll_all
from digest.pipeline import ingest_raw
from digest.store import Store

pytestmark = pytest.mark.mail

FIXTURES = Path(__file__).parent / "fixtures" / "emails"
ALERT_FILES = [
    "arxiv/jccr-cs-daily-2024-11-07.eml",  # 180 papers, 231 KB
    "google_scholar/bzz-16ef14516c65fd3c.eml",
    "google_scholar/bzz-16ef1451727eb505.eml",
    "google_scholar/ucfchps-alert-nonlatin-title-stout.eml",
    "google_scholar/ucfchps-alert-single-hanney-olecranon.eml",
    "google_scholar/ucfchps-pair-citation-tag-schellhase.eml",
    "google_scholar/ucfchps-pair-normal-tag-mangum.eml",
]
ALERTS = [(FIXTURES / name).read_bytes() for name in ALERT_FILES]
PERSONAL = (b"From: Grace Hopper <grace@example.org>\r\nTo: reader@example.org\r\nSubject: Lunch on Friday?\r\n"
            b"Message-ID: <lunch-1@example.org>\r\nDate: Fri, 07 Nov 2024 10:00:00 +0000\r\n\r\n"
            b"Are you free for lunch on Friday? The new place on Main Street has good soup.\r\n")
# an alert from arXiv whose body is garbage: the parser must refuse it, and the poller quarantine it
MALFORMED = (b"From: no-reply@arxiv.org\r\nTo: reader@example.org\r\nSubject: cs daily Subj-class mailing 9 1\r\n"
             b"Message-ID: <garbled-1@arxiv.org>\r\nDate: Thu, 07 Nov 2024 05:45:00 +0000\r\n\r\n"
             b"\x01\x02 %%% this listing was truncated in transit %%% \xff\r\n")

FLAG, FAILED = "$Digested", "$DigestFailed"


def reference_paper_count(raws) -> int:
    """How many distinct papers the alerts hold, read from files into a fresh store (no IMAP involved)."""
    store = Store(None)
    for i, raw in enumerate(raws, 1):
        ingest_raw(store, raw, mailbox="file:reference", uid=i)
    return store.count_papers()


EXPECTED_PAPERS = reference_paper_count(ALERTS)


def make_settings(tmp_path, servers, address, password, monkeypatch, **imap):
    """A real config.toml pointing at the loopback Dovecot, with the password in an environment variable."""
    values = {"host": servers.host, "port": servers.imaps_port, "security": "tls", "username": address,
              "ca_file": servers.ca_cert, "timeout": 10.0, **imap}
    lines = [f"data_dir = {json.dumps(str(tmp_path / 'data'))}", "[imap]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", password)
    return load_settings(path)


@pytest.fixture
def account(mail_servers, tmp_path, monkeypatch):
    """A fresh mailbox, settings for it, and a store in tmp_path."""
    address, password = mail_servers.new_user("poll")

    class Account:
        servers = mail_servers

        def __init__(self):
            self.address, self.password = address, password
            self.settings = self.configure()
            self.store = Store(self.settings.db_path)

        def configure(self, **imap):
            self.settings = make_settings(tmp_path, mail_servers, self.address, self.password, monkeypatch, **imap)
            return self.settings

        def on_server_like(self, settings, **imap):
            """Move to a fresh mailbox of a server configured otherwise (Dovecot settings for this user only: see
            MailServers.add_user), and configure for it."""
            self.address, self.password = mail_servers.new_user("variant", settings)
            return self.configure(**imap)

        def append(self, raw, folder="INBOX", flags=()):
            return mail_servers.append(self.address, raw, folder, flags)

        def flags(self, folder="INBOX"):
            """uid -> set of flags, as the server has them."""
            return {uid: {f.decode() if isinstance(f, bytes) else f for f in flags}
                    for uid, flags, _ in mail_servers.messages(self.address, folder)}

        def poll(self, **kwargs):
            kwargs.setdefault("backoff", 0.05)
            return poll_all(self.store, self.settings, **kwargs)

    return Account()


def fill_inbox(account, folder="INBOX"):
    """The real alerts, one personal mail and one garbled alert; returns their UIDs by role."""
    uids = {"alerts": [account.append(raw, folder) for raw in ALERTS]}
    uids["personal"] = account.append(PERSONAL, folder)
    uids["malformed"] = account.append(MALFORMED, folder)
    return uids


# -- the normal pass ---------------------------------------------------------------------------------------
def test_a_poll_stores_the_papers_flags_only_the_alerts_and_quarantines_the_garbled_one(account):
    uids = fill_inbox(account)
    report = account.poll()

    assert report.ok, report.errors
    inbox = report.folder("INBOX")
    assert (inbox.fetched, inbox.ingested, inbox.not_alerts, inbox.failed, inbox.skipped) == (9, 7, 1, 1, 0)
    assert account.store.count_papers() == inbox.new_papers == EXPECTED_PAPERS
    flags = account.flags()
    for uid in uids["alerts"]:
        assert flags[uid] == {FLAG}, "an alert is marked processed, and never marked as read"
    assert flags[uids["personal"]] == set(), "mail that is not an alert is not touched at all"
    assert flags[uids["malformed"]] == {FAILED}
    failed = account.store.messages("failed")
    assert len(failed) == 1 and failed[0]["uid"] == uids["malformed"]
    assert "contains no papers" in failed[0]["error"]
    assert any("quarantined: INBOX UID" in p and "contains no papers" in p for p in inbox.problems)


def test_a_second_poll_fetches_nothing_and_a_third_only_the_new_mail(account, monkeypatch):
    # small batches, so a few messages already cross several FETCH boundaries
    monkeypatch.setattr(ingest, "FETCH_BATCH", 3)
    monkeypatch.setattr(ingest, "BODY_BATCH", 2)
    fill_inbox(account)
    assert account.poll().folder("INBOX").ingested == 7
    rows = len(account.store.messages())

    second = account.poll().folder("INBOX")
    assert (second.fetched, second.ingested, second.new_papers) == (0, 0, 0)
    assert len(account.store.messages()) == rows

    new_alert = ALERTS[2].replace(b"Message-ID: <", b"Message-ID: <resent-", 1)
    uid = account.append(new_alert)
    third = account.poll().folder("INBOX")
    assert (third.fetched, third.duplicates) == (1, 0)
    assert third.ingested == 1 and third.new_papers == 0, "same papers, so they merge into the stored ones"
    assert account.flags()[uid] == {FLAG}
    assert account.store.count_papers() == EXPECTED_PAPERS


def test_the_stop_event_ends_the_pass_after_the_current_message_and_the_next_pass_resumes(account):
    fill_inbox(account)
    stop = threading.Event()
    first = account.poll(stop=stop, progress=lambda folder, uid, status: stop.set())
    assert first.folder("INBOX").stopped and first.folder("INBOX").fetched == 1
    rest = account.poll().folder("INBOX")
    assert rest.fetched == 8 and rest.ingested == 6
    assert account.store.count_papers() == EXPECTED_PAPERS


# -- crashes and renumbering -------------------------------------------------------------------------------
def test_killing_the_server_mid_poll_loses_nothing_and_duplicates_nothing(account):
    uids = fill_inbox(account)
    servers = account.servers
    committed = []

    def crash_after_the_first_commit(folder, uid, status):
        # the message and its papers are committed but not yet flagged on the server: the worst moment
        committed.append(uid)
        if len(committed) == 1:
            servers.kill_dovecot()

    try:
        broken = account.poll(progress=crash_after_the_first_commit, retries=2)
    finally:
        servers.start_dovecot()
    assert not broken.ok and broken.log_level == logging.ERROR  # the daemon logs it as `digest status` shows it
    assert "gave up after 3 attempts" in broken.error and "next poll resumes" in broken.error
    assert committed == [uids["alerts"][0]]
    assert account.flags()[uids["alerts"][0]] == set(), "the flag is set only after the commit, and it never came"

    again = account.poll()
    assert again.ok, again.errors
    inbox = again.folder("INBOX")
    assert inbox.fetched == 8, "the committed message is flagged without being fetched again"
    assert inbox.marked == 7
    flags = account.flags()
    assert all(flags[uid] == {FLAG} for uid in uids["alerts"])
    assert flags[uids["personal"]] == set() and flags[uids["malformed"]] == {FAILED}
    assert account.store.count_papers() == EXPECTED_PAPERS
    rows = account.store.messages()
    assert sorted(r["uid"] for r in rows) == sorted([*uids["alerts"], uids["personal"], uids["malformed"]])


def test_status_tells_a_poll_under_way_from_one_whose_process_died(account):
    from digest.schedule import status_report

    uids = fill_inbox(account)
    seen = []

    class Killed(BaseException):
        """What kill -9 does to the pass: no summary is written (the lock goes with the process)."""

    def die_at_the_third(folder, uid, status):
        [poll] = status_report(account.settings, account.store)["polls"]
        seen.append(poll["result"])
        if len(seen) == 3:
            raise Killed

    with pytest.raises(Killed):
        account.poll(progress=die_at_the_third)
    assert seen[0] == "INBOX: reading 9 new messages after UID 0 (under way)"
    [poll] = status_report(account.settings, account.store)["polls"]
    assert poll["result"] == ("INBOX: stopped before its end (the process was killed, the machine went down, or the "
                              "database could not record its end: see the errors below); the next poll goes on "
                              f"after UID {uids['alerts'][1]}")
    assert account.poll().folder("INBOX").fetched == 6
    [poll] = status_report(account.settings, account.store)["polls"]
    assert poll["result"].startswith("INBOX: 6 fetched")  # a pass that ended shows its summary again


def test_an_alert_cut_short_is_stored_as_far_as_it_goes_and_logged_once_with_its_uid(account, caplog):
    uid = account.append(ALERTS[0][:20000])  # an arXiv listing cut inside an entry (a broken upload)
    with caplog.at_level(logging.WARNING, logger="digest"):
        assert account.poll().folder("INBOX").ingested == 1
    assert caplog.text.count("cut short") == 1
    assert f"imap: INBOX UID {uid}: cut short: the arXiv listing stops in the middle of entry" in caplog.text
    assert account.flags()[uid] == {FLAG}  # read (as far as it goes): not quarantined, not read again
    [row] = account.store.partial_messages("2000-01-01")
    assert 0 < account.store.count_papers() < EXPECTED_PAPERS and row["uid"] == uid


def test_a_new_uidvalidity_rescans_the_folder_without_duplicates(account):
    account.configure(folders=["Alerts"])
    fill_inbox(account, "Alerts")
    first = account.poll().folder("Alerts")
    assert first.ingested == 7

    # the server "restores" the folder: same messages, no flags, new UIDVALIDITY
    with account.servers.imap(account.address) as client:
        client.delete_folder("Alerts")
        client.create_folder("Alerts")
    fill_inbox(account, "Alerts")
    second = account.poll().folder("Alerts")
    assert second.uidvalidity != first.uidvalidity
    assert second.rescanned
    assert (second.fetched, second.ingested, second.duplicates, second.new_papers) == (9, 0, 7, 0)
    assert account.store.count_papers() == EXPECTED_PAPERS
    assert sum(1 for f in account.flags("Alerts").values() if f == {FLAG}) == 7
    state = account.store.poll_state(mailbox_key(account.settings.imap, "Alerts"))
    assert state["uidvalidity"] == second.uidvalidity


def test_the_first_poll_of_a_folder_reads_its_recent_mail_and_leaves_its_history_for_a_rescan(account):
    # a folder that has collected alerts for years: the first poll must not make all of them today's candidates
    account.configure(folders=["History"], first_poll_days=14)
    assert account.poll().folder("History").error  # the user's filter has not made the folder yet
    old = datetime.now(UTC) - timedelta(days=60)
    older = [account.servers.append(account.address, raw, "History", arrived=old) for raw in ALERTS[1:3]]
    account.servers.append(account.address, ALERTS[4], "History", arrived=old, flags=[FLAG])  # read before
    recent = account.servers.append(account.address, ALERTS[3], "History")
    first = account.poll().folder("History")
    assert (first.fetched, first.ingested, first.left_alone) == (1, 1, 2), first.summary()
    assert "first look at this folder: 2 older messages" in first.summary() and "--rescan" in first.summary()
    assert account.flags("History")[recent] == {FLAG} and all(account.flags("History")[u] == set() for u in older)
    assert any("2 older messages left alone" in e["message"] for e in account.store.recent_events(10))
    # later polls read what comes, and do not count the history again
    account.append(ALERTS[5], "History")
    second = account.poll().folder("History")
    assert (second.fetched, second.ingested, second.left_alone) == (1, 1, 0)
    # asked for, the history is read
    third = account.poll(rescan=True).folder("History")
    assert (third.fetched, third.ingested) == (2, 2) and all(account.flags("History")[u] == {FLAG} for u in older)
    # first_poll_days = 0, or --rescan as the first poll of a folder: it is read whole
    account.configure(folders=["Whole"], first_poll_days=0)
    account.servers.append(account.address, ALERTS[6], "Whole", arrived=old)
    assert (account.poll().folder("Whole").ingested, account.poll().folder("Whole").left_alone) == (1, 0)
    account.configure(folders=["Archive"], first_poll_days=14)
    account.servers.append(account.address, PERSONAL, "Archive", arrived=old)
    archive = account.poll(rescan=True).folder("Archive")
    assert (archive.fetched, archive.not_alerts, archive.left_alone) == (1, 1, 0)


def test_a_missing_folder_is_reported_and_the_other_folders_are_still_polled(account):
    account.configure(folders=["Nope", "INBOX"])
    account.append(ALERTS[1])
    with account.servers.imap(account.address) as client:
        client.create_folder("Alerts/arXiv")  # "Alerts" is then a parent that cannot be selected (\\Noselect)
    report = account.poll()
    assert not report.ok
    assert report.folder("Nope").error == ("cannot open folder 'Nope' on 127.0.0.1: Mailbox doesn't exist: Nope; "
                                           "check imap.folders (the server has: Alerts/arXiv, INBOX)")
    assert report.folder("INBOX").ingested == 1


# -- move mode ---------------------------------------------------------------------------------------------
def test_move_mode_moves_processed_mail_to_its_folder_and_keeps_it_unread(account):
    account.configure(mark="move")
    uids = fill_inbox(account)
    report = account.poll()
    assert report.ok, report.errors

    inbox = account.servers.messages(account.address, "INBOX")
    assert [raw for _, _, raw in inbox] == [PERSONAL], "only the personal mail stays"
    assert inbox[0][0] == uids["personal"] and inbox[0][1] == ()
    moved = account.servers.messages(account.address, "Digested")
    assert sorted(raw for _, _, raw in moved) == sorted(ALERTS)
    assert all(b"\\Seen" not in flags for _, flags, _ in moved)
    quarantined = account.servers.messages(account.address, "Digest-Failed")
    assert [raw for _, _, raw in quarantined] == [MALFORMED]
    assert account.store.count_papers() == EXPECTED_PAPERS
    assert account.poll().folder("INBOX").fetched == 0


INBOX_DOT = "userdb_namespace/inbox/prefix=INBOX. userdb_namespace/inbox/separator=."  # Courier, cPanel, Cyrus


def test_a_move_folder_the_server_refuses_to_create_stops_the_pass_before_any_mail_with_the_key_and_its_fix(
        account):
    from digest.schedule import status_report

    account.on_server_like(INBOX_DOT, mark="move")  # a top-level "Digested" is refused there
    uids = fill_inbox(account)
    with pytest.raises(MailboxError) as error:
        account.poll()
    message = str(error.value)
    assert message.startswith("imap: cannot create folder 'Digested' (imap.processed_folder) on ")
    assert "nonexistent namespace" in message and ".;" not in message
    assert "this server keeps folders under 'INBOX.': set imap.processed_folder = \"INBOX.Digested\"" in message
    # nothing was read that could not be filed: the mail is where it was, unmarked, and read by the next pass
    assert account.store.count_papers() == 0
    assert set(account.flags()) == {uid for group in uids.values() for uid in ([group] if isinstance(group, int)
                                                                                 else group)}
    [event] = [e for e in status_report(account.settings, account.store)["recent_errors"] if e["component"] == "poll"]
    assert "set imap.processed_folder = \"INBOX.Digested\"" in event["message"]

    # the quarantine folder is checked the same way, before any mail: a garbled alert must find it later
    account.configure(mark="move", processed_folder="INBOX.Digested")
    with pytest.raises(MailboxError, match="'Digest-Failed' \\(imap.quarantine_folder\\).*"
                                           "set imap.quarantine_folder = \"INBOX.Digest-Failed\""):
        account.poll()
    assert account.store.count_papers() == 0

    account.configure(mark="move", processed_folder="INBOX.Digested", quarantine_folder="INBOX.Digest-Failed")
    report = account.poll()
    assert report.ok, report.errors
    assert [raw for _, _, raw in account.servers.messages(account.address, "INBOX")] == [PERSONAL]
    assert sorted(raw for _, _, raw in account.servers.messages(account.address, "INBOX.Digested")) == sorted(ALERTS)
    assert [raw for _, _, raw in account.servers.messages(account.address, "INBOX.Digest-Failed")] == [MALFORMED]
    assert account.store.count_papers() == EXPECTED_PAPERS


def test_a_server_that_cannot_move_mail_is_refused_before_any_mail_is_read_or_folder_made(account):
    account.on_server_like("userdb_imap_capability=IMAP4rev1", mark="move")  # neither MOVE nor UIDPLUS
    account.append(ALERTS[1])
    with pytest.raises(MailboxError, match="supports neither MOVE nor UIDPLUS, so mail cannot be moved safely; "
                                           "set imap.mark = \"flag\""):
        account.poll()
    assert account.store.count_papers() == 0
    with account.servers.imap(account.address) as client:
        assert [name for _, _, name in client.list_folders()] == ["INBOX"], "no folder made that cannot be used"
    account.configure(mark="flag")
    assert account.poll().folder("INBOX").ingested == 1


def test_a_read_only_folder_is_that_folders_error_at_once_and_the_other_folders_are_still_polled(account, tmp_path):
    account.on_server_like("userdb_mail_plugins=acl userdb_acl=vfile", folders=["INBOX", "Other"])
    account.append(ALERTS[0])
    other = account.append(ALERTS[1], "Other")
    # the owner may list and read INBOX, not change it (Dovecot's ACL file of the Maildir's INBOX)
    (account.servers.dir / "mail" / account.address / "Maildir" / "dovecot-acl").write_text("owner lr\n")
    started = time.monotonic()
    report = account.poll(backoff=1.0)
    assert time.monotonic() - started < 1.0, "not taken for a lost connection and retried"
    assert report.folder("INBOX").error == (f"folder 'INBOX' is read-only for {account.address}, so read mail cannot "
                                            "be marked; give the account write access or poll another folder "
                                            "(imap.folders)")
    assert report.error is None
    assert report.folder("Other").ingested == 1 and account.flags("Other") == {other: {FLAG}}
    # check --connect says the same, and goes on with the other checks
    code, out = check_connect(account, tmp_path, account.password, mark="move", folders=["Other", "INBOX"])
    assert code == 1 and f"error: imap: folder 'INBOX' is read-only for {account.address}" in out
    assert "imap: folder 'Other': 1 message, readable and writable" in out
    assert "imap: imap.processed_folder 'Digested' does not exist yet" in out and "lost" not in out, out


def test_a_move_folder_the_account_may_not_write_to_is_refused_before_any_mail_is_read(account, tmp_path):
    account.on_server_like("userdb_mail_plugins=acl,imap_acl userdb_acl=vfile", mark="move")  # MYRIGHTS offered
    account.append(ALERTS[1], "Digested")  # the folder exists (made by the mail program, say) ...
    alert = account.append(ALERTS[3])
    maildir = account.servers.dir / "mail" / account.address / "Maildir"
    (maildir / ".Digested" / "dovecot-acl").write_text("owner lr\n")  # ... and the account may only read it
    fix = (f"imap.processed_folder 'Digested': {account.address} may not put mail into it (the server gives the "
           "rights 'lr', without 'i'); give the account that right on it, or set imap.processed_folder to a folder "
           "it may write (or imap.mark = \"flag\")")
    with pytest.raises(MailboxError) as raised:
        account.poll()
    assert str(raised.value) == f"imap: {fix}"
    assert account.store.count_papers() == 0 and list(account.flags()) == [alert], "nothing read that is not filed"
    assert FLAG not in account.flags()[alert]
    code, out = check_connect(account, tmp_path, account.password, mark="move")
    assert code == 1 and f"error: imap: {fix}" in out, out
    (maildir / ".Digested" / "dovecot-acl").write_text("owner lrwstipekxa\n")
    report = account.poll()
    assert report.ok, report.errors
    assert account.flags() == {} and account.store.count_papers() == reference_paper_count(ALERTS[3:4])


# -- size limit --------------------------------------------------------------------------------------------
def test_an_oversize_message_is_skipped_with_its_reason_and_read_after_the_limit_is_raised(account):
    account.configure(max_message_bytes=100_000)  # the arXiv listing is 231 KB
    big = account.append(ALERTS[0])
    small = account.append(ALERTS[1])
    first = account.poll().folder("INBOX")
    assert (first.fetched, first.ingested, first.skipped) == (1, 1, 1)
    row = account.store.messages("skipped")[0]
    assert row["uid"] == big and row["subject"].startswith("cs daily Subj-class mailing")
    assert "over imap.max_message_bytes = 100,000" in row["error"] and "--rescan" in row["error"]
    assert account.flags() == {big: set(), small: {FLAG}}
    assert account.poll().folder("INBOX").skipped == 0, "not looked at again on every poll"

    account.configure(max_message_bytes=1_000_000)
    rescan = account.poll(rescan=True).folder("INBOX")
    assert (rescan.fetched, rescan.ingested) == (1, 1)
    assert account.flags()[big] == {FLAG}
    assert account.store.count_papers() == reference_paper_count(ALERTS[:2])


# -- TLS, STARTTLS, login --------------------------------------------------------------------------------
def test_starttls_implicit_tls_and_plain_on_localhost_all_work(account):
    account.append(ALERTS[3])
    for security, port in (("starttls", account.servers.imap_port), ("plain", account.servers.imap_port),
                           ("tls", account.servers.imaps_port)):
        account.configure(security=security, port=port)
        client = connect(account.settings)
        try:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1
            assert (client._imap._tls_established or client.ssl) == (security != "plain")
        finally:
            client.logout()


def test_an_untrusted_certificate_fails_with_a_clear_error(account, tmp_path):
    other_ca = tmp_path / "other-ca.pem"  # a real CA certificate, but not the one that signed the server's
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-days", "2",
                    "-subj", "/CN=Some Other CA"], check=True, capture_output=True)
    account.configure(ca_file=str(other_ca))
    with pytest.raises(MailboxError) as wrong_ca:
        account.poll()
    assert f"the TLS certificate of {account.servers.host}:{account.servers.imaps_port}" in str(wrong_ca.value)
    assert "not trusted" in str(wrong_ca.value) and "point imap.ca_file to the CA" in str(wrong_ca.value)

    account.configure(ca_file="", security="starttls", port=account.servers.imap_port)
    with pytest.raises(MailboxError) as no_ca:
        account.poll()
    assert "set imap.ca_file to that CA's certificate" in str(no_ca.value)

    account.configure(security="tls", port=account.servers.imap_port)  # implicit TLS on the plain port
    with pytest.raises(MailboxError) as wrong_port:
        account.poll()
    assert "check imap.port and imap.security" in str(wrong_port.value)


def test_a_wrong_password_gives_a_clear_error_without_the_password(account, monkeypatch):
    fill_inbox(account)
    account.poll()  # a good pass first: its line must not go on standing for the failed one
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "not-the-password")
    with pytest.raises(MailboxError) as caught:
        account.poll()
    message = str(caught.value)
    host = f"{account.servers.host}:{account.servers.imaps_port}"
    assert message.startswith(f"imap: login failed for {account.address} at {host}: [AUTHENTICATIONFAILED]")
    assert message.endswith("check imap.username and the password in $DIGEST_IMAP_PASSWORD")
    assert "not-the-password" not in message and "b'" not in message
    # a poll run from cron that fails leaves the reason where `digest status` shows it
    from digest.schedule import status_report

    report = status_report(account.settings, account.store)
    [event] = [e for e in report["recent_errors"] if e["component"] == "poll" and e["level"] == "ERROR"]
    assert event["message"] == message and event["resolved"] is None
    # every folder's "last poll" line says this pass failed, not what the good one before it read
    assert {p["result"].split(":", 1)[1] for p in report["polls"]} == {f" error: {message}"}, report["polls"]


def test_a_poll_refused_for_its_settings_leaves_the_reason_for_status(account):
    from digest.schedule import status_report

    account.configure(processed_flag="has space")
    with pytest.raises(ConfigError, match="is not a valid IMAP keyword"):
        account.poll()
    [event] = [e for e in status_report(account.settings, account.store)["recent_errors"] if e["component"] == "poll"]
    assert "imap.processed_flag = 'has space' is not a valid IMAP keyword" in event["message"]


def test_starttls_on_a_port_that_expects_tls_at_once_says_so_without_retrying(account, caplog):
    account.configure(security="starttls", port=account.servers.imaps_port, timeout=1.0)
    with pytest.raises(MailboxError, match=r"takes the connection but sends no greeting within imap.timeout = 1 s and "
                                           r"answers TLS, as a port that expects TLS at once \(like 993\) does; set "
                                           r"imap.security"):
        account.poll()
    assert "reconnecting" not in caplog.text  # a setting to fix, not a network to wait for: no retries


def test_a_server_that_greets_and_then_stalls_is_waited_for_as_a_network_problem(tmp_path, monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def greet_then_stall():  # greets every connection with STARTTLS offered, then says nothing more
        with contextlib.suppress(OSError):  # until the test closes the listener
            while True:
                conn, _ = listener.accept()
                held.append(conn)
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")

    threading.Thread(target=greet_then_stall, daemon=True).start()
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[imap]\nhost = "127.0.0.1"\nport = {listener.getsockname()[1]}\n'
                      'security = "starttls"\nusername = "alerts@example.org"\ntimeout = 1\n')
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "pw")
    report = poll_all(Store(None), load_settings(config), retries=2, backoff=0.01)
    # retried: a greeting came, so this is a slow server (or a network), not a port that expects TLS at once
    assert "gave up after 3 attempts" in report.error and "no greeting" not in report.error, report.error
    listener.close()


def test_a_server_that_takes_connections_and_says_nothing_is_waited_for_not_taken_for_a_tls_port(
        tmp_path, monkeypatch):
    # a hung or overloaded server (or one with a greeting delay): the connection is taken, no word follows, and a
    # TLS handshake gets no answer either; unlike the implicit-TLS port above, retried as a network problem
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    def take():  # takes every connection and says nothing, until the test closes the listener
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept())

    threading.Thread(target=take, daemon=True).start()
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[imap]\nhost = "127.0.0.1"\nport = {listener.getsockname()[1]}\n'
                      'security = "starttls"\nusername = "alerts@example.org"\ntimeout = 1\n')
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "pw")
    report = poll_all(Store(None), load_settings(config), retries=1, backoff=0.01)
    assert "gave up after 2 attempts" in report.error and "does not answer TLS either" in report.error, report.error
    assert 'set imap.security = "tls"' not in report.error
    listener.close()


def test_a_missing_password_names_the_environment_variable(account, monkeypatch):
    monkeypatch.delenv("DIGEST_IMAP_PASSWORD")
    with pytest.raises(ConfigError, match=r"set the environment variable DIGEST_IMAP_PASSWORD"):
        account.poll()


class NoStarttlsServer(threading.Thread):
    """A minimal IMAP greeter that does not offer STARTTLS (Dovecot here always does). Records commands."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[bytes] = []

    def run(self):
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK fake IMAP ready\r\n")
            for line in lines:
                self.commands.append(line)
                tag, _, rest = line.partition(b" ")
                if rest.upper().startswith(b"CAPABILITY"):
                    conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                elif rest.upper().startswith(b"LOGOUT"):
                    conn.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    break
                else:
                    conn.sendall(tag + b" OK done\r\n")
        self.listener.close()


def test_starttls_that_the_server_does_not_offer_fails_before_the_password_is_sent(tmp_path, monkeypatch):
    server = NoStarttlsServer()
    server.start()
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[imap]\nhost = "127.0.0.1"\nport = {server.port}\n'
                      'security = "starttls"\nusername = "alerts@example.org"\n')
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "hunter2-secret")
    with pytest.raises(MailboxError, match=r"does not offer STARTTLS.*never logs in without TLS"):
        poll_all(Store(None), load_settings(config))
    server.join(10)
    assert server.commands, "the client talked to the fake server"
    assert not any(b"LOGIN" in c.upper() or b"hunter2" in c for c in server.commands)


def test_log_lines_never_contain_the_password(account, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    account.append(ALERTS[4])
    assert account.poll().ok
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "wrong-" + account.password)
    with pytest.raises(MailboxError):
        account.poll()
    assert "LOGIN" in caplog.text, "the IMAP protocol log was captured (redacted by imapclient)"
    assert account.password not in caplog.text


# -- one poll at a time ------------------------------------------------------------------------------------
def test_a_poll_waits_for_another_poll_of_the_same_database_and_then_gives_up_cleanly(account):
    lock_path = account.settings.db_path.with_name("digest.db.poll.lock")
    with open(lock_path, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        report = account.poll(lock_wait=0.3)
    assert not report.ok and report.log_level == logging.WARNING and "another poll of" in report.error and not report.folders


# -- IDLE --------------------------------------------------------------------------------------------------
def idle_wait_while_mail_arrives(account, raw, *, since, timeout, delay, folder="INBOX"):
    """Run idle_wait in a thread, append ``raw`` to ``folder`` after ``delay`` seconds; returns what idle_wait
    returned (None if it had not returned within ``timeout``) and the seconds from the append to its return."""
    result = {}
    waiter = threading.Thread(target=lambda: result.update(new=idle_wait(account.settings, timeout, since=since)))
    waiter.start()
    time.sleep(delay)
    appended = time.monotonic()
    account.append(raw, folder=folder)
    waiter.join(timeout)
    return result.get("new"), time.monotonic() - appended


def test_idle_wait_returns_true_when_mail_arrives_and_false_when_nothing_does(account):
    report = account.poll()
    assert idle_wait(account.settings, 1.5, since=report) is False

    # appended before the IDLE began (caught by since=) or during it (EXISTS): True either way
    new, _ = idle_wait_while_mail_arrives(account, ALERTS[5], since=report, timeout=60, delay=0.5)
    assert new is True
    assert account.poll().folder("INBOX").ingested == 1


def test_idle_wait_keeps_renewing_its_idle_and_stops_on_the_stop_event(account, monkeypatch):
    monkeypatch.setattr(ingest, "IDLE_RENEW", 0.5)  # servers drop an IDLE after ~29 minutes; renew often here
    report = account.poll()
    # two seconds before the mail: several renewals
    new, _ = idle_wait_while_mail_arrives(account, ALERTS[6], since=report, timeout=30, delay=2.0)
    assert new is True

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert idle_wait(account.settings, 30, stop=stop) is False
    assert stop.is_set()


def test_idle_wait_watches_every_configured_folder_and_stops_on_the_stop_event(account):
    with account.servers.imap(account.address) as client:
        client.create_folder("Alerts/arXiv")
    account.configure(folders=["INBOX", "Alerts/arXiv"])
    report = account.poll()
    assert idle_wait(account.settings, 1.5, since=report) is False

    # the second folder: no longer left to the next poll
    new, seconds = idle_wait_while_mail_arrives(account, ALERTS[5], folder="Alerts/arXiv", since=report,
                                                timeout=60, delay=1.0)
    assert new is True and seconds < 30
    assert account.poll().folder("Alerts/arXiv").ingested == 1

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert idle_wait(account.settings, 30, stop=stop) is False
    assert time.monotonic() - started < 10  # every folder's watch ended with the stop


def test_a_folder_that_cannot_be_watched_is_logged_and_the_others_are_still_watched(account, caplog):
    account.configure(folders=["INBOX", "No/Such/Folder"])
    report = account.poll()
    new, _ = idle_wait_while_mail_arrives(account, ALERTS[5], since=report, timeout=60, delay=1.0)
    assert new is True
    assert "cannot watch folder 'No/Such/Folder'" in caplog.text and "the other folders are watched" in caplog.text

    account.configure(folders=["No/Such/Folder", "Nor/This"])  # nothing can be watched: the error is raised
    with pytest.raises(MailboxError, match=r"cannot watch folder '(No/Such/Folder|Nor/This)'.*check imap\.folders"):
        idle_wait(account.settings, 5)


def test_idle_wait_returns_true_when_the_server_goes_away(account):
    servers = account.servers
    result = {}
    waiter = threading.Thread(target=lambda: result.update(new=idle_wait(account.settings, 60)))
    waiter.start()
    time.sleep(1.0)
    try:
        servers.kill_dovecot()
        waiter.join(60)
    finally:
        servers.start_dovecot()
    assert result == {"new": True}


# -- the command --------------------------------------------------------------------------------------------
def test_digest_poll_prints_one_line_per_folder(account):
    fill_inbox(account)
    result = CliRunner().invoke(cli, ["--config", account.settings.source, "poll"])
    assert result.exit_code == 0, result.output
    assert ("INBOX: 9 fetched, 7 ingested, 1 not alerts, 1 failed (quarantined), 0 skipped (too large); "
            f"{EXPECTED_PAPERS} new papers") in result.output
    assert "quarantined: INBOX UID" in result.output
    again = CliRunner().invoke(cli, ["--config", account.settings.source, "poll", "--once"])
    assert "INBOX: 0 fetched, 0 ingested" in again.output


def test_digest_poll_fails_with_one_line_on_a_wrong_password_or_an_unreachable_server(account, monkeypatch):
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "nope")
    result = CliRunner().invoke(cli, ["--config", account.settings.source, "poll"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: imap: login failed for {account.address}")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output

    monkeypatch.setattr(ingest, "BACKOFF", 0.01)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]
    account.configure(port=closed_port)
    result = CliRunner().invoke(cli, ["--config", account.settings.source, "poll"])
    assert result.exit_code == 1
    assert (f"error: imap: cannot reach {account.servers.host}:{closed_port} (Connection refused; check imap.host "
            "and imap.port, and that the server runs)") in result.output
    assert "gave up after 4 attempts" in result.output and "Traceback" not in result.output
    assert result.output.count("gave up after 4 attempts") == 1  # said once, not by the log, the line and again


def test_digest_poll_watch_ingests_mail_as_it_arrives_and_stops_on_sigterm(account):
    account.configure(idle=True, poll_minutes=10.0)
    proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", account.settings.source, "poll", "--watch"],
                            cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite: a stuck watcher ends the reads below
    watchdog.start()

    def read_until(text):
        for line in proc.stdout:
            lines.append(line.decode())
            if text in lines[-1]:
                return True
        return False

    try:
        assert read_until("INBOX: 0 fetched"), "".join(lines)
        account.append(ALERTS[3])  # IDLE sees it; the watcher polls at once
        assert read_until("INBOX: 1 fetched, 1 ingested"), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "".join(lines)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert lines[0].startswith("watching INBOX on ") and "(IMAP IDLE)" in lines[0]
    assert "Traceback" not in "".join(lines)


@pytest.mark.parametrize("imap, message", [
    ({"processed_flag": "Digested by me"}, "imap.processed_flag = 'Digested by me' is not a valid IMAP keyword"),
    ({"mark": "move", "folders": ["INBOX", "Digested"]}, "imap.folders includes 'Digested', where mark = \"move\""),
    ({"host": ""}, "imap.host is not set"),
])
def test_settings_the_poller_cannot_work_with_are_refused_before_connecting(tmp_path, imap, message):
    values = {"host": "imap.example.org", "username": "alerts@example.org", **imap}
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[imap]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    with pytest.raises(ConfigError) as caught:
        poll_all(Store(None), load_settings(config))
    assert str(caught.value).startswith(f"{config}: ") and message in str(caught.value)



def test_digest_poll_without_a_config_says_what_to_copy_and_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.delenv("DIGEST_DATA_DIR", raising=False)
    result = CliRunner().invoke(cli, ["poll"])
    assert result.exit_code == 2
    assert result.output.startswith("error: the built-in defaults (no config.toml): imap.host is not set; to read "
                                    "alerts from a mailbox, copy config.example.toml to config.toml")
    assert list(tmp_path.iterdir()) == []  # no data/digest.db for a poll that could not run


# -- digest check --connect ----------------------------------------------------------------------------------
def check_connect(account, tmp_path, smtp_password, **imap):
    """`digest check --connect` on a config for this account (IMAP) and the relay (SMTP, logged in as the same
    account), with one profile; returns (exit code, output)."""
    servers = account.servers
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "ada.toml").write_text('email = "ada@mylab.example.edu"\n[[interests]]\nlabel = "x"\n'
                                       'description = "retrieval-augmented language models"\n')
    sections = {
        "imap": {"host": servers.host, "port": servers.imaps_port, "security": "tls", "username": account.address,
                 "ca_file": servers.ca_cert, "timeout": 10.0, **imap},
        "smtp": {"host": servers.host, "port": servers.smtps_port, "security": "tls", "ca_file": servers.ca_cert,
                 "username": account.address, "from_addr": account.address},
        "model": {"name": "all-MiniLM-L6-v2"}, "web": {"base_url": "https://digest.example.edu"}}
    lines = [f"data_dir = {json.dumps(str(tmp_path / 'data'))}", f"profiles_dir = {json.dumps(str(profiles))}"]
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    config = tmp_path / "check.toml"
    config.write_text("\n".join(lines) + "\n")
    env = {"DIGEST_IMAP_PASSWORD": account.password, "DIGEST_SMTP_PASSWORD": smtp_password,
           "DIGEST_SECRET_KEY": "k" * 40}
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "--connect"], env=env)
    return result.exit_code, result.output


def test_check_connect_logs_in_and_looks_at_the_folders_and_smtp_without_changing_anything(account, tmp_path):
    uid = account.append(ALERTS[1])
    code, out = check_connect(account, tmp_path, account.password, mark="move", folders=["INBOX", "Nope"], idle=True)
    assert code == 1, out
    assert "imap: IDLE offered: new mail is read as it arrives (imap.idle = true)" in out
    assert f"imap: logged in to {account.servers.host}:{account.servers.imaps_port} as {account.address} (tls)" in out
    assert "imap: folder 'INBOX': 1 message, readable and writable" in out
    assert "imap: imap.processed_folder 'Digested' does not exist yet; the first poll creates it" in out
    assert (f"smtp: connected to {account.servers.host}:{account.servers.smtps_port} (smtp.security = \"tls\") as "
            f"{account.address}; it takes {account.address} as the sender") in out
    assert "error: imap: cannot open folder 'Nope' on 127.0.0.1: Mailbox doesn't exist: Nope; check imap.folders " \
           "(the server has: INBOX)" in out
    # nothing changed: no folder made, the mail unmarked, nothing stored, nothing sent
    with account.servers.imap(account.address) as client:
        assert [name for _, _, name in client.list_folders()] == ["INBOX"]
    assert account.flags() == {uid: set()}
    assert account.store.count_papers() == 0
    assert not any(account.address in line for line in account.servers.smtp_log()), "nothing was sent"

    code, out = check_connect(account, tmp_path, "wrong", mark="flag")
    assert code == 1 and "imap: folder 'INBOX': 1 message, readable and keeps the keywords" in out
    assert f"error: smtp: {account.servers.host} refused the login of '{account.address}': 535" in out

    account.on_server_like(INBOX_DOT)
    code, out = check_connect(account, tmp_path, account.password, mark="move")
    assert code == 1, out
    assert ("error: imap: imap.processed_folder 'Digested' does not exist and cannot be made there: this server "
            "keeps folders under 'INBOX.': set imap.processed_folder = \"INBOX.Digested\"") in out
    assert "set imap.quarantine_folder = \"INBOX.Digest-Failed\"" in out
    code, out = check_connect(account, tmp_path, account.password, mark="move", processed_folder="INBOX.Digested",
                              quarantine_folder="INBOX.Digest-Failed")
    assert code == 0, out
    assert "does not exist yet; the first poll creates it" in out and "error" not in out

    # before any profile exists (the first thing a new user checks), the servers are still tried
    profiles = tmp_path / "profiles"
    (profiles / "ada.toml").rename(tmp_path / "ada.toml")
    profiles.rmdir()
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "check.toml"), "check", "--connect"],
                                env={"DIGEST_IMAP_PASSWORD": account.password, "DIGEST_SMTP_PASSWORD": account.password,
                                     "DIGEST_SECRET_KEY": "k" * 40})
    assert result.exit_code != 0 and "imap: logged in to " in result.output and "smtp: connected to " in result.output

    account.on_server_like("userdb_imap_capability=IMAP4rev1")  # neither MOVE, UIDPLUS nor IDLE
    code, out = check_connect(account, tmp_path, account.password, mark="move", idle=True)
    assert code == 1, out
    assert "error: imap: 127.0.0.1 supports neither MOVE nor UIDPLUS, so mail cannot be moved safely" in out
    assert "imap: 127.0.0.1 does not offer IDLE, so imap.idle = true falls back to a poll every " \
           "imap.poll_minutes = 15 min" in out
    code, out = check_connect(account, tmp_path, account.password, mark="flag")
    assert code == 0 and "IDLE" not in out, out
