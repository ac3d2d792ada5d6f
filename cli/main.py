"""The ``openpaf`` command group. Each verb lives in its own module, imported only when
that verb runs (or shows its help), so ``openpaf --help`` starts without torch, numpy or
OpenCV."""
import importlib

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



# verb -> (module of cli/, command attribute, one-line help shown by `openpaf --help`;
# tests/test_cli_startup.py checks each line against the command's own docstring).
VERBS = {
    "infer": ("infer", "infer",
              "Detect people in INPUTS and write OpenPose-style JSON and rendered outputs."),
    "eval": ("eval_cmd", "eval_cmd",
             "Evaluate keypoint AP (COCOeval, OKS) on a COCO-format annotation file."),
    "weights": ("weights_cmd", "weights", "Import, export and inspect model weights."),
    "benchmark": ("benchmark_cmd", "benchmark",
                  "Measure speed: per-stage pipeline times, FPS, GFLOP/s and decoder "
                  "crowd scaling."),
    "export": ("export_cmd", "export",
               "Export heatmaps and PAFs of the last stage to ONNX with dynamic "
               "batch/height/width."),
    "train": ("train_cmd", "train",
              "Train a Part Affinity Field network on COCO-format keypoint data."),
}


class LazyGroup(_Group):
    """A group whose verbs (``VERBS``) are imported on first use."""

    def list_commands(self, ctx):
        return sorted(set(VERBS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands or name not in VERBS:
            return self.commands.get(name)
        module, attr, _ = VERBS[name]
        command = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        self.add_command(command, name)
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, VERBS[name][2] if name in VERBS and name not in self.commands
                 else self.commands[name].get_short_help_str(formatter.width))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openpaf")
def main():
    """openpaf: multi-person pose estimation with Part Affinity Fields."""


if __name__ == "__main__":
    main()
