"""systemd integration: sockets passed by socket activation, and sd_notify.

Why without libsystemd: the protocol is two environment conventions and one
datagram. Socket activation (``sd_listen_fds``): ``LISTEN_PID`` names this
process, ``LISTEN_FDS`` counts the sockets, which start at fd 3, and
``LISTEN_FDNAMES`` names them (``FileDescriptorName=`` in the .socket unit).
``sd_notify``: a datagram such as ``READY=1`` to the unix socket in
``NOTIFY_SOCKET`` (``@`` starts an abstract name). The variables are removed
once read, so a child process does not take the sockets for its own.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["LISTEN_FDS_START", "Watchdog", "listen_fds", "notify", "watchdog_interval"]

LISTEN_FDS_START = 3
_lock = threading.Lock()
_passed: list[tuple[str, socket.socket]] | None = None  # read once per process


def listen_fds() -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed this process, as (name, socket); [] if none.

    Read once: later calls return the same sockets.
    """
    global _passed
    with _lock:
        if _passed is None:
            _passed = _read_passed_fds()
        return list(_passed)


def _read_passed_fds() -> list[tuple[str, socket.socket]]:
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    names = os.environ.get("LISTEN_FDNAMES", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if pid is None or count is None or not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    labels = names.split(":") if names else []
    passed = []
    for index in range(int(count)):
        fd = LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        label = labels[index] if index < len(labels) else f"fd{fd}"
        passed.append((label, socket.socket(fileno=fd)))
    return passed


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``) to systemd; False if
    there is no NOTIFY_SOCKET (not run by systemd with Type=notify) or sending failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if none is asked."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000


class Watchdog:
    """Pings systemd's watchdog from a daemon thread while the server serves."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="socketkit-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            notify("WATCHDOG=1")
