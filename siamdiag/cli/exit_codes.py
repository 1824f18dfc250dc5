"""The exit codes, which are an API, as every command's --help states them, and SIGTERM, the
signal that has its own."""
from __future__ import annotations

import click

EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report a process it ended

EXIT_CODES = (("0", "the gate passed"), ("1", "the gate failed (a run's verdict is failing)"),
              ("2", "usage, config, input or environment error (no runs found, a full disk, a tracker refusing "
                    "--write-back, ...)"),
              ("3", "internal error (a bug: please report it)"), ("130", "interrupted (Ctrl-C)"),
              ("143", "stopped by SIGTERM: a line on stderr, no report half-written (train: after writing "
                      "its log and a checkpoint)"))


class Terminated(BaseException):
    """SIGTERM (a cancelled CI job, a scheduler, `docker stop`), raised where the command is so that
    it unwinds as from Ctrl-C: workers ended, temporary files removed, exit 143. A BaseException,
    so that no `except Exception` takes it for an error."""


def raise_terminated(signum, frame) -> None:
    raise Terminated


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
