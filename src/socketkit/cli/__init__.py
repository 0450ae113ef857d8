"""The socketkit command: parse, build library objects, run. No logic of its own.

Errors: a mistake in the command line or in what it names (a bad URL, flag,
service, codec) prints one line and exits 2; a failure while running
(connection refused, address in use) prints one line and exits 1. No
tracebacks for these; ``--debug`` shows them.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from .bench import bench
from .clients import connect, info, listen, probe, send
from .relay import relay
from .serve import serve

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="socketkit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """socketkit: TCP, UDP and unix-socket servers and a netcat-class client."""


for command in (serve, connect, listen, relay, send, probe, info, bench):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    # --debug belongs to the group, but is accepted anywhere before a "--" (after a subcommand
    # too, where a user adds it to the line that failed)
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end]
    if debug:
        args = ["--debug", *[arg for arg in args[:end] if arg != "--debug"], *args[end:]]
    try:
        result = cli.main(args=args, prog_name="socketkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        if debug:
            raise
        hint = f" (see 'socketkit {exc.ctx.command.name} --help')" if exc.ctx and exc.ctx.parent else ""
        message = " ".join(exc.format_message().split())
        click.echo(f"socketkit: error: {message}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"socketkit: error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("socketkit: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0  # stdout closed early (e.g. piped into head): not an error
    return result if isinstance(result, int) else 0  # click returns a command's Exit code here
