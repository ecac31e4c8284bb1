"""The SMTP sender against real servers: the loopback relay that delivers into Dovecot (read back over IMAP),
and, where the relay cannot misbehave the way a test needs, a real aiosmtpd server on loopback."""

import asyncio
import contextlib
import email
import logging
import socket
import threading
from datetime import date
from email import policy
from email.utils import make_msgid

import pytest
from aiosmtpd.controller import Controller
from mailserver import pick_free_ports

from digest.config import SmtpSettings
from digest.errors import DeliveryError
from digest.models import Paper, ScoredPaper
from digest.render import item_context, render_digest
from digest.send import build_message, message_bytes, send_message

pytestmark = pytest.mark.mail


def _settings(servers, **changes) -> SmtpSettings:
    values = dict(host="127.0.0.1", port=servers.smtp_port, security="starttls", ca_file=servers.ca_cert,
                  from_addr="digest@example.test", from_name="Paper digest", timeout=10.0, retries=3,
                  retry_backoff=0.01)
    return SmtpSettings(**{**values, **changes})


def _message(to: str, title: str = "Speculative decoding, revisited", name: str = "Ada"):
    item = item_context(ScoredPaper(Paper(title, authors=("Ada L.",), abstract="An abstract.",
                                          arxiv_id="2211.17192"), 0.9, "Matches your interest “LLM inference”"),
                        ["arxiv"], "https://digest.example.org/vote/up", "https://digest.example.org/vote/down")
    rendered = render_digest({"date": date(2026, 11, 28), "items": [item], "n_candidates": 3,
                              "profile_file": "profiles/ada.toml",
                              "unsubscribe_url": "https://digest.example.org/unsubscribe/t"})
    return build_message(rendered, sender="digest@example.test", sender_name="Paper digest", to=to, to_name=name,
                         message_id=make_msgid(domain="example.test"),
                         unsubscribe_url="https://digest.example.org/unsubscribe/t")


def _send(msg, settings, **kwargs):
    return asyncio.run(send_message(msg, settings, **kwargs))


def _delivered(servers, address, message_id) -> list[email.message.EmailMessage]:
    found = [email.message_from_bytes(raw, policy=policy.default) for _, _, raw in servers.messages(address)]
    return [m for m in found if m["Message-ID"] == message_id]


def _logged(servers, message_id) -> int:
    return sum(line.endswith("\t" + message_id) for line in servers.smtp_log())


def test_a_message_sent_over_starttls_arrives_once_with_both_parts(mail_servers):
    address, _ = mail_servers.new_user("starttls")
    msg = _message(address)
    calls = []
    result = _send(msg, _settings(mail_servers), before_data=lambda: calls.append("data"))
    assert result.reply.startswith("250") and result.attempts == 1 and calls == ["data"]
    [got] = _delivered(mail_servers, address, msg["Message-ID"])
    assert [p.get_content_type() for p in got.iter_parts()] == ["text/plain", "text/html"]
    assert got["List-Unsubscribe"] == "<https://digest.example.org/unsubscribe/t>"
    assert "Speculative decoding, revisited" in got.get_body(("html",)).get_content()
    assert _logged(mail_servers, msg["Message-ID"]) == 1


# an RFC 2047 encoded word written as text, with an encoded CR LF in it: Python's email package decodes it
# when the string is set as a header, and (before 3.12.5) wrote the decoded line break to the wire
INJECTED = "=?utf-8?q?Great=0D=0ABcc:_eve@evil.example=0D=0A=0D=0A<b>spoof</b>?="


def test_a_title_or_name_written_as_an_encoded_word_cannot_add_headers_or_start_the_body(mail_servers):
    address, _ = mail_servers.new_user("inject")
    msg = _message(address, title=f"{INJECTED} \x1b[31mred\x00 paper",
                   name=INJECTED + " \u202eevE")  # the profile's name; U+202E would show the rest reversed
    _send(msg, _settings(mail_servers))
    [got] = _delivered(mail_servers, address, msg["Message-ID"])
    assert "Bcc" not in got and got["From"].addresses[0].addr_spec == "digest@example.test"
    assert got["To"].addresses[0].addr_spec == address and got["Date"] is not None
    # the text as it was written, with an invisible word joiner after "=": no header break, no escape code
    assert got["Subject"].startswith("=\u2060?utf-8?q?Great=0D=0ABcc:_eve@evil.example=0D=0A=0D=0A<b>spoof</b>?=")
    assert got["To"].addresses[0].display_name.startswith("=\u2060?utf-8?q?")
    assert got["To"].addresses[0].display_name.endswith(" evE")  # the override is gone, the name stays
    text = got.get_body(("plain",)).get_content()
    assert "spoof" in text and "\x1b" not in text and "\x00" not in text and "red paper" in text
    assert "<b>spoof</b>" not in got.get_body(("html",)).get_content()  # escaped there, as every title


def test_implicit_tls_on_the_smtps_port_works_too(mail_servers):
    address, _ = mail_servers.new_user("smtps")
    msg = _message(address)
    _send(msg, _settings(mail_servers, port=mail_servers.smtps_port, security="tls"))
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1


def test_auth_uses_the_password_from_the_environment(mail_servers, monkeypatch):
    sender, password = mail_servers.new_user("sender")
    address, _ = mail_servers.new_user("authed")
    monkeypatch.setenv("DIGEST_TEST_SMTP_PASSWORD", password)
    msg = _message(address)
    _send(msg, _settings(mail_servers, username=sender, password_env="DIGEST_TEST_SMTP_PASSWORD"))
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1


def test_a_wrong_password_fails_at_once_names_the_fix_and_sends_nothing(mail_servers, monkeypatch):
    sender, _ = mail_servers.new_user("sender")
    address, _ = mail_servers.new_user("wrongpw")
    monkeypatch.setenv("DIGEST_TEST_SMTP_PASSWORD", "not-the-password")
    msg = _message(address)
    with pytest.raises(DeliveryError) as info:
        _send(msg, _settings(mail_servers, username=sender, password_env="DIGEST_TEST_SMTP_PASSWORD"))
    assert "535" in str(info.value) and "DIGEST_TEST_SMTP_PASSWORD" in str(info.value)
    assert "not-the-password" not in str(info.value)
    assert info.value.attempts == 1 and not info.value.permanent  # retrying cannot help; the next run may
    assert mail_servers.messages(address) == []


def test_two_temporary_refusals_then_acceptance_deliver_exactly_one_copy(mail_servers, caplog):
    address, _ = mail_servers.new_user("greylisted")
    mail_servers.set_faults({address: ["451 4.3.0 try later", "451 4.7.1 greylisted"]})
    msg = _message(address)
    delays, calls = [], []

    async def sleep(seconds):
        delays.append(seconds)
        calls.append("wait")

    with caplog.at_level(logging.WARNING, logger="digest.send"):
        result = _send(msg, _settings(mail_servers), sleep=sleep, before_data=lambda: calls.append("data"),
                       not_sent=lambda: calls.append("not sent"))
    assert result.attempts == 3 and delays == [0.01, 0.02]  # bounded, exponential backoff
    # a refusal is certain: the caller hears it before the wait (so a crash while waiting leaves no doubt)
    assert calls == ["data", "not sent", "wait", "data", "not sent", "wait", "data"]
    assert "451 4.3.0 try later" in caplog.text and "451 4.7.1 greylisted" in caplog.text
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1
    assert len(mail_servers.messages(address)) == 1 and _logged(mail_servers, msg["Message-ID"]) == 1
    assert mail_servers.faults().get(address) == []  # the server saw exactly the two refused attempts


def test_a_permanent_refusal_is_not_retried_and_carries_the_servers_reply(mail_servers, caplog):
    address, _ = mail_servers.new_user("refused")
    # 451 first: the refusal must stop the retries even after a transient failure
    mail_servers.set_faults({address: ["451 4.3.0 try later", "550 5.7.1 message refused by policy"]})
    msg = _message(address)
    with caplog.at_level(logging.WARNING, logger="digest.send"), pytest.raises(DeliveryError) as info:
        _send(msg, _settings(mail_servers, retries=5))
    mail_servers.clear_faults()
    assert info.value.permanent and info.value.attempts == 2
    assert "550 5.7.1 message refused by policy" in str(info.value) and "DATA" in str(info.value)
    assert caplog.text.count("retrying") == 1
    assert mail_servers.messages(address) == []


def test_an_unknown_recipient_is_refused_before_data(mail_servers):
    calls = []
    with pytest.raises(DeliveryError) as info:
        _send(_message("nobody@example.test"), _settings(mail_servers), before_data=lambda: calls.append(1))
    assert info.value.permanent and "RCPT TO refused: 550 5.1.1" in str(info.value)
    assert calls == []  # nothing was ever about to be transmitted: the caller never records 'sending'


def test_a_connection_dropped_after_data_is_retried_once_allowed_and_one_copy_arrives(mail_servers):
    address, _ = mail_servers.new_user("dropped")
    mail_servers.set_faults({"disconnect": 1})
    msg = _message(address)
    calls = []

    def handed_over(reason):
        calls.append(f"handed over: {reason}")
        return True

    result = _send(msg, _settings(mail_servers), before_data=lambda: calls.append(1),
                   not_sent=lambda: calls.append("not sent"), handed_over=handed_over)
    # the connection broke during DATA: the server may have the message, so it is never called 'not sent'; the
    # caller was asked before the second handover
    assert result.attempts == 2 and calls[0] == 1 and calls[2] == 1 and len(calls) == 3
    assert calls[1].startswith("handed over: DATA: SMTPServerDisconnected")
    assert result.unconfirmed.startswith("DATA: SMTPServerDisconnected")
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1


def test_a_message_handed_over_without_a_reply_is_not_sent_again_unless_the_caller_allows_it(mail_servers):
    # the server took the message and dropped the connection before its reply: every resend is another copy
    address, _ = mail_servers.new_user("taken")
    mail_servers.set_faults({"deliver_then_disconnect": 3})
    msg = _message(address)
    for allow in (None, lambda reason: False):
        with pytest.raises(DeliveryError) as info:
            _send(msg, _settings(mail_servers), **({"handed_over": allow} if allow else {}))
        assert info.value.unconfirmed and info.value.attempts == 1 and not info.value.permanent
        assert str(info.value).startswith("handed over, then DATA: SMTPServerDisconnected")
        assert str(info.value).endswith("before the server confirmed it")
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 2, "one copy per run, no retries"


def test_a_refusal_after_a_counted_unconfirmed_handover_is_not_sent_for_its_own_attempt(mail_servers):
    address, _ = mail_servers.new_user("doubt")
    mail_servers.set_faults({address: ["disconnect", "451 4.3.0 later"]})
    msg = _message(address)
    calls = []
    result = _send(msg, _settings(mail_servers), before_data=lambda: calls.append("data"),
                   not_sent=lambda: calls.append("not sent"),
                   handed_over=lambda reason: calls.append("handed over") or True)
    # the first attempt may have delivered: counted by the caller (handed_over), never 'not sent'; the 451 is
    # certain for its own attempt, so a crash while waiting after it must not count another handover
    assert result.attempts == 3 and calls == ["data", "handed over", "data", "not sent", "data"]
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1
    assert len(_delivered(mail_servers, address, msg["Message-ID"])) == 1


def test_a_failing_before_data_hook_stops_the_attempt_before_anything_is_sent(mail_servers):
    address, _ = mail_servers.new_user("hook")

    def lost_claim():
        raise RuntimeError("claim lost")

    with pytest.raises(RuntimeError, match="claim lost"):
        _send(_message(address), _settings(mail_servers), before_data=lost_claim)
    assert mail_servers.messages(address) == []


def test_implicit_tls_against_a_plain_port_fails_clearly_without_retries(mail_servers):
    with pytest.raises(DeliveryError) as info:
        _send(_message("x@example.test"), _settings(mail_servers, security="tls"))
    assert info.value.attempts == 1 and "did not answer with TLS" in str(info.value)
    assert 'security = "starttls"' in str(info.value)


def test_a_server_that_takes_the_connection_and_stalls_is_retried_not_taken_for_a_tls_port(mail_servers):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never says a word
    settings = _settings(mail_servers, timeout=1.0, retries=1, port=listener.getsockname()[1])
    with pytest.raises(DeliveryError) as info:
        _send(_message("x@example.test"), settings)
    listener.close()
    assert info.value.attempts > 1 and not info.value.permanent, str(info.value)  # waited for, like a network
    assert "sends no greeting" in str(info.value) and "does not answer TLS either" in str(info.value)
    assert 'set smtp.security = "tls"' not in str(info.value)


def test_starttls_against_an_implicit_tls_port_fails_clearly_without_retries(mail_servers):
    address, _ = mail_servers.new_user("silent")
    with pytest.raises(DeliveryError) as info:
        _send(_message(address), _settings(mail_servers, port=mail_servers.smtps_port, timeout=1.0))
    assert info.value.attempts == 1, str(info.value)  # a setting to fix: no retries
    assert "takes the connection but sends no greeting within smtp.timeout = 1 s" in str(info.value)
    assert 'set smtp.security = "tls" for it' in str(info.value) and mail_servers.messages(address) == []


def test_an_untrusted_certificate_is_refused_and_the_error_names_ca_file(mail_servers):
    address, _ = mail_servers.new_user("untrusted")
    with pytest.raises(DeliveryError) as info:
        _send(_message(address), _settings(mail_servers, ca_file=""))
    assert "smtp.ca_file" in str(info.value) and info.value.attempts == 1
    assert mail_servers.messages(address) == []


def test_a_server_that_is_down_is_retried_a_bounded_number_of_times():
    [port] = pick_free_ports(1)  # nothing listens there
    settings = SmtpSettings(host="127.0.0.1", port=port, security="plain", retries=2, retry_backoff=0.01)
    with pytest.raises(DeliveryError) as info:
        _send(_message("x@example.test"), settings)
    assert info.value.attempts == 3 and not info.value.permanent
    assert "SMTP failed 3 times" in str(info.value)
    assert f"connect: cannot reach 127.0.0.1:{port} (smtp.security = \"plain\") (connection refused: nothing " \
           "listens there); check smtp.host and smtp.port" in str(info.value)


class _Recorder:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def server_without_starttls():
    """A real SMTP server on loopback that offers no STARTTLS (the relay always offers it)."""
    recorder = _Recorder()
    [port] = pick_free_ports(1)
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield recorder, port
    controller.stop()


def test_starttls_not_offered_fails_clearly_and_never_sends_in_the_clear(server_without_starttls):
    recorder, port = server_without_starttls
    settings = SmtpSettings(host="127.0.0.1", port=port, security="starttls", retries=3, retry_backoff=0.01)
    with pytest.raises(DeliveryError) as info:
        _send(_message("ada@example.test"), settings)
    assert "does not offer STARTTLS" in str(info.value) and info.value.attempts == 1
    assert recorder.messages == []


def test_plain_smtp_to_localhost_works_when_configured(server_without_starttls):
    recorder, port = server_without_starttls
    _send(_message("ada@example.test"), SmtpSettings(host="127.0.0.1", port=port, security="plain"))
    assert len(recorder.messages) == 1


def test_a_missing_password_is_reported_before_connecting(mail_servers, monkeypatch):
    monkeypatch.delenv("DIGEST_TEST_SMTP_PASSWORD", raising=False)
    settings = _settings(mail_servers, username="digest@example.test", password_env="DIGEST_TEST_SMTP_PASSWORD")
    with pytest.raises(DeliveryError) as info:
        _send(_message("x@example.test"), settings)
    assert "DIGEST_TEST_SMTP_PASSWORD" in str(info.value) and info.value.attempts == 0


def test_plain_smtp_is_refused_for_any_host_but_localhost():
    settings = SmtpSettings(host="smtp.example.org", port=25, security="plain")
    with pytest.raises(DeliveryError, match='"plain" is only allowed for localhost'):
        _send(_message("x@example.test"), settings)


def test_an_unusable_ca_file_is_a_configuration_error_that_names_the_key(mail_servers, tmp_path):
    address, _ = mail_servers.new_user("badca")
    broken = tmp_path / "ca.pem"
    broken.write_text("not a certificate\n")
    for ca_file in (str(tmp_path / "missing.pem"), str(broken)):
        with pytest.raises(DeliveryError, match=r"smtp\.ca_file = .* cannot be used") as info:
            _send(_message(address), _settings(mail_servers, ca_file=ca_file))
        assert not info.value.permanent  # fixed in the config, the next run sends it
    assert _delivered(mail_servers, address, None) == []


class _Picky(_Recorder):
    """A server with its own rules: refuses some senders at MAIL FROM, or every message at DATA."""

    def __init__(self, mail_reply: str | None = None, data_reply: str | None = None):
        super().__init__()
        self.mail_reply, self.data_reply = mail_reply, data_reply
        self.mail_from = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_from.append(address)
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        return await super().handle_DATA(server, session, envelope)


def _serve(handler, **options):
    [port] = pick_free_ports(1)
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, port


def test_a_digest_over_the_servers_size_limit_is_refused_before_data_with_the_sizes_and_the_fix():
    recorder = _Picky()
    controller, port = _serve(recorder, data_size_limit=5000)  # advertised as "SIZE 5000"
    try:
        msg = _message("ada@example.test")
        settings = SmtpSettings(host="127.0.0.1", port=port, security="plain", retries=3, retry_backoff=0.01)
        with pytest.raises(DeliveryError) as info:
            _send(msg, settings)
    finally:
        controller.stop()
    assert info.value.permanent and info.value.attempts == 1
    assert str(info.value).startswith(f"the digest is {len(message_bytes(msg)) / 1000:.1f} KB and 127.0.0.1 takes at "
                                      "most 5.0 KB (its SIZE); lower max_items in the profile")
    assert "`digest send --retry-failed` composes the day's digest again" in str(info.value)
    assert recorder.messages == [], "not transmitted for the same answer"


def test_a_552_at_data_a_refused_sender_and_auth_only_over_tls_name_their_fix(monkeypatch):
    recorder = _Picky(data_reply="552 5.3.4 Message too big for system")
    controller, port = _serve(recorder)
    try:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="plain", retries=3, retry_backoff=0.01)
        with pytest.raises(DeliveryError) as info:
            _send(_message("ada@example.test"), settings)
        assert info.value.permanent
        assert str(info.value) == ("DATA refused: 552 5.3.4 Message too big for system; lower max_items in the "
                                   "profile (or default_max_items in config.toml), then `digest send "
                                   "--retry-failed` composes the day's digest again")

        # a 552 for a full mailbox (5.2.2) is the reader's mailbox, not the digest's size
        recorder.data_reply = "552 5.2.2 Mailbox full"
        with pytest.raises(DeliveryError) as info:
            _send(_message("ada@example.test"), settings)
        assert info.value.permanent and not info.value.too_large
        assert str(info.value) == "DATA refused: 552 5.2.2 Mailbox full"

        # the sender is our setting, not the reader's address: fixable, so not a refusal for the day
        recorder.mail_reply, recorder.data_reply = "553 5.7.1 Sender address rejected: not owned by user", None
        with pytest.raises(DeliveryError) as info:
            _send(_message("ada@example.test"), settings)
        assert not info.value.permanent and info.value.attempts == 1
        assert str(info.value) == ("MAIL FROM refused: 553 5.7.1 Sender address rejected: not owned by user; check "
                                   "smtp.from_addr (many servers take only the account's own address as the sender)")
    finally:
        controller.stop()

    # AUTH offered only after STARTTLS (aiosmtpd's default), and the config logs in without it
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "pw")
    recorder = _Picky()
    controller, port = _serve(recorder, authenticator=lambda *args: None)
    try:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="plain", username="ada", retries=0)
        with pytest.raises(DeliveryError) as info:
            _send(_message("ada@example.test"), settings)
    finally:
        controller.stop()
    assert recorder.mail_from == [], "nothing after the failed AUTH"
    text = str(info.value)
    assert "AUTH failed: " in text and ".;" not in text
    assert text.endswith('the server offers AUTH only over TLS: set smtp.security = "starttls"; nothing was sent')


class _DataDropper:
    """A real SMTP server on loopback (a bare socket one: aiosmtpd answers DATA itself) that takes MAIL and RCPT and
    then, at the DATA command, before its 354 go-ahead, drops the connection or says nothing, as an overloaded
    server or a broken middlebox does. Nothing of the message can reach it."""

    def __init__(self, mode: str):
        self.mode, self.commands, self.bytes_after_data = mode, [], 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        with conn, conn.makefile("rwb", buffering=0) as f:
            f.write(b"220 dropper.test ESMTP\r\n")
            for line in f:
                command = line.strip().upper()
                self.commands.append(command)
                if command.startswith(b"EHLO"):
                    f.write(b"250-dropper.test\r\n250 8BITMIME\r\n")
                elif command == b"DATA":
                    if self.mode == "stall":
                        conn.settimeout(30)
                        with contextlib.suppress(OSError):
                            while chunk := conn.recv(65536):
                                self.bytes_after_data += len(chunk)
                    return  # closing both the file and the socket drops the connection
                elif command == b"QUIT":
                    f.write(b"221 bye\r\n")
                    return
                else:
                    f.write(b"250 ok\r\n")

    def close(self):
        self.listener.close()


@pytest.mark.parametrize("mode", ["drop", "stall"])
def test_a_break_before_the_servers_354_is_a_plain_retry_not_a_handover_and_waits_smtp_timeout(mode):
    """A connection dropped at the DATA command, before the 354 go-ahead, counted as a handover that may have
    delivered: the second such drop recorded the digest as sent ('the server most likely has it') although nothing
    had been transmitted, so it never arrived. And a server silent after DATA held each attempt 10 minutes (the
    wait for the reply to the data), not smtp.timeout."""
    server = _DataDropper(mode)
    settings = SmtpSettings(host="127.0.0.1", port=server.port, security="plain", timeout=1.0, retries=2,
                            retry_backoff=0.01)
    calls = []

    async def bounded():
        return await asyncio.wait_for(send_message(
            _message("ada@example.test"), settings, before_data=lambda: calls.append("sending"),
            not_sent=lambda: calls.append("not sent"),
            handed_over=lambda reason: calls.append(f"handed over: {reason}") or True), 60)

    try:
        with pytest.raises(DeliveryError) as info:
            asyncio.run(bounded())
    finally:
        server.close()
    assert server.commands.count(b"DATA") == 3 and server.bytes_after_data == 0
    assert not info.value.unconfirmed and not info.value.permanent and info.value.attempts == 3
    assert str(info.value).startswith("SMTP failed 3 times, last: DATA: ") and \
        str(info.value).endswith("before the server's 354 go-ahead (nothing was transmitted)"), str(info.value)
    assert not [c for c in calls if c.startswith("handed over")], calls  # never counted as a handover
    assert calls == ["sending", "not sent", "sending", "not sent", "sending"], calls


def test_the_data_watch_fits_the_installed_aiosmtplib_and_without_it_every_break_counts_as_a_handover(monkeypatch):
    """_data watches aiosmtplib's DATA from inside (5.x). On an aiosmtplib that sends DATA otherwise, the watch is
    off and a break at DATA is again a handover that may have delivered (the safe side: never a second copy)."""
    from digest import send

    assert send._watchable_data()  # if this fails, aiosmtplib changed: _data falls back, see below
    monkeypatch.setattr(send, "_watchable_data", lambda: False)
    server = _DataDropper("drop")
    settings = SmtpSettings(host="127.0.0.1", port=server.port, security="plain", timeout=1.0, retries=0,
                            retry_backoff=0.01)
    handed = []
    try:
        with pytest.raises(DeliveryError):
            asyncio.run(asyncio.wait_for(send_message(
                _message("ada@example.test"), settings,
                handed_over=lambda reason: handed.append(reason) or False), 60))
    finally:
        server.close()
    assert handed, "a break at DATA without the watch must be treated as a possible delivery"


def test_an_outbox_file_of_another_digest_is_never_replaced(tmp_path):
    """The same digest written again (a retry: the same Message-ID) replaces its file; another digest under the
    same name (another store's: a mistyped --data-dir, two setups sharing an outbox) is written beside it, so the
    day's real digest is never overwritten."""
    from email.message import EmailMessage

    from digest.send import write_outbox

    def message(mid: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Message-ID"], msg["Subject"], msg["To"] = mid, "Your digest", "ada@example.org"
        msg.set_content(f"digest {mid}")
        return msg

    first = write_outbox(message("<a@x>"), "<p>a</p>", tmp_path, "ada-2026-12-08")
    assert first == tmp_path / "ada-2026-12-08.eml"
    assert write_outbox(message("<a@x>"), "<p>a, again</p>", tmp_path, "ada-2026-12-08") == first
    assert (tmp_path / "ada-2026-12-08.html").read_text() == "<p>a, again</p>"
    other = write_outbox(message("<b@x>"), "<p>b</p>", tmp_path, "ada-2026-12-08")
    assert other == tmp_path / "ada-2026-12-08-2.eml" and (tmp_path / "ada-2026-12-08-2.html").read_text() == "<p>b</p>"
    assert b"<a@x>" in first.read_bytes() and (tmp_path / "ada-2026-12-08.html").read_text() == "<p>a, again</p>"
    assert write_outbox(message("<c@x>"), "<p>c</p>", tmp_path, "ada-2026-12-08").name == "ada-2026-12-08-3.eml"
    assert write_outbox(message("<b@x>"), "<p>b</p>", tmp_path, "ada-2026-12-08") == other  # its retry: in place
