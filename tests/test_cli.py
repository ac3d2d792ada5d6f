"""Every verb (and sub-verb) answers --help, and --version works, without a traceback."""
import click
import pytest
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf import __version__


def _paths(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):       # main imports its verbs lazily
        cmd = group.get_command(ctx, name)
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _paths(cmd, prefix + (name,))


VERBS = sorted(_paths(main))


def test_all_expected_verbs_exist():
    names = {p[0] for p in VERBS}
    assert {"infer", "eval", "train", "benchmark", "export", "weights"} <= names
    assert ("weights", "import") in VERBS and ("weights", "export") in VERBS


@pytest.mark.parametrize("path", VERBS, ids=" ".join)
def test_help(path):
    res = CliRunner().invoke(main, list(path) + ["--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "Traceback" not in res.output


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output


def test_usage_errors_have_their_own_exit_code():
    """Issue 21: usage errors exited 2, which infer documents as "some inputs failed"."""
    from openpaf_cli.main import USAGE_EXIT
    assert USAGE_EXIT not in (0, 1, 2, 130)
    for args in (["infer", "x.jpg", "--scales", "nan"], ["nope"], ["eval"],
                 ["eval", "--ann", __file__], ["weights", "import"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == USAGE_EXIT, (args, res.output)
        assert "Usage:" in res.output or "Error" in res.output


def test_ctrl_c_exits_130_in_every_command(monkeypatch, tmp_path):
    """Issue 21: eval and train exited 1 ("Aborted!") on Ctrl-C, where infer exits 130."""
    import openpaf.evaluate
    import openpaf.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(openpaf.evaluate, "evaluate", interrupted)
    monkeypatch.setattr(openpaf.train, "resume_info", interrupted)
    ann = tmp_path / "a.json"
    ann.write_text("{}")
    for args in (["eval", "--ann", str(ann), "--oracle", "-q"],
                 ["train", "--resume", str(tmp_path)]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 130 and "interrupted" in res.output, (args, res.output)
