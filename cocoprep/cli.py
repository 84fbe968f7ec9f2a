"""The `cocoprep` command line: a thin layer over the Python API.

Each command turns its options into one library call and the result into an exit
code. A `CocoprepError` becomes one line `Error: ...` on stderr and a non-zero
exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from cocoprep import __version__
from cocoprep.errors import CocoprepError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CocoprepError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; no finished output was replaced.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cocoprep")
def cli() -> None:
    """cocoprep: correct, fast, deterministic TFRecords for TensorFlow vision.

    Example:

        cocoprep convert fixtures/coco -o tfrecords
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="cocoprep")


# Commands are registered below, one section each.
# --- convert ---
# --- split ---
# --- verify / inspect / preview ---
# --- smoketrain ---


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
