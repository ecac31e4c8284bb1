"""Measure `digest poll` against the loopback Dovecot: a first pass over N alerts, then an incremental pass.

    .venv/bin/python benchmarks/poll.py [N]          # N real alert fixtures (unique Message-IDs), default 300
    .venv/bin/python benchmarks/poll.py N personal   # N short personal mails: the poller's own overhead

Starts its own servers (tests/mailserver.py), so nothing outside a temp dir is touched.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from mailserver import start_mail_servers  # noqa: E402

from digest.config import load_settings  # noqa: E402
from digest.ingest import poll_all  # noqa: E402
from digest.store import Store  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "emails"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    raws = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.eml"))]
    if sys.argv[2:] == ["personal"]:
        raws = [b"From: Grace <grace@example.org>\r\nTo: reader@example.org\r\nSubject: Lunch?\r\n"
                b"Message-ID: <lunch@example.org>\r\n\r\nAre you free for lunch on Friday?\r\n"]
    servers = start_mail_servers()
    try:
        address, password = servers.new_user("bench")
        total = 0
        with servers.imap(address) as client:
            for i in range(n):
                raw = re.sub(rb"(?im)^(Message-ID:\s*<)", f"\\g<1>bench{i}-".encode(), raws[i % len(raws)], count=1)
                client.append("INBOX", raw)
                total += len(raw)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.toml"
            config.write_text(f'data_dir = "{tmp}"\n[imap]\nhost = "{servers.host}"\nport = {servers.imaps_port}\n'
                              f'username = "{address}"\nca_file = "{servers.ca_cert}"\n')
            os.environ["DIGEST_IMAP_PASSWORD"] = password
            settings = load_settings(config)
            store = Store(settings.db_path)
            for label in ("first pass", "second pass"):
                started = time.perf_counter()
                report = poll_all(store, settings)
                elapsed = time.perf_counter() - started
                folder = report.folders[0]
                print(f"{label}: {elapsed:.2f} s for {folder.fetched} messages "
                      f"({folder.fetched / elapsed if folder.fetched else 0:.0f}/s, {total / 1e6:.1f} MB in the folder); "
                      f"{folder.summary()}")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"papers in store: {store.count_papers()}; peak RSS {peak:.0f} MB")
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
