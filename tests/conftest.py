# ---- real-server fixtures (owner: mailinfra) ------------------------------------------------
# mail_servers: loopback Dovecot + SMTP relay, one per session     -> tests/mailserver.py
# chromium, browser: headless Chromium and a WebDriver session       -> tests/browser.py
# ---- then: foreign_store, a database this test's commands may not write
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import browser, chromium  # noqa: F401
from mailserver import mail_servers  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def reference_vectors_ready(request):
    """The loose-match bar's reference titles embedded (once per machine, as the product keeps them: ~45 s with the
    default ensemble) before the tests that load a model, so no timed scenario pays for them in the middle."""
    if not any(item.get_closest_marker("model") for item in request.session.items):
        return
    from digest.embed import DEFAULT_MODEL, Embedder
    from digest.reference import cache_file, reference_vectors
    from digest.store import Store

    for model in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        if not cache_file(model).exists():
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(Path(tmp) / "reference.db")
                reference_vectors(store, Embedder(model))
                store.close()


@dataclass
class ForeignStore:
    """A data folder anyone may write (so -wal and -shm files are made by whoever opens the database), holding a
    database file without its write bit, which the commands run with ``as_other`` in front may not write: as
    root (who writes any file) they run without root's power over file permissions (setpriv drops
    CAP_DAC_OVERRIDE), still as root, so they can read a checkout only root may enter (a `mktemp -d` clone)."""

    base: Path      # under /tmp; profiles/ is there too
    data: Path
    db: Path
    as_other: list[str]
    read_only: int  # the file's mode that the commands may not write
    user: str       # who runs the commands
    owner: str      # whose the database file is

    def files(self) -> list[str]:
        return sorted(p.name for p in self.data.iterdir())


@pytest.fixture
def foreign_store():
    as_other = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: root may write any file")
        as_other = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    from digest.store import Store

    base = Path(tempfile.mkdtemp(prefix="digest-readonly-"))
    try:
        base.chmod(0o755)
        data = base / "data"
        data.mkdir()
        data.chmod(0o777)
        (base / "profiles").mkdir()
        db = data / "digest.db"
        Store(db).close()
        db.chmod(0o444)
        name = pwd.getpwuid(os.geteuid()).pw_name
        yield ForeignStore(base, data, db, as_other, 0o444, name, pwd.getpwuid(db.stat().st_uid).pw_name)
    finally:
        shutil.rmtree(base, ignore_errors=True)


_HOLD_WRITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def hold_write_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the database's write lock for ``seconds`` (an sqlite3 shell with an open
    transaction): it prints "held" once it has the lock; wait for the process to know the lock is gone."""
    return subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
