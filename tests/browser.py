"""Headless Debian Chromium for tests: one-shot screenshots and a tiny W3C WebDriver client.

No selenium: ``Browser`` speaks the W3C WebDriver JSON protocol to ``chromedriver`` with urllib::

    def test_vote_button(browser, feedback_url):
        browser.get(feedback_url)
        browser.click("button.up")
        assert browser.text("#status") == "Thanks!"

    screenshot("file.html", "out.png", 600, 800)     # cold Chromium, ~1-2 s

The fixtures install ``chromium chromium-driver`` when missing (tools/mail/install.sh --browser)
and fail, never skip, if that is impossible.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mailserver import MailServerError, ensure_installed

# P20/P21: root needs --no-sandbox; /dev/shm detection in the wrapper is broken here; no network
# chatter or updates; each run gets its own fresh --user-data-dir (added by the callers).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
]
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element identifier


class BrowserError(RuntimeError):
    """Chromium or chromedriver failed; the message carries their error text."""


def find_chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise BrowserError("chromium is not installed: run `bash tools/mail/install.sh --browser`")
    return path


def find_chromedriver() -> str:
    path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(path).exists():
        raise BrowserError("chromedriver is not installed: run `bash tools/mail/install.sh --browser`")
    return path


def _as_url(url_or_file: str | Path) -> str:
    text = str(url_or_file)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    path = Path(text).resolve()
    if not path.exists():
        raise FileNotFoundError(f"no such page: {path}")
    return path.as_uri()


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; raises ValueError if the file is not a PNG."""
    head = Path(path).read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def screenshot(
    url_or_file: str | Path, out_png: str | Path, width: int = 800, height: int = 600, timeout: float = 60
) -> Path:
    """Render a URL or local HTML file with a cold headless Chromium and write a PNG of width x height."""
    out = Path(out_png).resolve()
    out.unlink(missing_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-")
    cmd = [
        find_chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        _as_url(url_or_file),
    ]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BrowserError(f"chromium took more than {timeout} s for {url_or_file}") from exc
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0 or not out.exists():
        # the wrapper's "[: unexpected operator" and D-Bus noise are harmless (P20); show the tail
        raise BrowserError(f"chromium screenshot failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """A headless Chromium driven over W3C WebDriver by a private chromedriver.

    Use as a context manager; ``close()`` ends the session, chromedriver and the profile dir.
    Elements are WebDriver element ids (str); methods taking an element also accept a CSS selector.
    """

    def __init__(self, width: int = 1024, height: int = 768, timeout: float = 30):
        self.width, self.height, self.timeout = width, height, timeout
        self._driver: subprocess.Popen | None = None
        self._session: str | None = None
        self._workdir: str | None = None
        self._base = ""

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix="webdriver-")
        port = _free_port()
        self._base = f"http://127.0.0.1:{port}"
        log = open(Path(self._workdir) / "chromedriver.log", "wb")  # noqa: SIM115 (closed with the process)
        # chromedriver listens on 127.0.0.1/::1 only by default
        self._driver = subprocess.Popen(
            [find_chromedriver(), f"--port={port}"], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        log.close()
        try:
            self._wait_ready()
            caps = {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": find_chromium(),
                    "args": [
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={self._workdir}/profile",
                        f"--window-size={self.width},{self.height}",
                    ],
                },
            }
            value = self._request("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            self._session = value["sessionId"]
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self._driver is not None and self._driver.poll() is not None:
                raise BrowserError(
                    f"chromedriver exited with {self._driver.returncode}: {self._driver_log()}"
                )
            try:
                if self._request("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, BrowserError):
                pass
            if time.monotonic() > deadline:
                raise BrowserError(f"chromedriver not ready after {self.timeout} s: {self._driver_log()}")
            time.sleep(0.05)

    def _driver_log(self) -> str:
        try:
            return (Path(self._workdir or "") / "chromedriver.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self._session:
            try:
                self._request("DELETE", f"/session/{self._session}", timeout=10)
            except (OSError, BrowserError):
                pass
            self._session = None
        if self._driver is not None:
            self._driver.terminate()
            try:
                self._driver.wait(10)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()
            self._driver = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- protocol ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self._base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read()).get("value", {})
            except ValueError:
                err = {}
            raise BrowserError(
                f"{method} {path}: {err.get('error', exc.code)}: {str(err.get('message', '')).splitlines()[:1]}"
            ) from None
        return payload.get("value")

    def _cmd(self, method: str, path: str, body: Any = None) -> Any:
        if not self._session:
            raise BrowserError("no WebDriver session (use Browser() as a context manager)")
        return self._request(method, f"/session/{self._session}{path}", body)

    def _element(self, element_or_css: str) -> str:
        # element ids are UUID-like; anything else is treated as a CSS selector
        if re.fullmatch(r"[0-9a-fA-F.\-_]{20,}", element_or_css):
            return element_or_css
        return self.find(element_or_css)

    # -- commands ------------------------------------------------------------------------------

    def get(self, url: str | Path) -> None:
        """Navigate and wait for the page load (WebDriver's default 'normal' strategy)."""
        self._cmd("POST", "/url", {"url": _as_url(url)})

    @property
    def current_url(self) -> str:
        return self._cmd("GET", "/url")

    def find(self, css: str) -> str:
        """The first element matching css (raises BrowserError 'no such element')."""
        return self._cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT_KEY]

    def find_all(self, css: str) -> list[str]:
        return [
            e[ELEMENT_KEY] for e in self._cmd("POST", "/elements", {"using": "css selector", "value": css})
        ]

    def click(self, element: str) -> None:
        self._cmd("POST", f"/element/{self._element(element)}/click", {})

    def type(self, element: str, text: str) -> None:
        """Type text into a field as a user does (a trailing "\ue007", WebDriver's Enter key, submits its form)."""
        self._cmd("POST", f"/element/{self._element(element)}/value", {"text": text})

    def text(self, element_or_css: str) -> str:
        """The rendered (visible) text of an element."""
        return self._cmd("GET", f"/element/{self._element(element_or_css)}/text")

    def page_source(self) -> str:
        return self._cmd("GET", "/source")

    def execute(self, js: str, *args: Any) -> Any:
        """Run a synchronous script (``return ...`` gives the value)."""
        return self._cmd("POST", "/execute/sync", {"script": js, "args": list(args)})

    def screenshot(self, path: str | Path) -> Path:
        """PNG of the current viewport."""
        out = Path(path)
        out.write_bytes(base64.b64decode(self._cmd("GET", "/screenshot")))
        return out

    def set_window_size(self, width: int, height: int) -> None:
        self._cmd("POST", "/window/rect", {"width": width, "height": height})

    def wait_for(self, css: str, timeout: float = 5) -> str:
        """Poll until an element matching css exists; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.find(css)
            except BrowserError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def ensure_browser_installed() -> None:
    """install.sh --browser; raise BrowserError with apt's output if that fails."""
    try:
        ensure_installed(browser=True)
    except MailServerError as exc:
        raise BrowserError(str(exc)) from None
    find_chromium()
    find_chromedriver()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the chromium binary, installed if missing (fails, never skips)."""
    try:
        ensure_browser_installed()
    except BrowserError as exc:
        pytest.fail(f"headless Chromium unavailable: {exc}", pytrace=False)
    return find_chromium()


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Browser]:
    """One WebDriver session for the whole test session (a cold start costs ~1 s).

    Tests share it: navigate with ``get()`` first and do not rely on state from other tests.
    """
    with Browser() as b:
        yield b
