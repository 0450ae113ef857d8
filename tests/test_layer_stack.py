"""The layer stack on its own, without a socket: the order bytes take through the layers."""

from __future__ import annotations

import threading
from typing import Any

from socketkit.layers import Layer
from socketkit.layers.stack import LayerStack


class Tag(Layer):
    """Wraps bytes going down in ``<name ...>``, strips one tag going up, and says hello of
    its own once it is fed, and goodbye when it is closed."""

    __slots__ = ("_out", "name")

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self._out = b""

    def feed(self, data: bytes) -> bytes:
        self._out += b"hello from " + self.name
        return data.removeprefix(b"<" + self.name + b" ").removesuffix(b">")

    def wrap(self, data: bytes) -> bytes:
        return b"<" + self.name + b" " + data + b">"

    def close(self) -> None:
        self._out += b"bye from " + self.name

    def take_output(self) -> bytes:
        out, self._out = self._out, b""
        return out


class Learns(Layer):
    __slots__ = ("learned",)
    readdresses = True

    def __init__(self) -> None:
        self.learned: Any = None

    @property
    def in_progress(self) -> bool:
        return self.learned is None

    @property
    def peer_address(self) -> Any:
        return self.learned


def stack_of(*names: str) -> tuple[LayerStack, list[bytes]]:
    wire: list[bytes] = []
    factories = tuple((lambda name=name: Tag(name)) for name in names)
    return LayerStack(factories, ("10.0.0.1", 1), wire.append), wire


def test_bytes_go_up_through_every_layer_nearest_the_socket_first() -> None:
    stack, wire = stack_of("low", "high")
    assert stack.feed(b"<low <high hi>>") == b"hi"
    # each layer's own bytes are wrapped by the layers below it only, and written at once
    assert wire == [b"hello from low", b"<low hello from high>"]


def test_the_handlers_bytes_go_down_through_every_layer_and_goodbyes_follow() -> None:
    stack, wire = stack_of("low", "high")
    stack.send(b"reply")
    stack.close()
    # goodbyes from the top down: the upper one (WebSocket's close frame) is wrapped by the
    # lower one (TLS) before that one says its own (close_notify)
    assert wire == [b"<low <high reply>>", b"<low bye from high>", b"bye from low"]


def test_a_lock_given_by_the_engine_is_held_for_every_write() -> None:
    lock = threading.RLock()
    held: list[bool] = []

    def write(data: bytes) -> None:
        held.append(lock._is_owned())  # type: ignore[attr-defined]

    stack = LayerStack((lambda: Tag("t"),), None, write, lock)
    stack.feed(b"<t x>")
    stack.send(b"y")
    stack.close()
    assert held == [True, True, True]


def test_the_real_peer_is_known_once_a_layer_learns_it() -> None:
    stack = LayerStack((Learns,), ("10.0.0.1", 1), lambda data: None)
    assert stack.readdresses
    assert stack.learned_peer(("10.0.0.1", 1)) == (False, None)
    learns = stack.find(Learns)
    assert learns is not None and stack.find(Tag) is None
    learns.learned = ("203.0.113.7", 4444)
    assert stack.learned_peer(("10.0.0.1", 1)) == (True, ("203.0.113.7", 4444))
