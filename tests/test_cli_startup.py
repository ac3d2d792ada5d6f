"""Start-up: no ``--help`` imports torch (checked in a fresh child process per verb), and
the one-line help ``openpaf --help`` shows without importing a verb is the verb's own."""
import json
import subprocess
import sys

import click
import pytest

from helpers import CHILD_PRELUDE
from openpaf_cli.main import VERBS, main

CHILD = CHILD_PRELUDE + """
import json
from openpaf_cli.main import main
paths = json.loads(sys.argv[1])
for path in paths:
    try:
        main(path + ["--help"], prog_name="openpaf", standalone_mode=False)
    except SystemExit:
        pass
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""


def _help_paths(verb: str) -> list[list[str]]:
    cmd = main.get_command(click.Context(main), verb)
    subs = cmd.list_commands(click.Context(cmd)) if isinstance(cmd, click.Group) else []
    return [[verb]] + [[verb, s] for s in subs]


@pytest.mark.parametrize("verb", [None] + sorted(VERBS))
def test_help_does_not_import_torch(verb):
    paths = [[]] if verb is None else _help_paths(verb)
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout
    assert res.stdout.strip().endswith("NO-TORCH"), f"{paths} imported torch"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_lazy_short_help_is_the_commands_own(verb):
    cmd = main.get_command(click.Context(main), verb)
    assert VERBS[verb][2] == cmd.get_short_help_str(limit=200)
