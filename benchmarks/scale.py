"""A year of alerts: what each command and page costs at N papers and at N/10 (so the ratio shows how it grows).

    .venv/bin/python benchmarks/scale.py [--papers N] [--explain] [--keep DIR]

Builds two stores in a temp dir, without the model: papers made of the real titles and abstracts of the
repository's sample inbox, recombined as search.py does (a title of 10 words, an abstract of 150), spread over
a year (first_seen) with one alert message per ~150 papers; for each a random unit vector of the default
model's dimensions (384 + 768) written straight into the embeddings table under the key `cached_vectors`
reads (model name, content_hash(paper.text)); the example profiles ada and ben (ben with his library) plus a
third reader, each with 2,000 votes and a year of sent digests (300, each 10 papers + 10 runners-up + 5
below the floor, in the ledger). The vectors carry no meaning: ranking quality is not measured, only cost.

Then, on each store: `digest status`, `digest check`, `digest rank ada`, `digest votes ada`, `digest backup`
and `digest ingest` of one sample alert (each a fresh process, as a user runs it; the wall time includes
Python's start, the same at both sizes), the candidate query of a send (in process), the digest page over
HTTP against `digest serve` (GET, a search, a vote POST), and the database's size per paper. A command that
imports torch is reported (every vector is cached: none needs the model). --explain prints the query plans
of the queries these paths run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search import corpus, median_seconds  # noqa: E402  (benchmarks/search.py: the sample inbox's words)

from digest.config import load_settings  # noqa: E402
from digest.embed import content_hash  # noqa: E402
from digest.models import Paper, normalise_title  # noqa: E402
from digest.store import Store, _id_is  # noqa: E402

MODEL = "all-MiniLM-L6-v2+all-mpnet-base-v2"
DIM = 384 + 768
USERS = ("ada", "ben", "cyd")
VOTES_PER_USER = 2000
DIGESTS_PER_USER = 300
KEY = "scale-benchmark-secret-key-0123456789abcdef"
# a command run in a fresh process, reporting on stderr whether it imported torch (the model)
RUNNER = ("import atexit, sys\n"
          "atexit.register(lambda: sys.stderr.write('\\nTORCH-IMPORTED\\n' if 'torch' in sys.modules else ''))\n"
          "from digest.cli import main\n"
          "sys.argv = ['digest', *sys.argv[1:]]\n"
          "main()\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(base: Path, n: int, words: list[str], port: int) -> dict:
    """A store of ``n`` papers over a year, with vectors, readers, votes and digests. Returns what the timings need."""
    data, profiles = base / "data", base / "profiles"
    data.mkdir(parents=True)
    profiles.mkdir()
    for name in ("ada.toml", "ben.toml", "ben-library.bib"):
        shutil.copy(REPO / "profiles" / name, profiles / name)
    text = (REPO / "profiles" / "ada.toml").read_text()
    (profiles / "cyd.toml").write_text(text.replace('name = "Ada Lovelace"', 'name = "Cyd"')
                                       .replace("ada@example.org", "cyd@example.org"))
    config = base / "config.toml"
    config.write_text(f'data_dir = "{data}"\nprofiles_dir = "{profiles}"\noutbox = "{base / "outbox"}"\n'
                      f'[model]\nname = "{MODEL}"\n[web]\nport = {port}\nbase_url = "http://127.0.0.1:{port}"\n'
                      f'secret_key_env = "SCALE_BENCH_KEY"\n')
    os.environ["SCALE_BENCH_KEY"] = KEY
    settings = load_settings(config)
    store = Store(settings.db_path)
    rng = random.Random(n)
    vrng = np.random.default_rng(n)
    now = datetime.now(UTC).replace(microsecond=0)
    per_day = n / 365
    db = store.db.conn
    ids: list[str] = []
    msg_id = 0
    with db:
        for i in range(n):
            day = 364 - int(i / per_day)  # oldest first; the last papers arrive today
            seen = (now - timedelta(days=day, seconds=rng.randrange(0, 80000) if day else rng.randrange(0, 3600)))
            title = " ".join(rng.choices(words, k=10))
            paper = Paper(title, authors=(f"Author {i % 997}", "B. Second"), abstract=" ".join(rng.choices(words, k=150)),
                          doi=f"10.9999/scale.{i}", source="scholar")
            if i % 150 == 0:
                msg_id += 1
                db.execute("INSERT INTO messages (id, mailbox, uidvalidity, uid, message_id, subject, sender, kind, "
                           "status, n_papers, received_at, processed_at) VALUES (?, 'INBOX', 1, ?, ?, 'alert', "
                           "'scholaralerts-noreply@google.com', 'scholar', 'ingested', 150, ?, ?)",
                           [msg_id, msg_id, f"<{msg_id}@scale>", seen.isoformat(), seen.isoformat()])
            db.execute("INSERT INTO papers (id, title, title_key, authors, abstract, doi, sources, categories, "
                       "first_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, '[\"scholar\"]', '[]', ?, ?)",
                       [paper.id, paper.title, normalise_title(paper.title), json.dumps(list(paper.authors)),
                        paper.abstract, paper.doi, seen.isoformat(), seen.isoformat()])
            db.execute("INSERT INTO paper_messages (paper_id, message, source) VALUES (?, ?, 'scholar')",
                       [paper.id, msg_id])
            vec = vrng.standard_normal(DIM).astype(np.float32)
            vec /= np.linalg.norm(vec)
            db.execute("INSERT INTO embeddings (model, content_hash, dim, vector) VALUES (?, ?, ?, ?)",
                       [MODEL, content_hash(paper.text), DIM, vec.tobytes()])
            ids.append(paper.id)
    # the readers' own texts (interests, seeds, library): cached too, so no command needs the model
    from digest.pipeline import profile_anchors
    from digest.profiles import load_profiles, with_library

    loaded = load_profiles(profiles)
    texts = set()
    for profile in loaded.profiles.values():
        texts.update(profile_anchors(store, with_library(profile)[0])[1])
    store.put_vectors(MODEL, {content_hash(t): (v := vrng.standard_normal(DIM).astype(np.float32)) / np.linalg.norm(v)
                              for t in texts})
    # a year of digests and votes per reader
    digest_id = 0
    with db:
        for user in USERS:
            voted = rng.sample(ids, min(VOTES_PER_USER, n // 4))
            for j, pid in enumerate(voted):
                at = (now - timedelta(days=365 * (len(voted) - j) / len(voted))).isoformat(timespec="seconds")
                value = rng.choice((1, 1, -1))
                db.execute("INSERT INTO votes VALUES (?, ?, ?, 'web', ?, ?)", [user, pid, value, at, at])
                db.execute("INSERT INTO vote_events (user, paper_id, value, via, at) VALUES (?, ?, ?, 'web', ?)",
                           [user, pid, value, at])
            for d in range(DIGESTS_PER_USER):
                day = now - timedelta(days=DIGESTS_PER_USER - d)
                digest_id += 1
                at = day.isoformat(timespec="seconds")
                db.execute("INSERT INTO digests (id, user, period, status, claimed_by, claimed_at, attempts, message_id, "
                           "subject, n_candidates, n_items, sent_at, address, floor) VALUES (?, ?, ?, 'sent', 'x', ?, 1, "
                           "?, 'digest', 2500, 10, ?, ?, 0.2)",
                           [digest_id, user, day.date().isoformat(), at, f"<d{digest_id}@scale>", at,
                            f"{user}@example.org"])
                lo = min(max(0, int(n * (365 - (DIGESTS_PER_USER - d) - 1) / 365)), n - 30)
                picks = rng.sample(ids[lo:lo + max(30, int(per_day))], 25)
                for rank, pid in enumerate(picks, start=1):
                    table = "digest_items" if rank <= 10 else "digest_more"
                    extra = "" if rank <= 10 else ", below"
                    below = [] if rank <= 10 else [int(rank > 20)]
                    db.execute(f"INSERT OR IGNORE INTO {table} (digest_id, rank, paper_id, score, reason, facet, "
                               f"details{extra}) VALUES (?, ?, ?, ?, 'close to your interest', NULL, '{{}}'"
                               f"{', ?' if below else ''})", [digest_id, rank, pid, 0.3 - rank / 100, *below])
                    if rank <= 10:
                        db.execute("INSERT OR IGNORE INTO sent_papers VALUES (?, ?, ?, ?)", [user, pid, digest_id, at])
        for k in range(2000):
            db.execute("INSERT INTO events (at, level, component, user, message) VALUES (?, 'INFO', 'poll', NULL, ?)",
                       [(now - timedelta(hours=k * 4)).isoformat(timespec="seconds"), f"polled INBOX: {k}"])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    latest = store.db.execute("SELECT max(id) FROM digests WHERE user = 'ada'").fetchone()[0]
    store.close()
    return {"config": config, "settings": settings, "latest": latest, "words": words, "base": base,
            "last_paper": ids[-5]}


def run(config: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIGEST_CONFIG": str(config)}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env)
    spent = time.perf_counter() - t
    note = " [imported torch]" if "TORCH-IMPORTED" in done.stderr else ""
    if done.returncode not in (0, 1):
        note += f" [exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}]"
    return spent, note


def http(url: str, data: dict | None = None) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def measure(built: dict) -> dict[str, float | str]:
    config, settings, base = built["config"], built["settings"], built["base"]
    out: dict[str, float | str] = {}
    notes: dict[str, str] = {}
    for label, args in (("status", ["status"]), ("check", ["check"]), ("rank ada", ["rank", "ada"]),
                        ("votes ada", ["votes", "ada"])):
        out[label], notes[label] = run(config, *args)
    out["backup"], notes["backup"] = run(config, "backup", str(base / "backup.db"))
    out["backup MB"] = (base / "backup.db").stat().st_size / 1e6
    (base / "backup.db").unlink()
    # the candidate query of a send, and what ranking reads besides (in process)
    from digest.pipeline import candidate_since

    store = Store(settings.db_path)
    since = candidate_since(settings)
    out["candidates"] = median_seconds(lambda: store.candidate_papers("ada", since), 3)
    out["n candidates"] = str(len(store.candidate_papers("ada", since)))
    out["background sample"] = median_seconds(lambda: store.random_papers(settings.ranking.background_size, seed=1), 3)
    # a Scholar title cut short ("…") that is new to the store: the prefix lookup of every such title at ingest
    cut = Paper(" ".join(random.Random(1).choices(built["words"], k=12)) + " …", source="scholar")
    out["truncated title"] = median_seconds(lambda: store.find_paper(title=cut.title), 3)
    rare = min((w for w in set(built["words"]) if w.isalpha() and len(w) > 6), key=built["words"].count)
    out["search rare word"] = median_seconds(lambda: store.search_papers(rare), 3)
    store.close()
    # the digest page over HTTP, against the real server
    from digest.config import Secret
    from digest.tokens import link_path

    key = Secret(KEY)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIGEST_CONFIG": str(config)}
    server = subprocess.Popen([sys.executable, "-m", "digest", "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    root = settings.web.base_url
    try:
        for _ in range(300):
            try:
                if http(f"{root}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        page = f"{root}/{link_path(key, 'ada', 'digest', str(built['latest']))}"
        status, body = http(page)
        assert status == 200, (status, body[:300])
        out["page GET"] = median_seconds(lambda: http(page), 5)
        common = max(set(built["words"]), key=built["words"].count)
        out["page search"] = median_seconds(lambda: http(f"{page}?q={urllib.parse.quote(common)}"), 5)
        token = page.rsplit("/", 1)[1]
        status, _ = http(page, {"token": token, "do": "up", "item": "3"})
        assert status == 303, status
        flip = iter(("down", "up") * 10)
        out["vote POST"] = median_seconds(lambda: http(page, {"token": token, "do": next(flip), "item": "3"}), 5)
        vote = f"{root}/{link_path(key, 'ada', 'up', built['last_paper'])}" if "last_paper" in built else None
        if vote:
            out["vote link GET"] = median_seconds(lambda: http(vote), 5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # one new alert into the grown store (a fresh copy each time would take minutes: once)
    out["ingest 1 alert"], notes["ingest 1 alert"] = run(config, "ingest", str(REPO / "sample_inbox" /
                                                                              "01-arxiv-cs-daily-2024-11-07.eml"))
    size = sum(p.stat().st_size for p in settings.data_path.glob("digest.db*"))
    out["db MB"] = size / 1e6
    out["notes"] = "; ".join(f"{k}{v}" for k, v in notes.items() if v)
    return out


EXPLAIN = {
    "candidates": ("SELECT * FROM papers WHERE first_seen >= ? AND (section IS NULL OR section != 'replaced') AND "
                   "id NOT IN (SELECT paper_id FROM sent_papers WHERE user IN (?) UNION SELECT paper_id FROM votes "
                   "WHERE user IN (?)) ORDER BY first_seen, id", ["2025-01-01", "ada", "ada"]),
    "background ids": ("SELECT id FROM papers ORDER BY id", []),
    "truncated title": ("SELECT * FROM papers WHERE title_key >= ? AND title_key < ? LIMIT 1",
                        ["deep learning for", "deep learning for\U0010ffff"]),
    "search ids": (f"SELECT id FROM papers p WHERE {_id_is('magnitude')[0]}", _id_is("magnitude")[1]),
    "latest digest with": ("SELECT d.* FROM digests d JOIN digest_items i ON i.digest_id = d.id WHERE d.user IN (?) "
                           "AND i.paper_id = ? AND d.status = 'sent' ORDER BY d.period DESC, d.id DESC LIMIT 1",
                           ["ada", "x"]),
    "vote as_of": ("SELECT 1 FROM vote_events WHERE paper_id = ? AND user IN (?) AND at > ? LIMIT 1", ["x", "ada", "z"]),
    "vote history": ("SELECT * FROM vote_events WHERE user = ? ORDER BY id", ["ada"]),
    "sent digests": ("SELECT * FROM digests WHERE user IN (?) AND status = 'sent' AND (n_items > 0 OR EXISTS (SELECT 1 "
                     "FROM digest_more m WHERE m.digest_id = digests.id)) ORDER BY period, id", ["ada"]),
    "claim ledger": ("SELECT d.user, i.paper_id FROM digests d JOIN digest_items i ON i.digest_id = d.id WHERE "
                     "d.status = 'sent' AND NOT EXISTS (SELECT 1 FROM sent_papers s WHERE s.digest_id = d.id)", []),
    "papers of a message": ("SELECT paper_id FROM paper_messages WHERE message = ?", [1]),
    "find --find": ("SELECT id FROM papers WHERE (? != '' AND instr(title_key, ?) > 0) ORDER BY first_seen DESC, id",
                    ["a", "a"]),
}


def explain(db_path: Path) -> None:
    store = Store(db_path)
    for label, (sql, args) in EXPLAIN.items():
        plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        print(f"  {label}: " + " | ".join(plan))
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=150_000)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--keep", type=Path, help="build the stores here and keep them")
    args = parser.parse_args()
    words = corpus()
    sizes = [max(1, args.papers // 10), args.papers]
    results = {}
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="digest-scale-"))
    try:
        for n in sizes:
            base = tmp / f"n{n}"
            if base.exists():
                shutil.rmtree(base)
            t = time.perf_counter()
            built = build(base, n, words, free_port())
            print(f"built {n} papers in {time.perf_counter() - t:.0f} s", flush=True)
            if args.explain:
                explain(built["settings"].db_path)
            results[n] = measure(built)
            print(f"  {n}: {results[n]}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    small, large = sizes
    print(f"\n{'':22}{small:>10}{large:>10}   ratio")
    for label in results[large]:
        a, b = results[small][label], results[large][label]
        if isinstance(b, float):
            unit = "" if "MB" in label else " s"
            print(f"{label:22}{a:>10.3f}{b:>10.3f}   x{b / a if a else float('nan'):.1f}{unit}")
        elif label == "notes":
            for n in sizes:
                if results[n][label]:
                    print(f"notes at {n}: {results[n][label]}")
        else:
            print(f"{label:22}{a:>10}{b:>10}")
    for n in sizes:
        print(f"db bytes per paper at {n}: {results[n]['db MB'] * 1e6 / n:.0f}")


if __name__ == "__main__":
    main()
