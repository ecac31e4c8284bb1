"""The test infrastructure itself, against the real servers: if these fail, nothing else that
talks to IMAP/SMTP/Chromium can be trusted."""

from __future__ import annotations

import asyncio
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from browser import png_size, screenshot
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from mailserver import read_env_file

mail = pytest.mark.mail


def make_message(to: str, subject: str = "digest test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "digest@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.test")
    msg.set_content("hello\n.a line starting with a dot\n")
    return msg


def send(servers, msg: EmailMessage, implicit_tls: bool = False, password: str | None = None):
    """Send as digest@example.test with STARTTLS (or SMTPS) + AUTH, like the real sender does."""
    kwargs = dict(
        hostname=servers.host,
        username="digest@example.test",
        password=password or servers.users["digest@example.test"],
        tls_context=servers.ssl_context(),
        timeout=10,
    )
    if implicit_tls:
        kwargs.update(port=servers.smtps_port, use_tls=True)
    else:
        kwargs.update(port=servers.smtp_port, start_tls=True)
    return asyncio.run(aiosmtplib.send(msg, **kwargs))


# ---- IMAP ----------------------------------------------------------------------------------


@mail
def test_login_works_and_a_wrong_password_is_refused_quickly(mail_servers):
    address, _ = mail_servers.new_user("login")
    with mail_servers.imap(address) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client = IMAPClient(mail_servers.host, port=mail_servers.imap_port, ssl=False, timeout=10)
    start = time.monotonic()
    with pytest.raises(LoginError):
        client.login(address, "wrong")
    assert time.monotonic() - start < 2  # auth_failure_delay = 0
    # and no auth penalty on the next, correct login (P6)
    start = time.monotonic()
    with mail_servers.imap(address):
        pass
    assert time.monotonic() - start < 2


@mail
def test_added_users_can_log_in_at_once(mail_servers):
    # two additions within the same second: Dovecot must notice the second one too
    first = mail_servers.new_user("added")
    second = mail_servers.new_user("added")
    for address, password in (first, second):
        assert mail_servers.users[address] == password
        with mail_servers.imap(address) as client:
            client.noop()


@mail
def test_append_and_peek_leave_the_message_unseen(mail_servers):
    address, _ = mail_servers.new_user("peek")
    raw = b"From: a@example.test\r\nSubject: peek\r\nMessage-ID: <peek@t>\r\n\r\nbody\r\n"
    uid = mail_servers.append(address, raw)
    mail_servers.append(address, b"Subject: seen\r\n\r\nx\r\n", flags=[b"\\Seen"])
    mail_servers.append(address, b"Subject: other\r\n\r\ny\r\n", folder="Archive")

    messages = mail_servers.messages(address)
    assert [m[0] for m in messages] == [uid, uid + 1]
    assert messages[0][2] == raw
    assert b"\\Seen" not in messages[0][1]
    assert b"\\Seen" in messages[1][1]
    # reading twice must not change anything: BODY.PEEK[] does not set \Seen (P13)
    assert b"\\Seen" not in mail_servers.messages(address)[0][1]
    assert len(mail_servers.messages(address, "Archive")) == 1
    assert "messages=2 unseen=1" in mail_servers.doveadm(
        "-f", "flow", "mailbox", "status", "-u", address, "messages unseen", "INBOX"
    )


@mail
def test_starttls_and_imaps_trust_the_test_ca(mail_servers):
    address, password = mail_servers.new_user("tls")
    with IMAPClient(mail_servers.host, port=mail_servers.imap_port, ssl=False, timeout=10) as client:
        client.starttls(mail_servers.ssl_context())
        client.login(address, password)
        client.noop()
    for host in ("localhost", "127.0.0.1"):  # the cert names both
        with IMAPClient(
            host, port=mail_servers.imaps_port, ssl=True, ssl_context=mail_servers.ssl_context(), timeout=10
        ) as client:
            client.login(address, password)


@mail
def test_imaps_rejects_the_cert_without_the_test_ca(mail_servers):
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            "localhost",
            port=mail_servers.imaps_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


# ---- SMTP ----------------------------------------------------------------------------------


@mail
def test_smtp_starttls_auth_delivers_before_the_reply(mail_servers):
    address, _ = mail_servers.new_user("smtp")
    msg = make_message(address)
    errors, reply = send(mail_servers, msg)
    assert errors == {}
    assert reply.startswith("2.0.0")
    # synchronous delivery: no polling needed
    [(_, flags, raw)] = mail_servers.messages(address)
    assert msg["Message-ID"].encode() in raw
    assert b"\r\n..a line starting with a dot" not in raw and b"\r\n.a line starting with a dot" in raw
    assert b"Delivered-To: " + address.encode() in raw
    assert any(line.endswith(f"\t{address}\t{msg['Message-ID']}") for line in mail_servers.smtp_log())


@mail
def test_smtps_implicit_tls_delivers(mail_servers):
    address, _ = mail_servers.new_user("smtps")
    send(mail_servers, make_message(address), implicit_tls=True)
    assert len(mail_servers.messages(address)) == 1


@mail
def test_smtp_wrong_password_is_535(mail_servers):
    address, _ = mail_servers.new_user("smtp535")
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as exc:
        send(mail_servers, make_message(address), password="wrong")
    assert exc.value.code == 535


@mail
def test_unknown_recipient_is_550(mail_servers):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as exc:
        send(mail_servers, make_message("nobody@example.test"))
    assert exc.value.recipients[0].code == 550


@mail
def test_temporary_faults_are_consumed_then_mail_is_delivered(mail_servers):
    address, _ = mail_servers.new_user("fault451")
    mail_servers.set_faults({address: ["451 4.3.0 try later", "451 4.3.0 try later"]})
    try:
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPDataError) as exc:
                send(mail_servers, make_message(address))
            assert exc.value.code == 451
            assert "try later" in exc.value.message
        assert mail_servers.messages(address) == []
        send(mail_servers, make_message(address))
        assert len(mail_servers.messages(address)) == 1
        assert mail_servers.faults()[address] == []
    finally:
        mail_servers.clear_faults()


@mail
def test_a_permanent_fault_keeps_refusing(mail_servers):
    address, _ = mail_servers.new_user("fault550")
    other, _ = mail_servers.new_user("fault550-other")
    mail_servers.set_faults({address: ["550 5.1.1 no such user"]})
    try:
        for _ in range(3):
            with pytest.raises(aiosmtplib.SMTPDataError) as exc:
                send(mail_servers, make_message(address))
            assert exc.value.code == 550
        send(mail_servers, make_message(other))  # other recipients are not affected
        assert mail_servers.messages(address) == []
        assert len(mail_servers.messages(other)) == 1
    finally:
        mail_servers.clear_faults()


@mail
def test_disconnect_fault_drops_the_connection_once(mail_servers):
    address, _ = mail_servers.new_user("drop")
    mail_servers.set_faults({"disconnect": 1})
    try:
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            send(mail_servers, make_message(address))
        assert mail_servers.messages(address) == []
        send(mail_servers, make_message(address))
        assert len(mail_servers.messages(address)) == 1
    finally:
        mail_servers.clear_faults()


# ---- Dovecot going away --------------------------------------------------------------------


@mail
def test_killed_dovecot_restarts_with_the_mail_and_smtp_says_451_meanwhile(mail_servers):
    address, _ = mail_servers.new_user("crash")
    uid = mail_servers.append(address, b"Subject: survive\r\n\r\nstill here\r\n")
    client = mail_servers.imap(address)
    client.select_folder("INBOX")
    old_pid = mail_servers.dovecot_pid()
    try:
        mail_servers.kill_dovecot()
        assert mail_servers.dovecot_pid() is None
        with pytest.raises((OSError, IMAPClient.AbortError, IMAPClient.Error)):
            client.noop()  # the open session died with the server
        with pytest.raises(aiosmtplib.SMTPDataError) as exc:
            send(mail_servers, make_message(address))
        assert exc.value.code == 451  # LMTP is down: temporary failure, nothing stored
    finally:
        mail_servers.start_dovecot()
    assert mail_servers.dovecot_pid() not in (None, old_pid)
    [(got_uid, _, raw)] = mail_servers.messages(address)
    assert got_uid == uid and raw.endswith(b"still here\r\n")
    send(mail_servers, make_message(address))
    assert len(mail_servers.messages(address)) == 2


@mail
def test_stopped_dovecot_starts_again(mail_servers):
    address, _ = mail_servers.new_user("stop")
    mail_servers.append(address, b"Subject: s\r\n\r\nx\r\n")
    try:
        mail_servers.stop_dovecot()
        assert mail_servers.dovecot_pid() is None
    finally:
        mail_servers.start_dovecot()
    assert len(mail_servers.messages(address)) == 1


@mail
def test_env_file_describes_the_servers(mail_servers):
    env = read_env_file(mail_servers.dir / "env")
    assert int(env["MAILTEST_IMAP_PORT"]) == mail_servers.imap_port
    assert env["MAILTEST_HOST"] == "127.0.0.1"
    assert len(str(mail_servers.dir)) <= 60  # P19


# ---- browser -------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>t</title>
<style>body{margin:0;background:#fff} h1{font:24px sans-serif}</style></head>
<body><h1 id="status">not yet</h1><button id="go" onclick="
document.getElementById('status').textContent='clicked ' + window.innerWidth;
">Go</button></body></html>"""


@pytest.mark.browser
def test_screenshot_has_the_requested_size(chromium, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    out = screenshot(page, tmp_path / "shot.png", width=640, height=400)
    assert png_size(out) == (640, 400)
    assert out.stat().st_size > 1000


@pytest.mark.browser
def test_webdriver_clicks_a_button_that_changes_the_page(browser, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    browser.set_window_size(800, 600)
    browser.get(page)
    assert browser.text("#status") == "not yet"
    browser.click(browser.find("#go"))
    assert browser.text("#status").startswith("clicked ")
    assert "clicked" in browser.page_source()
    assert browser.execute("return document.title + arguments[0]", "!") == "t!"
    shot = browser.screenshot(tmp_path / "wd.png")
    assert png_size(shot)[0] > 0
