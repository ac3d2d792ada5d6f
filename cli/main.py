"""The ``openpaf`` command group. Each verb lives in its own module."""
import click

from openpaf import __version__

# Exit code of a usage error (bad option or argument): EX_USAGE, apart from 1 (error) and
# 2 (infer/eval: some inputs failed), which click would otherwise share.
USAGE_EXIT = 64


class _Group(click.Group):
    """A command group whose usage errors, wherever raised, exit with ``USAGE_EXIT``, and
    whose commands exit 130 on Ctrl-C."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as e:
            e.exit_code = USAGE_EXIT
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            e.exit_code = USAGE_EXIT
            raise
        except KeyboardInterrupt:               # Ctrl-C: 130 in every command, as infer
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openpaf")
def main():
    """openpaf: multi-person pose estimation with Part Affinity Fields."""


def _register():
    # One line per verb module (each defines a click command named like the module).
    from . import infer
    main.add_command(infer.infer)
    from . import eval_cmd
    main.add_command(eval_cmd.eval_cmd)
    from . import weights_cmd
    main.add_command(weights_cmd.weights)
    from . import benchmark_cmd
    main.add_command(benchmark_cmd.benchmark)
    from . import export_cmd
    main.add_command(export_cmd.export)
    from . import train_cmd
    main.add_command(train_cmd.train)


_register()

if __name__ == "__main__":
    main()
