"""Signed link tokens: pure, fast, no server."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from digest.config import Secret
from digest.tokens import (
    TOKEN_RE,
    ExpiredToken,
    InvalidToken,
    WrongToken,
    expect,
    make_token,
    read_token,
    secret_keys,
)

KEY = Secret("k-new-0123456789abcdef")
OLD = Secret("k-old-fedcba9876543210")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_token_round_trips_user_paper_action_and_issue_time():
    token = make_token(KEY, "ada", "up", "arxiv:2401.00001")
    data = read_token(KEY, token, max_age_days=60)
    assert (data.user, data.paper_id, data.action, data.value) == ("ada", "arxiv:2401.00001", "up", 1)
    assert abs(data.issued_at - time.time()) < 5
    assert TOKEN_RE.fullmatch(token), "the pattern used to find tokens in email subjects must match real ones"


def test_an_unsubscribe_token_has_no_paper_and_a_vote_token_needs_one():
    assert read_token(KEY, make_token(KEY, "ada", "unsubscribe"), max_age_days=1).paper_id is None
    with pytest.raises(ValueError):
        make_token(KEY, "ada", "up")
    with pytest.raises(ValueError):
        make_token(KEY, "ada", "unsubscribe", "arxiv:1")
    with pytest.raises(ValueError):
        make_token(KEY, "ada", "delete-everything", "arxiv:1")


@pytest.mark.parametrize("mangle", [
    # one character of the signature: its first, whose six bits all count (the last base64 character of a
    # 20-byte signature carries 2 bits plus padding, so some changes of it decode to the same bytes)
    lambda t: t[: t.rindex(".") + 1] + ("A" if t[t.rindex(".") + 1] != "A" else "B") + t[t.rindex(".") + 2:],
    lambda t: t[:20] + ("x" if t[20] != "x" else "y") + t[21:],  # one character of the payload
    lambda t: t[: len(t) // 2],  # cut short, as some mail clients do with long links
    lambda t: "not-a-token",
    lambda t: t + "é",
    lambda t: "",
])
def test_an_altered_token_is_invalid(mangle):
    token = make_token(KEY, "ada", "up", "arxiv:2401.00001")
    with pytest.raises(InvalidToken) as info:
        read_token(KEY, mangle(token), max_age_days=60)
    assert info.value.status == 403


def test_a_payload_rewritten_for_another_user_keeps_no_valid_signature():
    token = make_token(KEY, "ada", "up", "arxiv:2401.00001")
    payload, stamp, signature = token.split(".")
    forged_payload = _b64(json.dumps({"u": "bob", "p": "arxiv:2401.00001", "a": "up"},
                                     separators=(",", ":")).encode())
    assert forged_payload != payload
    with pytest.raises(InvalidToken):
        read_token(KEY, f"{forged_payload}.{stamp}.{signature}", max_age_days=60)


def test_a_token_signed_with_another_key_is_invalid():
    forged = make_token(Secret("an attacker's guess"), "ada", "up", "arxiv:2401.00001")
    with pytest.raises(InvalidToken):
        read_token(KEY, forged, max_age_days=60)


def test_a_token_older_than_the_max_age_is_expired_but_its_signature_still_checks():
    with time_machine.travel(datetime.now(UTC) - timedelta(days=61), tick=False):
        token = make_token(KEY, "ada", "down", "arxiv:2401.00001")
    with pytest.raises(ExpiredToken) as info:
        read_token(KEY, token, max_age_days=60)
    assert info.value.status == 410
    assert "expired" in str(info.value)
    assert read_token(KEY, token, max_age_days=None).action == "down"  # unsubscribe links never expire
    assert read_token(KEY, token, max_age_days=62).user == "ada"


def test_rotating_keys_newest_first_keeps_old_links_working_and_signs_with_the_new_key():
    old_link = make_token(OLD, "ada", "up", "arxiv:1")
    rotated = Secret(f"{KEY.reveal()},{OLD.reveal()}")
    assert read_token(rotated, old_link, max_age_days=60).user == "ada"
    new_link = make_token(rotated, "ada", "up", "arxiv:1")
    assert read_token(KEY, new_link, max_age_days=60).user == "ada"
    with pytest.raises(InvalidToken):
        read_token(OLD, new_link, max_age_days=60)
    # once the old key is dropped, links signed with it stop working
    with pytest.raises(InvalidToken):
        read_token(KEY, old_link, max_age_days=60)


def test_a_key_file_may_list_keys_one_per_line():
    assert secret_keys(Secret(" new \n old\n\n")) == ["new", "old"]
    with pytest.raises(InvalidToken):
        secret_keys(Secret(" , \n"))


def test_a_valid_token_is_refused_for_another_action_user_or_paper():
    up = read_token(KEY, make_token(KEY, "ada", "up", "arxiv:1"), max_age_days=60)
    unsubscribe = read_token(KEY, make_token(KEY, "ada", "unsubscribe"), max_age_days=60)
    assert expect(up, actions=("up", "down"), user="ada", paper_id="arxiv:1") is up
    for data, kwargs in [(up, {"actions": ("unsubscribe",)}), (unsubscribe, {"actions": ("up", "down")}),
                         (up, {"actions": ("up",), "user": "bob"}),
                         (up, {"actions": ("up",), "paper_id": "arxiv:2"})]:
        with pytest.raises(WrongToken) as info:
            expect(data, **kwargs)
        assert info.value.status == 400


def test_the_secret_never_shows_in_a_repr():
    assert "k-new" not in repr(KEY) and "k-new" not in str(KEY)


def test_a_long_paper_id_gives_a_compressed_token_that_still_verifies():
    long_id = "doi:10.1000/" + "ab" * 200
    token = make_token(KEY, "ada", "down", long_id)
    assert token.startswith(".")  # itsdangerous compressed the payload
    assert TOKEN_RE.fullmatch(token)
    assert read_token(KEY, token, max_age_days=60).paper_id == long_id


def test_a_link_signed_by_a_clock_ahead_of_this_one_is_fresh_not_expired():
    """itsdangerous calls a negative age expired: a `digest serve` whose clock is behind the daemon's that signed
    the link (or a VM restored from a snapshot) would tell a reader their brand-new link has expired."""
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=False):
        ahead = make_token(KEY, "ada", "up", "arxiv:2401.00001")
    assert read_token(KEY, ahead, max_age_days=60).user == "ada"
    with time_machine.travel(datetime.now(UTC) + timedelta(days=3), tick=False):
        far = make_token(KEY, "ada", "up", "arxiv:2401.00001")
    with pytest.raises(ExpiredToken):  # days ahead is no clock skew: not taken as fresh
        read_token(KEY, far, max_age_days=60)
