import json
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.models import Paper
from digest.store import Store

REPO = Path(__file__).resolve().parent.parent


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name, command in cli.commands.items():
        assert command.help, f"{name} has no docstring"
        assert "Example:" in command.help, f"{name} has no example"
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, time; t = time.perf_counter(); from digest.cli import main\n"
            "sys.argv = ['digest', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch imported'\n")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout
    assert time.perf_counter() - started < 5  # generous: the real figure (~0.15 s) is in the README


@pytest.mark.parametrize("args", [["check"], ["parse", "sample_inbox/02-scholar-allamanis-related-research.eml"]])
def test_commands_without_the_model_do_not_import_torch(args):
    code = ("import sys\nfrom digest.cli import main\nsys.argv = ['digest', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_names_the_file_and_key_of_a_typo(tmp_path):
    (tmp_path / "ada.toml").write_text('email = "a@b.org"\nsendat = "07:30"\n[[interests]]\nlabel = "x"\n')
    (tmp_path / "bob.toml").write_text('email = "b@b.org"\n[[interests]]\nlabel = "y"\n')
    result = CliRunner().invoke(cli, ["check", "--profiles", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path}/ada.toml:2: sendat: unknown key" in result.output
    assert 'did you mean "send_at"' in result.output
    assert "profile bob: ok" in result.output


def test_errors_are_one_line_without_a_traceback(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[smtp]\nport = 'x'\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "smtp.port has the wrong type" in result.output


def test_the_module_entry_point_works():
    result = subprocess.run([sys.executable, "-m", "digest", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    assert isinstance(cli, click.Group)


def _profiles(tmp_path, frequency="daily"):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "ada.toml").write_text(f'email = "ada@example.org"\ntimezone = "UTC"\nfrequency = "{frequency}"\n'
                                       '[[interests]]\nlabel = "Program synthesis"\n')
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{profiles}"\n')
    return config


def test_rank_of_an_unknown_profile_names_the_users_there(tmp_path):
    config = _profiles(tmp_path)
    Store(tmp_path / "data" / "digest.db").close()
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "nobody"])
    assert result.exit_code == 1 and "nobody.toml: profile not found" in result.output
    assert "(the users there: ada)" in result.output, result.output
    # an editor's lock file and a file check does not take for a profile are not users; a capital is a slip
    for name in (".#ada.toml", "Config.toml", "v w.toml"):
        (tmp_path / "profiles" / name).write_text("")
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "ADA"])
    assert "ADA.toml: profile not found" in result.output and "; did you mean ada? (the users there: ada)" \
        in result.output, result.output


def test_rank_lines_clip_long_titles_with_an_ellipsis_and_show_a_mute_as_such():
    from digest.cli import _clipped, _score
    from digest.models import Paper, ScoredPaper

    assert _clipped("A  short\ntitle") == "A short title"
    long = "Word " * 30
    assert len(_clipped(long)) == 100 and _clipped(long).endswith("Word…")
    paper = Paper("Muted")
    assert _score(ScoredPaper(paper, -99.0, "muted", details={"muted": ["survey"]})) == "muted"
    assert _score(ScoredPaper(paper, 0.314, "why")) == "0.31"


@pytest.mark.parametrize("command", ["votes", "resume"])
def test_a_mistyped_user_name_is_an_error_not_an_empty_answer(tmp_path, command):
    config = _profiles(tmp_path)
    Store(tmp_path / "data" / "digest.db").close()
    result = CliRunner().invoke(cli, ["--config", str(config), command, "adda"])
    assert result.exit_code == 1, result.output
    assert "no user 'adda'" in result.output and 'did you mean "ada"?' in result.output
    assert CliRunner().invoke(cli, ["--config", str(config), command, "ada"]).exit_code == 0


def test_rank_on_an_empty_store_says_where_papers_come_from_before_loading_the_model(tmp_path):
    config = _profiles(tmp_path)
    code = ("import sys\nfrom digest.cli import main\nsys.argv = ['digest', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 1, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code, "--config", str(config), "rank", "ada"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "digest.db: no such file: no store there yet" in result.stderr and "digest poll" in result.stderr
    assert "--data-dir demo-data rank ada" in result.stderr
    Store(tmp_path / "data" / "digest.db").close()
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "ada"])
    assert result.exit_code == 1 and "digest.db: no papers in the store yet; read alerts in with `digest poll`" \
        in result.output, result.output


def test_a_damaged_page_met_mid_command_is_one_error_with_the_fix_not_a_traceback(tmp_path):
    config = _profiles(tmp_path)
    path = tmp_path / "data" / "digest.db"
    store = Store(path)
    store.add_papers([Paper(f"Paper {i} on program synthesis", abstract="words " * 300) for i in range(40)])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root, size = (store.db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'papers'").fetchone()[0],
                  store.db.execute("PRAGMA page_size").fetchone()[0])
    store.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * size: root * size] = b"\xee" * size  # the papers table's root page: opening still works
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "ada"])
    assert result.exit_code == 2 and "Traceback" not in result.output  # a setup error: no restart helps
    assert f"error: {path}: not a usable database (database disk image is malformed)" in result.output
    assert "digest backup" in result.output and ".recover" in result.output
    # check reads every page, so it finds the damage before a command meets it
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1 and f"error: {path}: not a usable database (SQLite's check: " in result.output


def test_check_says_the_store_is_whole(tmp_path):
    config = _profiles(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    # none yet (nor made): said, since a mistyped --data-dir looks just so
    assert f"store: {tmp_path / 'data' / 'digest.db'}: none yet (the first `digest poll`, `digest ingest` or " \
        "`digest run` makes it)" in result.output, result.output
    assert not (tmp_path / "data" / "digest.db").exists()
    store = Store(tmp_path / "data" / "digest.db")
    store.add_papers([Paper("Program synthesis from examples")])
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0 and f"store: {tmp_path / 'data' / 'digest.db'}: ok (1 paper, " in result.output


def test_backup_writes_a_checked_copy_into_data_dir_or_where_told(tmp_path):
    config = _profiles(tmp_path)
    store = Store(tmp_path / "data" / "digest.db")
    store.add_papers([Paper("Program synthesis from examples")])
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "backup"])
    assert result.exit_code == 0, result.output
    (copy,) = (tmp_path / "data" / "backups").glob("digest-*.db")
    assert f"wrote {copy} (" in result.output and "checked): 1 paper, 0 votes" in result.output
    assert Store(copy).count_papers() == 1
    target = tmp_path / "nas" / "digest.db"
    target.parent.mkdir()
    assert CliRunner().invoke(cli, ["--config", str(config), "backup", str(target)]).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(config), "backup", str(target)])
    assert result.exit_code == 0 and f"replaced {target}" in result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "backup", str(tmp_path / "data" / "digest.db")])
    assert result.exit_code == 1 and "that is the database itself" in result.output


def test_rank_of_a_broken_profile_previews_its_last_good_version_as_the_service_sends_it(tmp_path):
    config = _profiles(tmp_path)
    good = (tmp_path / "profiles" / "ada.toml").read_text()
    store = Store(tmp_path / "data" / "digest.db")
    (tmp_path / "profiles" / "ada.toml").write_text(good + "send_at = 07:30\n")  # a slip: the time unquoted
    assert CliRunner().invoke(cli, ["--config", str(config), "rank", "ada"]).exit_code == 2  # none kept: the error
    store.save_profile_texts({"ada": good})
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "ada"])
    assert "ada.toml" in result.output and "the file is broken; this ranks its last good version, which digests " \
        "use until the file is fixed" in result.output, result.output
    assert "no papers in the store yet" in result.output  # and on it goes, with that version


def test_rank_judges_a_profile_as_the_service_does_and_keeps_what_it_accepted(tmp_path):
    """`rank cat` of a profile refused for another user's address previewed it as if it were served; and the
    last good version was only kept by `send`, so a version `check` and `rank` had accepted was not the one
    that served once the file broke."""
    from digest.config import load_settings

    config = _profiles(tmp_path)
    profiles, db = tmp_path / "profiles", load_settings(config).db_path
    ada = (profiles / "ada.toml").read_text()
    Store(db).close()  # a store exists (check and rank create none)
    (profiles / "cat.toml").write_text(ada.replace('email = "ada@example.org"', 'email = "Ada@Example.org"'))
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "cat"])
    assert result.exit_code == 2, result.output
    assert f"{profiles / 'cat.toml'}:1: email: Ada@Example.org is already used by {profiles / 'ada.toml'}" \
        in result.output
    # cat gets its own address: accepted by `check`, then by `rank` with a new floor
    (profiles / "cat.toml").write_text(ada.replace("ada@", "cat@"))
    assert "profile cat: ok" in CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    assert Store(db).profile_texts()["cat"] == (profiles / "cat.toml").read_text()
    (profiles / "cat.toml").write_text("relevance_floor = 0.3\n" + ada.replace("ada@", "cat@"))
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "cat"])
    assert "no papers in the store yet" in result.output and "note:" not in result.output, result.output
    kept = (profiles / "cat.toml").read_text()
    assert Store(db).profile_texts()["cat"] == kept
    # then the file breaks: the version rank accepted is the one that serves
    (profiles / "cat.toml").write_text(kept + "send_at = 07:30\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "cat"])
    assert "the file is broken; this ranks its last good version" in result.output, result.output
    # a file that loads beats a broken file's stand-in for an address (load_profiles): then cat is not served
    (profiles / "dan.toml").write_text(ada.replace("ada@", "cat@"))
    result = CliRunner().invoke(cli, ["--config", str(config), "rank", "cat"])
    assert result.exit_code == 2 and "cannot serve its last good version: that names cat@example.org, which " \
        f"{profiles / 'dan.toml'} has now" in result.output, result.output


def test_a_command_that_only_looks_at_a_missing_store_says_so_and_creates_nothing(tmp_path, monkeypatch):
    """`digest --data-dir dta votes me` (a typo) answered "me: no votes yet", and status showed an empty store."""
    config = _profiles(tmp_path)
    typo = tmp_path / "dta"
    check = f"check --data-dir {typo}: the data directory comes from --data-dir, else DIGEST_DATA_DIR, else data_dir in " \
        "the config"
    missing = f"{typo / 'digest.db'}: no such file: no store there yet, nothing has been read in under {typo}"
    for command in (["votes", "ada"], ["votes", "ada", "--bib"], ["page", "ada"], ["resume", "ada"], ["rank", "ada"]):
        result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), *command])
        assert result.exit_code == 1, (command, result.output)
        assert f"error: {missing}; {check}" in result.output, (command, result.output)
        assert "no votes yet" not in result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "status"])
    assert result.exit_code == 0 and f"data: {missing}; {check}" in result.output, result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "status", "--json"])
    report = json.loads(result.output)
    assert report["store_exists"] is False and report["store_note"] == f"{missing}; {check}"
    monkeypatch.setenv("DIGEST_DATA_DIR", str(typo))
    result = CliRunner().invoke(cli, ["--config", str(config), "votes", "ada"])
    assert f"check DIGEST_DATA_DIR={typo}: the data directory" in result.output, result.output
    monkeypatch.delenv("DIGEST_DATA_DIR")
    result = CliRunner().invoke(cli, ["--config", str(config), "page", "ada"])
    assert f"check data_dir in {config}: the data directory" in result.output, result.output
    assert not typo.exists() and not (tmp_path / "data").exists()
    # a store, even an empty one: the answers of an empty world, and no note in status
    Store(typo / "digest.db").close()
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "votes", "ada"])
    assert result.exit_code == 0 and "ada: no votes yet" in result.output, result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "status", "--json"])
    assert json.loads(result.output)["store_exists"] is True and "store_note" not in json.loads(result.output)


def test_send_leaves_out_a_user_whose_frequency_skips_today(tmp_path):
    from datetime import UTC, datetime, timedelta

    # a day that is neither today nor tomorrow (UTC), so the test cannot straddle midnight
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a").lower()
    config = _profiles(tmp_path, frequency=f"weekly:{day}")
    Store(tmp_path / "data" / "digest.db").close()  # a store that has read no alert yet
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--outbox", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).strftime("%A")
    assert f'ada: not a send day (frequency = "weekly:{day}", and it is {today} in UTC); --any-day' in result.output
    assert not (tmp_path / "out").exists()


def test_send_goes_on_past_a_broken_profile_and_exits_1_for_it(tmp_path):
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a").lower()
    config = _profiles(tmp_path, frequency=f"weekly:{day}")
    Store(tmp_path / "data" / "digest.db").close()  # a store that has read no alert yet
    (tmp_path / "profiles" / "bob.toml").write_text('email = "bob@example.org"\nsend_at = "7.30"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--outbox", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output  # cron and systemd see that a file needs fixing...
    assert f"profile error: {tmp_path / 'profiles' / 'bob.toml'}:2: send_at" in result.output
    assert "ada: not a send day" in result.output  # ...and ada was still handled
    assert "1 profile error (above): the rest of the run went on; fix the file (`digest check`" in result.output


@pytest.mark.model
def test_send_any_day_sends_whatever_the_frequency(tmp_path):
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a").lower()
    config = _profiles(tmp_path, frequency=f"weekly:{day}")
    Store(tmp_path / "data" / "digest.db").close()  # a store that has read no alert yet
    config.write_text(config.read_text() + '[model]\nname = "all-MiniLM-L6-v2"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--any-day", "--outbox", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "not a send day" not in result.output
    assert "ada: 0 papers written" in result.output  # an empty store: the quiet-day note (quiet_day = "note")
    assert len(list((tmp_path / "out").glob("ada-*.eml"))) == 1
    # which says so ("0 papers sent" alone reads as a digest that went wrong), with the note's subject
    assert '.html) (the quiet-day note, quiet_day = "note": No new papers arrived · ' in result.output, result.output
    # and status says what went out, not "written, 0 papers"
    status = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert status.exit_code == 0 and "written, a quiet-day note (no new papers had arrived)" in status.output, status.output


@pytest.mark.model
def test_send_serves_the_others_and_then_exits_1_for_a_broken_profile(tmp_path):
    config = _profiles(tmp_path)
    Store(tmp_path / "data" / "digest.db").close()  # a store that has read no alert yet
    config.write_text(config.read_text() + '[model]\nname = "all-MiniLM-L6-v2"\n')
    (tmp_path / "profiles" / "bob.toml").write_text('email = "bob@example.org"\nsend_at = "7.30"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--any-day", "--outbox", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "ada: 0 papers written" in result.output and len(list((tmp_path / "out").glob("ada-*.eml"))) == 1
    assert "1 profile error (above): the rest of the run went on" in result.output


def test_check_warns_when_real_mail_would_go_to_the_example_addresses(tmp_path):
    config = _profiles(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0 and "reserved example address" not in result.output  # no SMTP: demo, outbox
    config.write_text(config.read_text() + '[smtp]\nhost = "smtp.example.net"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    assert "ada.toml: email: ada@example.org is a reserved example address, so a sent digest bounces" in result.output
    assert "or move the example profiles out of" in result.output  # ada@example.org is the example profile's
    profile = tmp_path / "profiles" / "ada.toml"
    profile.write_text(profile.read_text().replace("ada@example.org", "me@lab.example"))  # a user's own profile
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "me@lab.example is a reserved example address" in result.output
    assert "move the example profiles" not in result.output


def test_check_says_whether_the_model_can_load_without_loading_it(tmp_path):
    config = _profiles(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "model: all-MiniLM-L6-v2+all-mpnet-base-v2: installed" in result.output  # the default, from the packages
    config.write_text(config.read_text() + '[model]\nname = "all-MiniLM-L6-v3"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0 and "model: all-MiniLM-L6-v3: installed" not in result.output
    assert "warning: model.name: 'all-MiniLM-L6-v3' is neither a bundled model" in result.output


def test_the_demo_never_writes_into_the_store_named_by_the_environment(tmp_path, monkeypatch):
    """$DIGEST_DATA_DIR may be the service's real store: the demo's own --data-dir (or a global one typed on the
    command line) wins over it, and without either the demo keeps to ./demo-data."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "profiles").mkdir()
    monkeypatch.setenv("DIGEST_DATA_DIR", str(tmp_path / "prod"))
    monkeypatch.chdir(tmp_path)
    demo = ["--config", "/dev/null"]
    rest = ["--inbox", "inbox", "--profiles", "profiles"]
    for args, where in ((demo + ["demo", "--data-dir", "mine"] + rest, "mine"),
                        (demo + ["--data-dir", "typed", "demo"] + rest, "typed"),
                        (demo + ["demo"] + rest, "demo-data")):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert (tmp_path / where / "digest.db").is_file(), (args, result.output)
    assert not (tmp_path / "prod").exists()


def test_the_demo_does_not_read_the_real_setups_config_toml_but_reads_one_given_with_config(tmp_path, monkeypatch):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "profiles").mkdir()
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.delenv("DIGEST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[smtp]\nhots = "half-edited"\n')  # the real setup's, mid-edit
    rest = ["--inbox", "inbox", "--profiles", "profiles"]
    result = CliRunner().invoke(cli, ["demo", *rest])
    assert result.exit_code == 0 and "hots" not in result.output, result.output
    result = CliRunner().invoke(cli, ["--config", "config.toml", "demo", *rest])
    assert result.exit_code != 0 and "unknown key smtp.hots" in result.output, result.output


def test_parse_and_ingest_say_when_a_path_holds_no_email(tmp_path):
    """Random bytes named .mbox, an empty file and an empty folder each get a message saying what to give instead;
    nothing is silently read as nothing."""
    import random

    (tmp_path / "g.mbox").write_bytes(random.Random(0).randbytes(5000).replace(b"\nFrom ", b"\nfrom "))
    (tmp_path / "e.eml").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    paths = [str(tmp_path / name) for name in ("g.mbox", "e.eml", "empty")]
    result = CliRunner().invoke(cli, ["parse", *paths])
    assert result.exit_code == 1
    assert f"{tmp_path / 'g.mbox'}: not an email: no header lines" in result.output
    assert f"{tmp_path / 'e.eml'}: empty: there is nothing in it" in result.output
    assert f"{tmp_path / 'empty'}: no email found in it: give an .eml file, an mbox" in result.output
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", *paths])
    assert result.exit_code == 1
    assert "emails read: 2 (0 alerts, 0 already seen, 0 not paper alerts, 2 failed)" in result.output
    assert f"failed: {tmp_path / 'e.eml'}: empty: there is nothing in it" in result.output
    assert f"failed: {tmp_path / 'empty'}: no email found in it" in result.output
    # an empty file among good ones in a folder is named too, not skipped
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "alert.eml").write_bytes((REPO / "sample_inbox" / "04-biorxiv-subject-collection-alert.eml")
                                                   .read_bytes())
    (tmp_path / "inbox" / "blank.eml").write_bytes(b"\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "inbox")])
    assert result.exit_code == 1 and "emails read: 2 (1 alert" in result.output
    assert f"failed: {tmp_path / 'inbox' / 'blank.eml'}: empty: there is nothing in it" in result.output


def test_send_for_one_user_with_a_broken_profile_says_so_and_shows_only_their_errors(tmp_path):
    config = _profiles(tmp_path)
    Store(tmp_path / "data" / "digest.db").close()  # a store that has read no alert yet
    profiles = tmp_path / "profiles"
    (profiles / "zed.toml").write_text('email = "zed@example.org"\ntimezone = "Mars/Olympus"\n'
                                       '[[interests]]\nlabel = "Dust"\n')
    (profiles / "bob.toml").write_text('email = "bob@example.org"\nsend_at = "7.30"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--user", "zed", "--outbox",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert f"profile error: {profiles / 'zed.toml'}:2: timezone" in result.output
    assert "bob.toml" not in result.output  # somebody else's problem, not asked about
    assert "zed: the profile has the error above and no earlier good version to serve" in result.output
    assert "no profile for zed" not in result.output


def test_check_does_not_call_ok_a_profile_left_with_nothing_to_rank_with(tmp_path):
    (tmp_path / "lib.toml").write_text('email = "l@example.org"\nlibrary = "missing.bib"\n')
    result = CliRunner().invoke(cli, ["--config", "/dev/null", "check", "--profiles", str(tmp_path)])
    assert result.exit_code == 1
    assert "profile lib: nothing to rank with (0 interests, 0 seeds, 0 library papers" in result.output
    assert "profile lib: ok" not in result.output
    assert f"warning: {tmp_path / 'lib.toml'}: no interests, no seeds and no library paper" in result.output
    # with an interest the profile serves, but its library is not "ok" either
    (tmp_path / "lib.toml").write_text('email = "l@example.org"\nlibrary = "missing.bib"\n[[interests]]\nlabel = "x"\n')
    result = CliRunner().invoke(cli, ["--config", "/dev/null", "check", "--profiles", str(tmp_path)])
    assert result.exit_code == 1
    assert "profile lib: a library file is unusable (the error below); the rest of the profile serves (1 interest, " \
        "0 seeds, 0 library papers" in result.output
    assert "lib.toml:2: library:" in result.output


def test_a_bom_or_blank_lines_before_the_headers_do_not_hide_them(tmp_path):
    from pathlib import Path

    sample = (Path(__file__).resolve().parent.parent / "sample_inbox" / "04-biorxiv-subject-collection-alert.eml")
    raw = sample.read_bytes()
    expected = CliRunner().invoke(cli, ["parse", str(sample)]).output.split("\n", 1)[0].split(": ", 1)[1]
    assert expected.startswith("biorxiv, ") and not expected.startswith("biorxiv, 0 ")
    for name, prefix in (("bom.eml", b"\xef\xbb\xbf"), ("blank.eml", b"\n\n"), ("crlf.eml", b"\r\n"),
                         ("both.mbox", b"\xef\xbb\xbf\r\n")):
        path = tmp_path / name
        path.write_bytes(prefix + (b"From alerts@example.org Thu Nov  7 00:00:00 2024\n" if name.endswith("mbox")
                                   else b"") + raw)
        result = CliRunner().invoke(cli, ["parse", str(path)])
        assert result.exit_code == 0 and expected in result.output, (name, result.output)


def test_check_gives_every_profile_file_its_line_also_one_that_did_not_load(tmp_path):
    """A file with no interests or seeds, or with a Windows path in double quotes, did not load and had no line of
    its own among the profiles (only its error below): each file now has one, in its place by name."""
    (tmp_path / "ada.toml").write_text('email = "a@example.org"\n[[interests]]\nlabel = "x"\n')
    (tmp_path / "bob.toml").write_text('email = "b@example.org"\n')
    (tmp_path / "cat.toml").write_text('email = "c@example.org"\nlibrary = "C:\\Users\\c\\lib.bib"\n')
    result = CliRunner().invoke(cli, ["--config", "/dev/null", "--data-dir", str(tmp_path / "d"), "check",
                                      "--profiles", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("profile ")]
    assert [line.split(":")[0] for line in lines] == ["profile ada", "profile bob", "profile cat"], result.output
    assert lines[1] == "profile bob: broken (the error below); nothing serves it meanwhile (no earlier good version)"
    assert f"error: {tmp_path / 'cat.toml'}:2: not valid TOML" in result.output


def test_check_judges_a_contested_address_and_a_broken_file_as_the_service_does(tmp_path):
    from digest.config import load_settings

    config = _profiles(tmp_path)
    profiles = tmp_path / "profiles"
    ada = (profiles / "ada.toml").read_text()
    Store(load_settings(config).db_path).save_profile_texts({"ada": ada, "bob": ada.replace("ada@", "bob@")})
    (profiles / "aaa.toml").write_text(ada)  # a newcomer with ada's address, sorting before her
    (profiles / "bob.toml").write_text('email = "bob@example.org"\ntimezone = "Mars/Olympus"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert f"error: {profiles / 'aaa.toml'}:1: email: ada@example.org is already used by {profiles / 'ada.toml'}" \
        in result.output
    assert "profile ada: ok" in result.output
    assert "profile bob: broken (the error below); its last good version (to bob@example.org) serves meanwhile" in result.output


def test_check_warns_when_a_profile_names_another_address_than_its_digests_went_to(tmp_path):
    """ada.toml given to a new reader (another address): the links in the digests the earlier reader received
    would still vote and unsubscribe for the file's new reader. check says so, and how to tell the two apart; a
    subaddress of the same mailbox, or a digest never sent, is no reason to."""
    config = _profiles(tmp_path)
    profile = tmp_path / "profiles" / "ada.toml"
    store = Store(tmp_path / "data" / "digest.db")
    store.mark_digest(store.claim_digest("ada", "2024-03-27"), "sent", address="ada@example.org")
    store.mark_digest(store.claim_digest("ada", "2024-03-28"), "retry", error="451 later", address="old@example.org")
    store.close()
    assert "digests went to" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    profile.write_text(profile.read_text().replace("ada@example.org", "ada+papers@example.org"))
    assert "digests went to" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    profile.write_text(profile.read_text().replace("ada+papers@example.org", "zoe@example.org"))
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0
    assert (f"warning: {profile}: email: zoe@example.org, but this profile's digests went to ada@example.org (the "
            "last on 2024-03-27). The same reader at a new address: nothing to do") in result.output, result.output
    profile.rename(tmp_path / "profiles" / "zoe.toml")  # the fix for a new reader: their own user id
    assert "digests went to" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output


def test_check_suggests_seed_papers_to_a_profile_with_few(tmp_path):
    config = _profiles(tmp_path)  # ada: one interest, no seeds, no library
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0
    assert "tip: ada: 0 seed papers; papers the user saved teach the ranking most: add [[seeds]], or point " \
           "`library` at an export" in result.output
    profile = tmp_path / "profiles" / "ada.toml"
    profile.write_text(profile.read_text() + "".join(f'[[seeds]]\ntitle = "Paper {i}"\n' for i in range(10)))
    assert "tip:" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output


def test_every_help_shows_its_examples_one_per_line():
    # click rewraps a paragraph: two example commands ran together on one line until they were marked \b
    for name in cli.commands:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        joined = [line for line in result.output.splitlines() if line.strip().startswith("digest ")
                  and " digest " in line.strip()[7:]]
        assert joined == [], (name, joined)


def test_send_exits_1_on_every_run_while_todays_digest_stays_refused(tmp_path):
    # cron reports a refused digest on each run of the day, not only on the run that saw the refusal
    from digest.models import Paper, ScoredPaper
    from digest.profiles import load_profile, local_period

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.toml").write_text('email = "ada@uni.example.edu"\n[[interests]]\nlabel = "x"\n')
    store = Store(tmp_path / "data" / "digest.db")
    store.add_papers([Paper("A paper about sparse attention", arxiv_id="2501.00001")])
    period = local_period(load_profile(tmp_path / "profiles" / "ada.toml"))
    digest_id = store.claim_digest("ada", period)
    store.save_digest_items(digest_id, [ScoredPaper(store.get_papers(["arxiv:2501.00001"])["arxiv:2501.00001"], 0.5,
                                                    "why")], ["arxiv:2501.00001"], n_candidates=1, subject="s",
                            message_id="<frozen.digest.ada@example.org>")
    store.mark_digest(digest_id, "failed", error="RCPT TO refused: 550 5.1.1 no such user")
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(f'profiles_dir = "{tmp_path / "profiles"}"\ndata_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--outbox", str(tmp_path / "out")])
    assert "ada: refused earlier for this period, not tried again: RCPT TO refused: 550 5.1.1" in result.output, \
        result.output
    assert "`digest send --retry-failed`" in result.output and result.exit_code == 1
    # the mailbox was fixed: --retry-failed sends that day's digest (the same papers, frozen before the refusal)
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--outbox", str(tmp_path / "out"),
                                      "--retry-failed"])
    assert "ada: the digest refused earlier today is tried again" in result.output, result.output
    assert "ada: 1 paper written" in result.output and result.exit_code == 0, result.output
    again = CliRunner().invoke(cli, ["--config", str(config), "send", "--outbox", str(tmp_path / "out")])
    assert "ada: already delivered for this period" in again.output and again.exit_code == 0, again.output


def test_check_warns_when_digests_cannot_go_out_or_their_links_would_open_the_readers_own_machine(tmp_path):
    config = _profiles(tmp_path)
    base = config.read_text()
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0  # parse, ingest and rank still work: a warning, not an error
    assert "smtp.host is not set (nor outbox), so `digest send` and `digest run` cannot deliver" in result.output
    config.write_text(base + '[smtp]\nhost = "smtp.uni.example.edu"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "smtp.host is not set" not in result.output
    assert "web.base_url is http://127.0.0.1:8025, so the 👍/👎 and unsubscribe links of every digest sent open " \
           "the reader's own machine" in result.output
    config.write_text(base + '[smtp]\nhost = "smtp.uni.example.edu"\n[web]\nbase_url = "https://digest.uni.example.edu"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "base_url" not in result.output and "smtp.host" not in result.output, result.output
    # on this machine, without a proxy, the links must name the port `digest serve` listens on
    config.write_text(base + '[web]\nbase_url = "http://127.0.0.1:8125"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "web.base_url is http://127.0.0.1:8125, but `digest run` and `digest serve` listen on port 8025 " \
           "(web.port), so its links reach nothing; set web.port = 8125" in result.output, result.output
    config.write_text(base + '[web]\nbase_url = "http://127.0.0.1:8125"\nport = 8125\n')
    assert "reach nothing" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    config.write_text(base + '[web]\nbase_url = "http://localhost/digest"\n')  # a local proxy on port 80 may forward
    assert "reach nothing" not in CliRunner().invoke(cli, ["--config", str(config), "check"]).output


def test_check_says_which_seed_given_only_by_an_id_cannot_be_used_yet(tmp_path):
    config = _profiles(tmp_path)
    profile = tmp_path / "profiles" / "ada.toml"
    profile.write_text(profile.read_text() + '[[seeds]]\ndoi = "10.1234/not.in.store"\n'
                                             '[[seeds]]\ndoi = "10.1234/known"\ntitle = "A titled seed"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0
    assert f"{profile}:7: seed doi:10.1234/not.in.store is not in the store yet; add its title to the seed" \
        in result.output, result.output
    assert "10.1234/known" not in result.output
    # a profile whose only seed is such an id has nothing to rank with until the paper arrives: not "ok"
    profile.write_text('email = "ada@example.org"\n[[seeds]]\narxiv = "2301.99999"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert "profile ada: nothing to rank with yet (0 interests, 1 seed," in result.output, result.output
    assert f"warning: {profile}: no interests, and no seed the ranking can use yet (the warning above), so every " \
        "paper would rank as \"no strong match\"" in result.output
    profile.write_text('email = "ada@example.org"\n[[seeds]]\narxiv = "2301.99999"\ntitle = "Program synthesis"\n')
    assert "profile ada: ok (0 interests, 1 seed," in CliRunner().invoke(cli, ["--config", str(config), "check"]).output


def test_send_where_there_is_no_store_makes_and_sends_nothing(tmp_path):
    """`digest --data-dir dta send` (a typo) made a new store and key, and wrote every user the quiet-day note of
    an empty store (in a shared outbox, over the day's real digest): it stops, says why, and makes nothing."""
    config = _profiles(tmp_path)
    typo, out = tmp_path / "dta", tmp_path / "out"
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "send", "--any-day",
                                      "--outbox", str(out)])
    assert result.exit_code == 1, result.output
    assert f"{typo / 'digest.db'}: no such file: no store there yet, nothing has been read in under {typo}; check " \
        f"--data-dir {typo}" in result.output, result.output
    assert "nothing sent: a digest needs papers, which `digest poll` (or `digest ingest FILE`) reads in first" \
        in result.output
    assert not (typo / "digest.db").exists() and not (typo / "secret.key").exists() and not out.exists()


def test_an_alert_cut_short_is_stored_as_far_as_it_goes_named_in_status_and_completed_by_a_whole_copy(tmp_path):
    full = (REPO / "sample_inbox" / "01-arxiv-cs-daily-2024-11-07.eml").read_bytes()
    (tmp_path / "cut.eml").write_bytes(full[:20000])
    (tmp_path / "whole.eml").write_bytes(full)
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path}"\n')
    cut = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "cut.eml")])
    assert cut.exit_code == 0, cut.output  # not a failure: nothing is lost, the papers read are stored
    # and the embedding they cost later is said now
    assert re.search(r"^the \d+ new papers are embedded, once each, by the next `digest rank`, `send` or `run`",
                     cut.output, re.M), cut.output
    assert f"read in part: {tmp_path / 'cut.eml'}: cut short: the arXiv listing stops in the middle of entry" \
        in cut.output
    store = Store(tmp_path / "data" / "digest.db")
    n_cut = store.count_papers()
    last = max(store.papers_since("2000-01-01"), key=lambda row: row[1].abstract.endswith(" …"))[1]
    assert last.abstract.endswith(" …")
    status = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert f"read in part: {tmp_path / 'cut.eml'} (" in status.output and "UID" not in status.output
    whole = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "whole.eml")])
    assert whole.exit_code == 0 and "read in part" not in whole.output
    assert store.count_papers() > n_cut
    assert not store.find_paper(arxiv_id=last.arxiv_id).abstract.endswith(" …")  # the whole abstract now
    assert "read in part" not in CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    store.close()


def test_a_whole_copy_with_as_many_papers_still_completes_an_alert_cut_inside_its_last_entry(tmp_path):
    full = (REPO / "sample_inbox" / "01-arxiv-cs-daily-2024-11-07.eml").read_bytes()
    (tmp_path / "cut.eml").write_bytes(full[:full.rindex(b"\n\\\\ ( https://arxiv.org/abs/") + 1])
    (tmp_path / "whole.eml").write_bytes(full)
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path}"\n')
    cut = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "cut.eml")])
    assert "read in part" in cut.output and "papers: 180 new" in cut.output  # every entry, the last one cut
    whole = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "whole.eml")])
    assert "emails read: 1 (1 alert, 0 already seen" in whole.output, whole.output  # read again, not a duplicate
    assert "read in part" not in CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    # another whole copy is a duplicate of the whole one (not read again against the cut one)
    (tmp_path / "whole-again.eml").write_bytes(full + b"\n")
    assert "1 already seen" in CliRunner().invoke(cli, ["--config", str(config), "ingest",
                                                        str(tmp_path / "whole-again.eml")]).output
    # a cut copy read after the whole one changes nothing and is not listed either
    (tmp_path / "cut-again.eml").write_bytes(full[:30000])
    again = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(tmp_path / "cut-again.eml")])
    status = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "1 already seen" in again.output and "read in part" not in status
    # status names them as ingest does ("already seen", not "duplicates"), and one alert is "1 alert"
    assert "messages: 4 (2 alerts, 2 already seen)" in status, status
    # no poll yet, the papers read from files: said so, not a bare "never" after `make demo`
    assert "last poll: never (the papers came from files, read by `digest ingest` or `digest demo`" in status


def test_check_skips_editor_lock_files_and_names_a_pipe_instead_of_hanging(tmp_path):
    import os

    config = _profiles(tmp_path)
    profiles = tmp_path / "profiles"
    os.symlink("root@host.1234:1700000000", profiles / ".#ada.toml")  # Emacs's lock while ada.toml is edited
    (profiles / "ada.toml~").write_text("a backup")  # not *.toml: never read anyway
    os.mkfifo(profiles / "pipe.toml")  # opening it for reading would wait forever for a writer
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert "profile ada: ok" in result.output and ".#ada" not in result.output
    assert f"{profiles / 'pipe.toml'}: not a regular file (a named pipe or socket); move it away" in result.output


def test_a_password_written_where_the_variables_name_goes_is_refused_and_never_echoed(tmp_path, monkeypatch):
    from digest.config import load_settings

    config = _profiles(tmp_path)
    config.write_text(config.read_text() + '[imap]\nhost = "imap.example.org"\nusername = "ada"\n'
                      'password_env = "hunter2-S3cret!"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1 and "hunter2" not in result.output
    assert "imap.password_env must be the name of an environment variable" in result.output
    with pytest.raises(Exception) as info:
        load_settings(config).imap.password()
    assert "hunter2" not in str(info.value) and "not the password itself" in str(info.value)


def test_a_data_dir_that_is_a_file_is_named_by_check_and_is_one_error_line_for_the_other_commands(tmp_path):
    config = _profiles(tmp_path)
    (tmp_path / "data").write_text("not a folder")
    check = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert check.exit_code == 1 and "cannot hold the database" in check.output and "is a file, not a folder" \
        in check.output
    alert = Path(__file__).resolve().parent.parent / "sample_inbox" / "02-scholar-allamanis-related-research.eml"
    ingest = CliRunner().invoke(cli, ["--config", str(config), "ingest", str(alert)])
    assert ingest.exit_code != 0 and "Traceback" not in ingest.output
    assert "cannot keep the database there (it is a file, not a folder)" in ingest.output


def test_send_without_smtp_says_an_outbox_write_is_the_days_delivery_and_points_to_a_dry_run(tmp_path):
    config = _profiles(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "send"])
    assert result.exit_code == 2 and "smtp.host is not set in" in result.output
    assert "`digest send --dry-run` previews them (sends and records nothing)" in result.output
    assert "`--outbox DIR` writes them to files instead, and that counts as the day's delivery: no email follows " \
        "for that day" in result.output, result.output
    assert "no email follows for it" in CliRunner().invoke(cli, ["send", "--help"]).output


@pytest.mark.model
def test_a_dry_run_where_there_is_no_store_yet_previews_and_creates_nothing(tmp_path, monkeypatch):
    config = _profiles(tmp_path)
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--dry-run", "--any-day"])
    assert result.exit_code == 0 and "ada: would send 0 papers to ada@example.org" in result.output, result.output
    assert not (tmp_path / "data").exists()  # "sends and records nothing": no digest.db, no secret.key
    # a key that is configured is read as a send reads it: its error shows in the preview, not a throwaway key
    config.write_text(config.read_text() + f'[web]\nsecret_key_file = "{tmp_path / "missing.key"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--dry-run", "--any-day"])
    assert "cannot read the secret file" in result.output and result.exit_code != 0, result.output


def test_an_smtp_send_after_an_outbox_write_says_the_days_digest_went_to_that_file(tmp_path):
    from digest.profiles import load_profile, local_period

    config = _profiles(tmp_path)
    config.write_text(config.read_text() + '[smtp]\nhost = "smtp.uni.example.edu"\n')
    period = local_period(load_profile(tmp_path / "profiles" / "ada.toml"))
    written = tmp_path / "out" / f"ada-{period}.eml"
    store = Store(tmp_path / "data" / "digest.db")
    store.mark_digest(store.claim_digest("ada", period), "sent", path=str(written))  # a try with --outbox
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "send"])
    assert result.exit_code == 0, result.output
    assert f"ada: already delivered for this period, not sent again: it was written to a file, {written} (an " \
        "outbox file counts as the day's delivery, so no email follows for this period; the papers are in that " \
        "file)" in result.output, result.output


def test_check_says_a_profile_is_paused_by_an_unsubscribe_link_or_its_file(tmp_path):
    from datetime import UTC, datetime

    config = _profiles(tmp_path)
    ok = "profile ada: ok (1 interest, 0 seeds, daily at 07:00 UTC)"
    assert f"{ok}\n" in CliRunner().invoke(cli, ["--config", str(config), "check"]).output
    store = Store(tmp_path / "data" / "digest.db")
    store.pause_user("ada", via="web")
    store.close()
    today = datetime.now(UTC).date().isoformat()
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0
    assert f"{ok}; paused: unsubscribed by link (web) on {today}; `digest resume ada` to resume\n" in result.output, \
        result.output
    # unsubscribed under an earlier file name of the same address (dan.toml renamed ada.toml): delivery holds it too
    store = Store(tmp_path / "data" / "digest.db")
    store.resume_user("ada")
    store.pause_user("dan", via="email")
    store.save_profile_texts({"dan": (tmp_path / "profiles" / "ada.toml").read_text()})
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert f"{ok}; paused: unsubscribed by link (email) on {today}; `digest resume ada` to resume\n" in result.output, \
        result.output
    profile = tmp_path / "profiles" / "ada.toml"
    profile.write_text(profile.read_text().replace('[[interests]]', 'paused = true\n[[interests]]'))
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert f"{ok}; paused: paused = true in the file (set it to false to resume)\n" in result.output, result.output


def test_status_shows_the_last_digest_a_renamed_profile_had_under_its_earlier_name(tmp_path):
    """me.toml renamed eve.toml (the same address): `send` says the day's digest went out as user 'me', and status
    said `last: none yet` for eve."""
    config = _profiles(tmp_path)
    profiles = tmp_path / "profiles"
    (profiles / "ada.toml").rename(profiles / "eve.toml")
    store = Store(tmp_path / "data" / "digest.db")
    store.save_profile_texts({"ada": (profiles / "eve.toml").read_text()})  # ada's last good text: the same address
    store.mark_digest(store.claim_digest("ada", "2026-11-27"), "sent", path=str(tmp_path / "out" / "ada.eml"))
    store.mark_digest(store.claim_digest("bob", "2026-11-28"), "sent")  # another reader's: not eve's
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0
    assert "  last: 2026-11-27 written, at " in result.output and f" to {tmp_path / 'out' / 'ada.eml'} (as ada: an " \
        "earlier file name of this profile)\n" in result.output, result.output
    [eve] = json.loads(CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output)["users"]
    assert eve["last"]["period"] == "2026-11-27" and eve["last"]["as_user"] == "ada"
    # a digest under the current name, later than the earlier name's: that one, without the note
    store = Store(tmp_path / "data" / "digest.db")
    store.mark_digest(store.claim_digest("eve", "2026-11-28"), "sent")
    store.close()
    [eve] = json.loads(CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output)["users"]
    assert eve["last"]["period"] == "2026-11-28" and "as_user" not in eve["last"]


def test_status_says_a_quiet_day_note_went_out_not_zero_papers(tmp_path):
    """status said "last: 2026-11-27 sent, 0 papers" for the quiet-day note, which reads as a digest gone wrong."""
    config = _profiles(tmp_path)
    store = Store(tmp_path / "data" / "digest.db")
    digest_id = store.claim_digest("ada", "2026-11-27")
    store.save_digest_items(digest_id, [], [], n_candidates=40)
    store.mark_digest(digest_id, "sent")
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0
    assert "  last: 2026-11-27 sent, a quiet-day note (none of 40 recent papers cleared the bar), at " \
        in result.output, result.output
    assert "last poll: never (read alerts in with `digest poll` or `digest ingest PATH`" in result.output  # no papers


def test_ingest_into_a_new_data_directory_says_it_starts_a_new_store(tmp_path):
    """`digest --data-dir dta poll` (a typo) read mail into a new, empty store without a word."""
    config = _profiles(tmp_path)
    typo = tmp_path / "dta"
    mail = tmp_path / "nothing.eml"
    mail.write_bytes(b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot an alert\r\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "ingest", str(mail)])
    assert f"note: no store at {typo / 'digest.db'} yet: starting a new one there (from --data-dir {typo})" \
        in result.output, result.output
    again = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(typo), "ingest", str(mail)])
    assert "note: no store" not in again.output  # once it is there, nothing to say


def test_a_data_folder_on_a_read_only_mount_is_said_as_such_not_as_another_users_file(tmp_path):
    """A data folder on a file system mounted read-only (a real bind mount, in a user namespace) was said as a
    permission problem, 'digest.db is not writable by this user (root; it belongs to root) ... run digest as the
    user that owns the data folder': the wrong cause and a fix that cannot work."""
    config = _profiles(tmp_path)
    data = tmp_path / "data"
    mail = tmp_path / "nothing.eml"
    mail.write_bytes(b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot an alert\r\n")
    first = CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(data), "ingest", str(mail)])
    assert (data / "digest.db").exists(), first.output
    mount = f"mount --bind {data} {data} && mount -o remount,ro,bind {data} && exec \"$@\""
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh",
                           sys.executable, "-m", "digest", "--config", str(config), "--data-dir", str(data), "ingest",
                           str(mail)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    if "mount" in proc.stderr and "digest" not in proc.stderr:
        pytest.skip(f"cannot make a read-only bind mount in a user namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr
    assert f"{data / 'digest.db'}: digest.db is on a file system mounted read-only ({data}), so nothing can be " \
           "recorded" in proc.stderr and "remount it read-write (or point data_dir at a writable disk)" in proc.stderr
    assert "not writable by this user" not in proc.stderr, proc.stderr
    # the feedback server, which checks the files itself before it serves, says the same and the same fix
    serve = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh",
                            sys.executable, "-m", "digest", "--config", str(config), "--data-dir", str(data), "serve"], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parent.parent)
    assert serve.returncode != 0 and "mounted read-only" in serve.stderr, serve.stderr
    assert "remount it read-write" in serve.stderr and "run the server as the user" not in serve.stderr, serve.stderr


def test_check_on_a_read_only_mount_names_the_mount_and_the_flag_not_the_config_file_or_permissions(tmp_path):
    """`digest --data-dir DIR check` with DIR on a read-only mount said 'config: config.toml: broken' and
    'config.toml:N: data_dir = ... cannot hold the database (DIR is not writable by this user); create the folder
    ...' next to the store's own read-only line: a file that was not at fault, a key the flag overrode, the wrong
    cause and a fix that does not apply."""
    config = _profiles(tmp_path)
    data = tmp_path / "data"
    mail = tmp_path / "nothing.eml"
    mail.write_bytes(b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot an alert\r\n")
    CliRunner().invoke(cli, ["--config", str(config), "--data-dir", str(data), "ingest", str(mail)])
    assert (data / "digest.db").exists()
    mount = f"mount --bind {data} {data} && mount -o remount,ro,bind {data} && exec \"$@\""

    def check(data_dir):
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh",
                               sys.executable, "-m", "digest", "--config", str(config), "--data-dir", str(data_dir),
                               "check"], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)

    existing = check(data)
    if "mount" in existing.stderr and "digest" not in existing.stderr:
        pytest.skip(f"cannot make a read-only bind mount in a user namespace here: {existing.stderr.strip()}")
    said = existing.stdout + existing.stderr
    assert existing.returncode == 1 and f"config: {config}: ok" in said, said
    assert "digest.db is on a file system mounted read-only" in said and "cannot hold the database" not in said, said
    fresh = check(data / "new")  # no database there yet: only this check can say it
    said = fresh.stdout + fresh.stderr
    assert fresh.returncode == 1 and f"config: {config}: ok" in said, said
    assert f"--data-dir {data / 'new'} cannot hold the database ({data} is on a file system mounted read-only); " \
           "remount it read-write or choose another data_dir" in said, said
    assert "not writable by this user" not in said and "create the folder" not in said, said


def test_ctrl_c_during_a_poll_says_what_it_left_and_exits_130(tmp_path):
    """A poll stopped with Ctrl-C (here while the server has not greeted yet): one line on what is kept and
    what the next poll does, exit status 130 as a shell expects, no traceback and no click "Aborted!"."""
    import os
    import signal
    import socket

    with socket.socket() as silent:  # an IMAP server that accepts and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = tmp_path / "config.toml"
        config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path / "profiles"}"\n'
                          f'[imap]\nhost = "127.0.0.1"\nport = {silent.getsockname()[1]}\nsecurity = "plain"\n'
                          'username = "alerts"\npassword_env = "DIGEST_CTRL_C_TEST_PASSWORD"\ntimeout = 60\n')
        # Ctrl-C as a terminal delivers it: a run started in the background (`make test &`) has SIGINT ignored,
        # which the child would inherit, and Python then never raises KeyboardInterrupt
        proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "poll"],
                                env={**os.environ, "DIGEST_CTRL_C_TEST_PASSWORD": "secret"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            silent.settimeout(30)
            connection, _ = silent.accept()  # the poll is inside the command now, waiting for the greeting
            with connection:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "interrupted (Ctrl-C); the alerts read so far are stored and marked; the next poll reads the rest" in err
    assert "Traceback" not in err and "Aborted" not in err + out


def test_check_names_a_database_file_this_user_cannot_write(foreign_store):
    """Another user's database in the data folder (digest run as the wrong user): reads work, every write fails.
    (As root, the commands run without root's power to write any file: see the foreign_store fixture.)"""
    f = foreign_store
    config = f.base / "config.toml"
    config.write_text(f'data_dir = "{f.data}"\nprofiles_dir = "{f.base / "profiles"}"\n')
    config.chmod(0o644)
    proc = subprocess.run([*f.as_other, sys.executable, "-m", "digest", "--config", str(config), "check"],
                          cwd=f.base, capture_output=True, text=True, timeout=60)
    assert f"error: {f.db}: digest.db is not writable by this user ({f.user}; it belongs to {f.owner}), " \
           "so nothing can be recorded (polls, digests sent, votes)" in proc.stdout + proc.stderr, proc
    assert proc.returncode == 1
    assert f.files() == ["digest.db"]  # nothing of that user left beside it
    # the commands that read the store say the same, and leave nothing either
    (f.base / "outbox").mkdir()
    (f.base / "outbox").chmod(0o777)
    config.write_text(config.read_text() + f'outbox = "{f.base / "outbox"}"\n[web]\nenabled = false\n')
    for command in (["status"], ["votes", "ada"], ["rank", "ada"], ["run"]):
        proc = subprocess.run([*f.as_other, sys.executable, "-m", "digest", "--config", str(config), *command],
                              cwd=f.base, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.strip() == (
            f"error: {f.db}: digest.db is not writable by this user ({f.user}; it belongs to {f.owner}), so "
            "nothing can be recorded (polls, digests sent, votes); run digest as the user that owns the data "
            "folder, or give this user write access to the database's files"), (command, proc)
    assert f.files() == ["digest.db"]


def test_send_never_sends_a_day_older_than_one_already_delivered(tmp_path):
    """The profile moved west (or the clock was set back) after today's digest went out: `send` passes the older
    local day over, as the daemon and `digest status` do, instead of mailing a second, older-dated digest."""
    from datetime import UTC, datetime, timedelta

    config = _profiles(tmp_path)
    store = Store(tmp_path / "data" / "digest.db")
    today = datetime.now(UTC).date()
    later = store.claim_digest("ada", (today + timedelta(days=1)).isoformat())
    store.mark_digest(later, "sent")
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "send", "--any-day", "--outbox", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"ada: passed over, nothing sent: the digest of {today + timedelta(days=1)}, a later day than this one " \
           f"({today}), is done already" in result.output, result.output
    assert not list(tmp_path.glob("out/ada-*.eml"))
    store = Store(tmp_path / "data" / "digest.db")
    assert store.digest_for("ada", today.isoformat()) is None  # nothing claimed for the older day
