"""Signed tokens for feedback and unsubscribe links (itsdangerous). Pure: key in, token out.

A token carries (user, paper id, action, issued-at) and is the only thing a link needs: the server trusts
nothing else in the request. It is rejected if altered or forged (``InvalidToken``), too old
(``ExpiredToken``), or used for another action, user or paper than the one the caller expects
(``WrongToken``): a 👍 token cannot unsubscribe, a token for one paper cannot vote on another, a token for
one user can never act for another (the user is inside the signature).

Key rotation: the secret may hold several keys separated by commas or newlines, **newest first**. The
newest signs; every key verifies. To rotate, put a new key in front of the old one; once the old links have
expired (``web.token_max_age_days``), drop the old key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from .config import Secret
from .errors import TokenError

SALT = "digest.feedback.v1"
ACTIONS = ("up", "down", "unsubscribe", "digest")
# "digest": the link to one digest's web page (its id rides in the paper-id slot); the page votes on that
# digest's papers only
# the "paper" of an unsubscribe link a web page hands out (derived from the link the page was opened with): such a
# link expires with that one, while the email's own unsubscribe link never does
FROM_PAGE = "page"
LINK_PATHS = {"up": "vote", "down": "vote", "unsubscribe": "unsubscribe", "digest": "digest"}  # /PATH/TOKEN
VOTE_VALUES = {"up": 1, "down": -1}
CLOCK_SKEW = timedelta(days=1)  # a link signed this far "ahead" of this server's clock is taken as just made
# what a token looks like: base64url payload (a leading "." if itsdangerous compressed it), timestamp and
# signature joined by dots; used to find a token in text and to refuse anything else before verifying
TOKEN_RE = re.compile(r"\.?[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{16,}")


class InvalidToken(TokenError):
    """Altered, truncated, or signed with a key this digest does not hold (HTTP 403)."""

    status = 403


class ExpiredToken(TokenError):
    """Validly signed but older than ``web.token_max_age_days`` (HTTP 410)."""

    status = 410


class WrongToken(TokenError):
    """Validly signed, but for another action, user or paper than this request is about (HTTP 400)."""

    status = 400


@dataclass(frozen=True)
class TokenData:
    user: str
    paper_id: str | None
    action: str
    issued_at: float

    @property
    def value(self) -> int:
        """+1 / -1 for a vote token (0 for unsubscribe)."""
        return VOTE_VALUES.get(self.action, 0)

    @property
    def issued(self) -> str:
        """When the token was made, as the store writes times (UTC ISO 8601, seconds), to compare with them."""
        return datetime.fromtimestamp(self.issued_at, UTC).isoformat(timespec="seconds")


def secret_keys(key: Secret) -> list[str]:
    """The keys in a secret, newest first (separated by commas or newlines)."""
    keys = [k.strip() for k in re.split(r"[,\n]", key.reveal()) if k.strip()]
    if not keys:
        raise InvalidToken("no link-signing key is configured")
    return keys


def _serializer(key: Secret, issued_at: float | None = None) -> URLSafeTimedSerializer:
    # itsdangerous wants its keys oldest first and signs with the last one
    if issued_at is None:
        return URLSafeTimedSerializer(list(reversed(secret_keys(key))), salt=SALT)

    class IssuedAt(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(issued_at)

    return URLSafeTimedSerializer(list(reversed(secret_keys(key))), salt=SALT, signer=IssuedAt)


def make_token(key: Secret, user: str, action: str, paper_id: str | None = None, *,
               issued_at: float | None = None) -> str:
    """Sign (user, paper, action) with the newest key; the issued-at time is part of the signature.

    ``issued_at`` (default: now) lets a page hand out links derived from the token it was opened with that
    expire when that token does: following links never makes a link live longer."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS} (got {action!r})")
    if (action == "unsubscribe") != (paper_id in (None, FROM_PAGE)) or (action != "unsubscribe" and paper_id is None):
        raise ValueError("a vote or digest token needs a paper or digest id; an unsubscribe token has none")
    return _serializer(key, issued_at).dumps({"u": user, "p": paper_id, "a": action})


def link_path(key: Secret, user: str, action: str, paper_id: str | None = None, *,
              issued_at: float | None = None) -> str:
    """``vote/TOKEN``, ``unsubscribe/TOKEN`` or ``digest/TOKEN``: a signed link's path below the server's root."""
    return f"{LINK_PATHS[action]}/{make_token(key, user, action, paper_id, issued_at=issued_at)}"


def read_token(key: Secret, token: str, *, max_age_days: float | None) -> TokenData:
    """Verify a token (any of the keys) and its age. ``max_age_days=None`` checks the signature only.

    Raises ``InvalidToken`` / ``ExpiredToken`` with a message fit to show the person who clicked.
    """
    max_age = None if max_age_days is None else max_age_days * 86400
    invalid = InvalidToken("This link is not valid: it was altered, cut short in copying, "
                           "or was not made by this digest.")
    if not TOKEN_RE.fullmatch(token):
        # itsdangerous' base64 decoding skips characters outside the alphabet, so "token + junk" would verify
        raise invalid
    try:
        data, issued = _serializer(key).loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired as exc:
        # itsdangerous also calls a link signed "in the future" expired: this server's clock is behind the one
        # that signed it (a restored VM, `digest serve` on another machine); within a day, a fresh link is fresh
        signed = exc.date_signed
        if signed is None or not datetime.now(UTC) < signed <= datetime.now(UTC) + CLOCK_SKEW:
            raise ExpiredToken("This link has expired. Use the links in a more recent digest.") from None
        data, issued = _serializer(key).loads(token, max_age=None, return_timestamp=True)
    except (BadSignature, BadData, UnicodeError, ValueError):
        raise invalid from None
    if (not isinstance(data, dict) or data.get("a") not in ACTIONS or not isinstance(data.get("u"), str)
            or not (data.get("p") is None or isinstance(data.get("p"), str))):
        raise InvalidToken("This link is not valid.")
    return TokenData(data["u"], data.get("p"), data["a"], issued.timestamp())


def expect(data: TokenData, *, actions: tuple[str, ...], user: str | None = None,
           paper_id: str | None = None) -> TokenData:
    """Refuse a valid token used for something it was not made for (``WrongToken``)."""
    if data.action not in actions:
        what = {"unsubscribe": "an unsubscribe link", "digest": "the link to a digest's page"}.get(data.action,
                                                                                             "a vote link")
        raise WrongToken(f"This is {what}; it cannot be used here.")
    if user is not None and data.user != user:
        raise WrongToken("This link belongs to another reader.")
    if paper_id is not None and data.paper_id != paper_id:
        raise WrongToken("This link is for another paper.")
    return data
