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
