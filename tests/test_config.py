import shutil
from pathlib import Path

import pytest

from digest.config import Secret, load_settings, read_secret
from digest.errors import ConfigError


def test_defaults_apply_when_no_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    settings = load_settings()
    assert settings.source == "(defaults)"
    assert settings.imap.security == "tls"
    assert settings.db_path.name == "digest.db"


def test_the_example_config_is_valid_and_complete():
    settings = load_settings("config.example.toml")
    assert settings.web.port == 8025
    assert settings.smtp.retries == 3


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\nhots = "mail.example.org"\n')
    with pytest.raises(ConfigError, match=r'unknown key smtp\.hots \(did you mean "host"\?\)'):
        load_settings(path)


def test_wrong_type_names_the_key_and_shows_an_example(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[imap]\nport = "993"\n')
    with pytest.raises(ConfigError, match=r'imap\.port has the wrong type \("993" is text \(in quotes\)\); for example: port = 993'):
        load_settings(path)


def test_every_mistake_of_a_config_is_reported_at_once_one_per_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "config.toml"
    path.write_text('colour = "blue"\n[imap]\nhost = "mail.example.org"\nport = "993"\nsecurity = "ssl"\n'
                    'folders = "INBOX"\n[smtp]\nhost = "smtp.example.org"\nsecurity = "plain"\nport = 99999\n'
                    '[web]\nbase_url = "example.org/digest"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in caught.value.problems]
    assert lines == ["1", "4", "5", "6", "10", "12", "9"]  # the keys, then the rules across keys
    assert "smtp.port must be from 1 to 65535" in caught.value.problems[4]
    check = subprocess.run([sys.executable, "-m", "digest", "--config", str(path), "check"], capture_output=True,
                           text=True, timeout=60)
    errors = check.stderr.strip().splitlines()
    assert check.returncode == 2 and len(errors) == 7 and all(e.startswith(f"error: {path}:") for e in errors)


def test_plain_transport_is_refused_for_a_remote_host(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\nhost = "smtp.example.org"\nsecurity = "plain"\n')
    with pytest.raises(ConfigError, match=r"config\.toml:3: smtp\.security = \"plain\" is only allowed for localhost"):
        load_settings(path)


def test_config_path_comes_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "/tmp/elsewhere"\n')
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    assert load_settings().data_dir == "/tmp/elsewhere"


def test_check_of_a_config_without_a_mailbox_warns_that_poll_cannot_read_alerts(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from digest.cli import cli

    shutil.copy("config.example.toml", tmp_path / "config.example.toml")
    monkeypatch.chdir(tmp_path)  # a fresh clone's folder: no my-profiles/ yet
    result = CliRunner().invoke(cli, ["--config", "config.example.toml", "check"])
    assert "warning: config.example.toml: imap.host is not set, so `digest poll` and `digest run` cannot read" \
        in result.output
    # the example config's profiles folder, before the user made it: how to make it
    example = Path(__file__).resolve().parent.parent / "profiles" / "ada.toml"  # outside the clone: its full path
    assert "error: my-profiles: profiles directory not found" in result.output and \
        f"(mkdir my-profiles && cp {example} my-profiles/yourname.toml)" in result.output, result.output


def test_settings_are_frozen():
    settings = load_settings("config.example.toml")
    with pytest.raises(AttributeError):
        settings.data_dir = "x"


def test_secrets_never_show_in_reprs(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "hunter2")
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\nhost = "localhost"\nusername = "me"\n')
    settings = load_settings(path)
    secret = settings.smtp.password()
    assert secret.reveal() == "hunter2"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in repr(settings)


def test_secret_from_a_file_and_missing_secret_explains_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("X_PW", raising=False)
    file = tmp_path / "pw"
    file.write_text("s3cret\n")
    assert read_secret("imap.password", "X_PW", str(file)).reveal() == "s3cret"
    with pytest.raises(ConfigError, match="set the environment variable X_PW or point imap.password_file in"):
        read_secret("imap.password", "X_PW", "")
    assert repr(Secret("x")) == "Secret('**********')"


@pytest.mark.parametrize("text", ["X_PW=s3cret\n", "export X_PW = s3cret\n"])
def test_a_secret_file_written_as_an_environment_file_is_said_not_sent_as_the_password(tmp_path, monkeypatch, text):
    """"DIGEST_IMAP_PASSWORD=..." in password_file only gave "login failed": the whole line was the password."""
    monkeypatch.delenv("X_PW", raising=False)
    file = tmp_path / "pw"
    file.write_text(text)
    with pytest.raises(ConfigError, match=r"imap\.password: the secret file .*pw holds X_PW=\.\.\. \(an environment "
                                          r"file\); write the secret alone on its first line"):
        read_secret("imap.password", "X_PW", str(file))
    file.write_text("X_PWs3cret\n")  # a password that merely starts with the name is the password
    assert read_secret("imap.password", "X_PW", str(file)).reveal() == "X_PWs3cret"


def test_an_empty_secret_file_is_an_error_not_an_empty_password(tmp_path, monkeypatch):
    monkeypatch.delenv("X_PW", raising=False)
    file = tmp_path / "pw"
    file.write_text("\n")
    with pytest.raises(ConfigError, match=r"imap\.password: the secret file .*pw is empty"):
        read_secret("imap.password", "X_PW", str(file))
    # an optional secret (the link-signing key) left empty falls back as if unset, as it always did
    assert read_secret("web.secret_key", "X_PW", str(file), required=False) is None


def test_digest_check_reports_secret_and_ca_files_the_servers_need(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from digest.cli import cli

    monkeypatch.delenv("DIGEST_IMAP_PASSWORD", raising=False)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.toml").write_text('email = "ada@uni.example.edu"\n[[interests]]\nlabel = "x"\n')
    (tmp_path / "empty").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(f'profiles_dir = "{tmp_path / "profiles"}"\ndata_dir = "{tmp_path / "data"}"\n'
                      '[imap]\nhost = "imap.uni.example.edu"\npassword_file = "/nonexistent/pw"\n'
                      f'[smtp]\nhost = "smtp.uni.example.edu"\nusername = "d"\npassword_file = "{tmp_path / "empty"}"\n'
                      'ca_file = "/nonexistent/ca.pem"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert "config.toml: broken (the errors below)" in result.output
    assert "config.toml:5: imap.password: cannot read the secret file /nonexistent/pw" in result.output
    assert "config.toml:9: smtp.password: the secret file" in result.output and "is empty" in result.output
    assert "config.toml:10: smtp.ca_file: no such file /nonexistent/ca.pem" in result.output
    assert "profile ada: ok" in result.output  # the profiles are still checked
    # fixed: check passes
    (tmp_path / "pw").write_text("s3cret\n")
    config.write_text(config.read_text().replace("/nonexistent/pw", str(tmp_path / "pw"))
                      .replace(str(tmp_path / "empty"), str(tmp_path / "pw")).replace('ca_file = "/nonexistent/ca.pem"\n', ""))
    fixed = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert fixed.exit_code == 0, fixed.output
    assert "config.toml: ok" in fixed.output
    # a password only in the service's environment: a warning here, not an error
    config.write_text(config.read_text().replace(f'password_file = "{tmp_path / "pw"}"\n', "", 1))
    env_only = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert env_only.exit_code == 0, env_only.output
    assert "warning: imap.password: the environment variable DIGEST_IMAP_PASSWORD is not set in this shell" \
        in env_only.output


def test_generated_secret_key_is_kept_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    settings = load_settings(None, data_dir=str(tmp_path))
    first = settings.web.secret_key(tmp_path).reveal()
    assert len(first) == 64
    assert settings.web.secret_key(tmp_path).reveal() == first
    assert oct((tmp_path / "secret.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("text, message", [
    # every link of every digest starts with base_url: a bare host name would make them all dead
    ('[web]\nport = 8025\nbase_url = "digest.example.org"\n',
     r"config\.toml:3: web\.base_url must be the absolute address .* with http:// or https://"),
    ('[web]\nbase_url = "ftp://digest.example.org"\n', r"config\.toml:2: web\.base_url"),
    ('[imap]\nhost = "imap.example.org"\nport = -5\n', r"config\.toml:3: imap\.port must be from 1 to 65535 \(got -5\)"),
    ('[imap]\npoll_minutes = 0\n', r"config\.toml:2: imap\.poll_minutes must be at least 0\.5"),
    ('[smtp]\nretries = -1\n', r"smtp\.retries must be from 0 to 20"),
    ('[ranking]\ndefault_max_items = 0\n', r"ranking\.default_max_items must be from 1 to 100"),
    # 0 would skip every digest: the send job runs a few milliseconds after its time
    ('[schedule]\ngrace_minutes = 0\n', r"schedule\.grace_minutes must be from 1 to 1440"),
    # the classic TOML slip: a top-level key below a [table] belongs to that table
    ('[schedule]\ngrace_minutes = 60\ndata_dir = "/srv/digest"\n',
     r"config\.toml:3: unknown key schedule\.data_dir \(data_dir is a top-level key: move it above"),
    ('[imap]\nhost = "a"\n[smtp]\nhost = "b"\nport = "465"\n', r"config\.toml:5: smtp\.port has the wrong type"),
    # what would break every digest's headers at send time is refused at load, with the key
    ('[smtp]\nfrom_addr = "not an address"\n', r"config\.toml:2: smtp\.from_addr must be one email address"),
    ('[smtp]\nfrom_addr = "Digest <d@example.org>"\n', r"config\.toml:2: smtp\.from_addr must be one email"),
    ('[smtp]\nfrom_name = "Paper\\ndigest"\n', r"config\.toml:2: smtp\.from_name must be one line"),
    ('[web]\nreply_address = "nope"\n', r"config\.toml:2: web\.reply_address must be one email address"),
    # a server written as a URL or with its port never connects: said at load, not at the first poll
    ('[imap]\nhost = "imaps://imap.gmail.com"\n',
     r'config\.toml:2: imap\.host is the server\'s name only, without a scheme .* write host = "imap\.gmail\.com"'),
    ('[smtp]\nhost = "smtp:mail.example.org"\n', r'config\.toml:2: smtp\.host .* write host = "mail\.example\.org"'),
    ('[smtp]\nhost = "smtp.example.org:587"\n',
     r'config\.toml:2: smtp\.host .*the port goes in its own key .*host = "smtp\.example\.org" and port = 587'),
    ('[imap]\nhost = "[::1]:10143"\n', r'imap\.host .*host = "::1" and port = 10143'),
    ('[imap]\nhost = "imap.example.org/inbox"\n', r"imap\.host must be a server name or address, without spaces"),
    ('data_dir = ""\n', r"config\.toml:1: data_dir must name a folder"),
    ('profiles_dir = " "\n', r"config\.toml:1: profiles_dir must name a folder"),
])
def test_errors_name_the_line_and_values_out_of_range_are_refused(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_a_config_file_that_is_not_utf8_or_not_a_file_is_one_clear_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"[model]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"config\.toml:2: not UTF-8 text \(byte b'\\xe9' at column 6, e\.g\. "
                                          r"Latin-1 from an older editor\); save the file as UTF-8"):
        load_settings(path)
    path.write_bytes("[model]\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"config\.toml: UTF-16 text \(as Windows Notepad saves \"Unicode\"\); save "
                                          r"the file as UTF-8"):
        load_settings(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match=r"config\.toml: cannot read the config file \(Is a directory\)"):
        load_settings(path)


def test_an_absolute_base_url_with_a_path_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[web]\nbase_url = "https://example.org/digest"\n')
    assert load_settings(path).web.base_url == "https://example.org/digest"


def test_nan_or_inf_for_a_timeout_or_interval_is_refused_with_the_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[imap]\ntimeout = nan\npoll_minutes = inf\n[smtp]\nretry_backoff = nan\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    for line, key in ((2, "imap.timeout"), (3, "imap.poll_minutes"), (5, "smtp.retry_backoff")):
        assert f"config.toml:{line}: {key} must be a finite number" in message


def test_a_config_nested_too_deep_for_the_toml_reader_is_one_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(ConfigError, match=r"config\.toml: .*nested"):
        load_settings(path)


def test_an_ipv6_address_is_a_host_and_a_port_of_the_other_security_mode_is_warned_about(tmp_path, monkeypatch):
    from digest.config import config_problems

    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "x")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "x")
    path = tmp_path / "config.toml"
    path.write_text('[imap]\nhost = "::1"\nsecurity = "plain"\nport = 143\n'
                    '[smtp]\nhost = "smtp.example.org"\nport = 465\nsecurity = "starttls"\nusername = "me"\n')
    problems, warnings = config_problems(load_settings(path))
    assert not problems
    assert [w for w in warnings if "port" in w] == [
        f'{path}:7: smtp.port = 465 is the usual implicit TLS port, but security = "starttls": set security = "tls", '
        "or port = 587 for STARTTLS (unless your provider really uses this pair)"]
    path.write_text('[imap]\nhost = "imap.example.org"\nport = 143\n')
    assert any(w.startswith(f'{path}:3: imap.port = 143 is the usual STARTTLS port, but security = "tls"')
               for w in config_problems(load_settings(path))[1])


def test_a_short_link_signing_key_is_warned_about(tmp_path, monkeypatch):
    from digest.config import config_problems

    def key_warnings():
        return [w for w in config_problems(load_settings(path))[1] if "random bytes" in w]

    path = tmp_path / "config.toml"
    path.write_text("[web]\n")
    long = "0123456789abcdef" * 4
    monkeypatch.setenv("DIGEST_SECRET_KEY", f"short,{long}")
    assert key_warnings() == ["web.secret_key: in $DIGEST_SECRET_KEY, the newest is 5 characters: a link shows what "
                              "it signs, so a short key can be guessed offline and links forged (every listed key "
                              "verifies them); use 32 random bytes (openssl rand -hex 32), and drop an old short key "
                              "rather than keep it for its links"]
    monkeypatch.setenv("DIGEST_SECRET_KEY", f"{long},short")  # an old key verifies links too: as bad
    assert "the newest" not in key_warnings()[0] and "older key 2 is 5 characters" in key_warnings()[0]
    monkeypatch.setenv("DIGEST_SECRET_KEY", f",{long},")  # empty entries are no keys
    assert key_warnings() == []
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    (tmp_path / "key").write_text("tiny\n")
    path.write_text(f'[web]\nsecret_key_file = "{tmp_path / "key"}"\n')
    assert any(f"in {tmp_path / 'key'}, the newest is 4 characters" in w for w in key_warnings())


def test_a_default_max_items_that_gmail_would_clip_is_warned_about(tmp_path):
    from digest.config import config_problems

    path = tmp_path / "config.toml"
    path.write_text("[ranking]\ndefault_max_items = 50\n")
    assert any("ranking.default_max_items = 50: an email of more than about 30 papers" in w
               for w in config_problems(load_settings(path))[1])
    other = tmp_path / "other.toml"
    other.write_text("[ranking]\ndefault_max_items = 20\n")
    assert not any("ranking.default_max_items =" in w for w in config_problems(load_settings(other))[1])


def test_a_reply_address_the_poller_does_not_read_is_warned_about(tmp_path, monkeypatch):
    """web.reply_address = votes@..., while imap.username is alerts@...: every reply with "+1 -3" and every
    prepared vote email went to a mailbox digest never reads, and `digest check` said nothing (votes lost without
    a word). A subaddress of the polled account, or the account itself, is read: no warning."""
    from click.testing import CliRunner

    from digest.cli import cli
    from digest.config import config_problems

    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "pw")
    path = tmp_path / "config.toml"
    server = '[imap]\nhost = "imap.example.org"\nusername = "Alerts@example.org"\n[web]\n'
    (tmp_path / "profiles").mkdir()
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{tmp_path / "profiles"}"\n'
                    + server + 'reply_address = "votes@example.org"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert f"warning: {path}:7: web.reply_address is votes@example.org, but the poller reads the mailbox of " \
           'alerts@example.org (imap.username)' in result.output, result.output
    assert 'else set reply_address = "alerts@example.org"' in result.output
    for same in ("alerts@example.org", "alerts+votes@EXAMPLE.org"):
        path.write_text(server + f'reply_address = "{same}"\n')
        assert not any("web.reply_address is" in w for w in config_problems(load_settings(path))[1]), same
    path.write_text('[imap]\nhost = "imap.example.org"\nusername = "jdoe"\n[web]\nreply_address = "j@example.org"\n')
    assert not any("web.reply_address is" in w for w in config_problems(load_settings(path))[1])  # a login, no address


def test_a_mistyped_config_path_is_named_without_suggesting_a_file_under_the_typo(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "confg.toml")
    assert str(info.value) == (f"{tmp_path / 'confg.toml'}: no such file (check the path given with --config or "
                               "DIGEST_CONFIG; to start a config, copy config.example.toml)")
    (tmp_path / "config.toml").write_text("")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "confg.toml")
    assert f"DIGEST_CONFIG; did you mean {tmp_path / 'config.toml'}? to start a config, copy" in str(info.value)
    monkeypatch.setenv("DIGEST_CONFIG", str(tmp_path / "nowhere" / "c.toml"))  # a folder that is not there either
    with pytest.raises(ConfigError, match=r"c\.toml: no such file \(check the path"):
        load_settings()


def test_relative_paths_in_a_config_of_another_folder_are_warned_about_with_where_they_point(tmp_path, monkeypatch):
    from digest.config import config_problems

    home, elsewhere = tmp_path / "srv", tmp_path / "project"
    home.mkdir()
    elsewhere.mkdir()
    path = home / "config.toml"
    path.write_text(f'data_dir = "{home / "data"}"\nprofiles_dir = "my-profiles"\n')

    def relative_warnings(settings):
        return [w for w in config_problems(settings)[1] if "relative paths" in w]

    monkeypatch.chdir(home)  # run where the config is: the paths mean what its writer saw
    assert relative_warnings(load_settings(path)) == []
    monkeypatch.chdir(elsewhere)
    assert relative_warnings(load_settings(path)) == [
        f"{path}:2: profiles_dir = \"my-profiles\" ({elsewhere / 'my-profiles'}): relative paths are taken from the "
        f"folder digest runs in ({elsewhere}), not from the config file's ({home}), so a command run from another "
        f"folder uses other ones; run digest from {home} (a service: WorkingDirectory={home}), or write absolute paths"]
    # a data_dir the file leaves out is the default "data", relative too; --data-dir is meant from here
    path.write_text('profiles_dir = "/etc/digest/profiles"\n')
    assert "data_dir = \"data\"" in relative_warnings(load_settings(path))[0]
    assert relative_warnings(load_settings(path, data_dir="store-here")) == []
