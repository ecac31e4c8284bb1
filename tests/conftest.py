# ---- real-server fixtures (owner: mailinfra) ------------------------------------------------
# mail_servers: loopback Dovecot + SMTP relay, one per session     -> tests/mailserver.py
# chromium, browser: headless Chromium and a WebDriver session       -> tests/browser.py
from browser import browser, chromium  # noqa: F401
from mailserver import mail_servers  # noqa: F401

# ---- end of real-server fixtures ------------------------------------------------------------
