import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from digest.cli import cli


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
