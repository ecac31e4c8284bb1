"""Signed tokens for feedback and unsubscribe links (itsdangerous). Pure: key in, token out.

A token carries (user, paper id, action, issued-at). It is rejected if altered, forged (wrong key), expired,
or used for another user or paper than the one the caller expects.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .config import Secret
from .errors import TokenError

SALT = "digest.feedback.v1"
ACTIONS = ("up", "down", "unsubscribe")


@dataclass(frozen=True)
class TokenData:
    user: str
    paper_id: str | None
    action: str
    issued_at: float


def _serializer(key: Secret) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key.reveal(), salt=SALT)


def make_token(key: Secret, user: str, action: str, paper_id: str | None = None) -> str:
    if action not in ACTIONS:
        raise ValueError(action)
    return _serializer(key).dumps({"u": user, "p": paper_id, "a": action})


def read_token(key: Secret, token: str, *, max_age_days: float) -> TokenData:
    """Verify a token. Raises TokenError with a message fit to show the person who clicked."""
    try:
        data, issued = _serializer(key).loads(token, max_age=max_age_days * 86400, return_timestamp=True)
    except SignatureExpired:
        raise TokenError("This link has expired. Use the links in a more recent digest.") from None
    except BadSignature:
        raise TokenError("This link is not valid: it was altered or was not made by this digest.") from None
    if not isinstance(data, dict) or data.get("a") not in ACTIONS or not isinstance(data.get("u"), str):
        raise TokenError("This link is not valid.")
    return TokenData(data["u"], data.get("p"), data["a"], issued.timestamp())
