"""What every command shares: turning user mistakes into one-line errors, URL
shorthand, and logging set-up."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ..endpoints import as_url
from ..errors import SocketkitError
from ..sessionlog import SessionLog

__all__ = [
    "Failure",
    "JsonFormatter",
    "configure_logging",
    "runtime_errors",
    "session_log",
    "session_log_options",
    "target_url",
    "tls_options",
    "usage_errors",
]

Command = TypeVar("Command", bound=Callable[..., Any])


class Failure(click.ClickException):
    """A runtime failure: exit code 1, one line."""

    exit_code = 1


def tls_options(command: Command) -> Command:
    """--tls, --tls-ca and --insecure: how a client speaks TLS (tls:// URLs turn it on too)."""
    command = click.option(
        "--insecure", is_flag=True, help="With TLS, accept any certificate (testing only: no protection)."
    )(command)
    command = click.option(
        "--tls-ca",
        metavar="FILE",
        help="With TLS, trust the CA certificates in FILE instead of the system's.",
    )(command)
    return click.option("--tls", "use_tls", is_flag=True, help="Speak TLS (tls://HOST:PORT does too).")(
        command
    )


def session_log_options(command: Command) -> Command:
    """-o/--output FILE and -x/--hexdump FILE, as ncat's."""
    command = click.option(
        "-x",
        "--hexdump",
        type=click.Path(dir_okay=False, writable=True),
        metavar="FILE",
        help="Write the session to FILE as hex, each chunk headed by its direction (> sent, < received).",
    )(command)
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        metavar="FILE",
        help="Write the session's bytes to FILE as they pass, both directions (as ncat -o).",
    )(command)


@contextmanager
def session_log(output: str | None, hexdump: str | None) -> Iterator[SessionLog | None]:
    """The log the options ask for (None: none), its file closed at the end."""
    if output and hexdump:
        raise click.UsageError("-o/--output and -x/--hexdump exclude each other: pick one")
    path = output or hexdump
    if path is None:
        yield None
        return
    with open(path, "wb") as file:
        yield SessionLog(file, hex_dump=hexdump is not None)


@contextmanager
def usage_errors() -> Iterator[None]:
    """ValueError/TypeError from building objects out of user input, or an optional
    dependency the chosen option needs (ImportError) → usage error (exit 2)."""
    try:
        yield
    except (ValueError, TypeError, ImportError) as exc:
        raise click.UsageError(str(exc)) from exc


@contextmanager
def runtime_errors() -> Iterator[None]:
    """socketkit's and the OS's errors while running → a runtime failure (exit 1)."""
    try:
        yield
    except SocketkitError as exc:
        raise Failure(str(exc)) from exc
    except OSError as exc:
        raise Failure(exc.strerror or str(exc)) from exc


def target_url(target: str, udp: bool = False) -> str:
    """A URL from what a netcat user types: a URL, ``host:port``, or a unix socket path;
    with ``-u`` a stream URL becomes its datagram twin."""
    url = as_url(target, "udp" if udp else "tcp")
    if udp and url.startswith("tcp://"):
        return "udp://" + url[len("tcp://") :]
    if udp and url.startswith("unix://"):
        return "unixgram://" + url[len("unix://") :]
    return url


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str, handler: logging.Handler | None = None) -> None:
    """Send socketkit's log to stderr (or ``handler``) as text or JSON lines."""
    logger = logging.getLogger("socketkit")
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
