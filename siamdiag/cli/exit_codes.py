"""The exit codes, which are an API, as every command's --help states them."""
from __future__ import annotations

import click

EXIT_CODES = (("0", "the gate passed"), ("1", "the gate failed (a run's verdict is failing)"),
              ("2", "usage, config, input or environment error (no runs found, a full disk, ...)"),
              ("3", "internal error (a bug: please report it)"), ("130", "interrupted (Ctrl-C)"),
              ("143", "siamdiag train stopped by SIGTERM, after writing its log and a checkpoint"))


def format_exit_codes(formatter: click.HelpFormatter) -> None:
    with formatter.section("Exit codes"):
        formatter.write_dl(EXIT_CODES)


class ExitCodesCommand(click.Command):
    """A command whose --help ends with the exit codes."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        format_exit_codes(formatter)


class ExitCodesGroup(click.Group):
    """A group whose --help, and every subcommand's, ends with the exit codes."""

    command_class = ExitCodesCommand

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        format_exit_codes(formatter)
