"""`digest run` as a user sees it, measured in one run and printed (no assertions).

    .venv/bin/python benchmarks/daemon.py [--papers sample_inbox] [--lead 75]

Starts `python -m digest run` in a temp dir with the sample inbox stored and one profile due at the next
whole minute at least ``--lead`` seconds away (outbox delivery, no web server), then prints: start to ready
(model loaded, new papers embedded, catch-up done), memory when ready, how long after its send time the
digest was written, memory after it, and SIGTERM to exit. With ``--stop-while-embedding S``, SIGTERM comes S
seconds after the model has loaded, while the stored papers are being embedded, and it prints how long the stop
took and how many papers were embedded before it.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", default=str(REPO / "sample_inbox"), help="emails to store first")
    parser.add_argument("--lead", type=int, default=75, help="seconds from start to the send time (at least)")
    parser.add_argument("--stop-while-embedding", type=float, metavar="S",
                        help="send SIGTERM S seconds after the model loaded, while papers are embedded")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="digest-bench-daemon-"))
    (root / "profiles").mkdir()
    due = (datetime.now(UTC) + timedelta(seconds=args.lead + 60)).replace(second=0, microsecond=0)
    (root / "profiles" / "ada.toml").write_text(
        f'email = "ada@example.org"\ntimezone = "UTC"\nsend_at = "{due:%H:%M}"\nrelevance_floor = 0.2\n'
        '[[interests]]\nlabel = "Efficient LLM inference"\n'
        'description = "Making large language models faster and cheaper at inference: speculative decoding, '
        'KV-cache compression, quantization, sparse and linear attention."\n')
    (root / "config.toml").write_text(f'data_dir = "{root}/data"\nprofiles_dir = "{root}/profiles"\n'
                                      f'outbox = "{root}/data/outbox"\n[web]\nenabled = false\n')
    digest = [sys.executable, "-m", "digest", "--config", str(root / "config.toml")]
    subprocess.run([*digest, "ingest", args.papers], cwd=REPO, check=True, capture_output=True)
    log_path = root / "run.log"
    with log_path.open("w") as log:
        started = time.monotonic()
        proc = subprocess.Popen([*digest, "run"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def wait_for(text: str) -> str:
        while True:
            for line in log_path.read_text().splitlines():
                if text in line:
                    return line
            if proc.poll() is not None:
                sys.exit(f"digest run exited ({proc.returncode}):\n{log_path.read_text()}")
            time.sleep(0.05)

    try:
        if args.stop_while_embedding is not None:
            wait_for("job=model:")
            time.sleep(args.stop_while_embedding)
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=600)
            print(f"SIGTERM {args.stop_while_embedding:g} s after the model loaded -> exit: "
                  f"{time.monotonic() - stopping:.2f} s (exit status {code})")
            done = re.search(r"job=embed: (.*)", log_path.read_text())
            print(f"embedding: {done.group(1) if done else 'no line'}")
            return
        wait_for("job=start: ready")
        embedded = re.search(r"job=embed: (\d+)", log_path.read_text())
        print(f"start -> ready (model loaded, {embedded.group(1) if embedded else 0} papers embedded): "
              f"{time.monotonic() - started:.1f} s")
        print(f"memory when ready: {rss_mb(proc.pid)} MB RSS")
        line = wait_for("job=send user=ada")
        written = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        items = re.search(r"wrote (.*?) to", line)
        print(f"digest with {items.group(1) if items else '?'} written {(written - due).total_seconds():.2f} s "
              f"after its send time {due:%H:%M} UTC")
        print(f"memory after the digest: {rss_mb(proc.pid)} MB RSS")
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        print(f"SIGTERM -> exit: {time.monotonic() - stopping:.2f} s (exit status {code})")
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"log: {log_path}")


if __name__ == "__main__":
    main()
