"""The exception hierarchy. Every message says what is wrong, where (file, key, line) and how to fix it.

    DigestError
     +-- ConfigError        config.toml or a profile file is invalid
     |    +-- ProfileError  one profile file is invalid (the other users go on)
     +-- ParseError         an email looked like a paper alert but could not be parsed
     +-- MailboxError       the IMAP server refused us: login, TLS, STARTTLS, a folder (see ingest.py)
     +-- StoreError         the database is unusable (e.g. written by a newer version)
     +-- DeliveryError      a digest could not be delivered (SMTP or outbox)
     +-- TokenError         a feedback link or reply token is altered, forged, expired or for another user
"""


class DigestError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""

    exit_code = 1


class ConfigError(DigestError):
    exit_code = 2


class ProfileError(ConfigError):
    pass


class ParseError(DigestError):
    pass


class MailboxError(DigestError):
    """The IMAP account cannot be used as configured (login, TLS, STARTTLS, folder). Not retried."""


class StoreError(DigestError):
    pass


class DeliveryError(DigestError):
    """``permanent``: the server refused the message (5xx), so it is not tried again for this period.
    ``attempts``: how many SMTP sessions were tried before giving up (0 when none could start)."""

    def __init__(self, message: str, *, permanent: bool = False, attempts: int = 0):
        super().__init__(message)
        self.permanent = permanent
        self.attempts = attempts


class TokenError(DigestError):
    pass
