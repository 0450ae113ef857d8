"""The byte layers under the codec (TLS, PROXY) as a session meets them, and STARTTLS.

Why a part of its own: the layers themselves are a stack
(:class:`~socketkit.layers.stack.LayerStack`); what the session adds is what
their progress means for the connection: a handshake runs under
read_timeout, an error is bad input, a PROXY header readdresses the peer and
counts it against max_connections_per_ip.
"""

from __future__ import annotations

from ..errors import ProtocolError, RemoteProtocolError
from ..layers.stack import LayerStack, LayerT
from ..layers.tls import TlsLayer
from .state import SessionState

__all__ = ["Layered"]


class Layered(SessionState):
    """Bytes up through the layers, and what the layers learned."""

    __slots__ = ()

    def layer(self, kind: type[LayerT]) -> LayerT | None:
        """This connection's layer of class ``kind`` (``TlsLayer``, ``ProxyProtocolLayer``), if any:
        what it learned (TLS version, the PROXY header's TLVs)."""
        return None if self.layers is None else self.layers.find(kind)

    def _through_layers(self, data: bytes, now: float) -> bytes:
        """Wire bytes up through the layers: what reaches the codec, b"" if nothing does
        (then what the layers did is settled here: a handshake, an error, the stream's end)."""
        stack = self.layers
        assert stack is not None
        try:
            data = stack.feed(data)
        except ProtocolError as exc:
            stack.write_own()  # e.g. the TLS alert that says why
            self.bad_input(exc)
            return b""
        if stack.timed and stack.due() < self.timer_at:  # a layer's clock started (a WebSocket's
            self.transport.deadline_moved()  # keepalive, at its upgrade): the timer comes sooner
        if not self.per_ip_counted and not self._readdress(stack):
            return b""
        if not data:
            busy = stack.in_progress
            if busy and not self.in_message:  # a handshake: read_timeout is its deadline
                self.in_message = True
                self.message_started = now
            elif not busy and self.in_message and not self._decoder.buffered:
                self.in_message = False  # the handshake is done; no message has begun
            if stack.ended:
                self._end_of_stream()
        return data

    def _begin_tls(self, more_came: bool) -> None:
        """STARTTLS: the TLS layer goes on top of the stack, once the output of the event that
        asked for it was written in the clear (the go-ahead), and the peer's next bytes are
        its handshake. Anything the peer sent after its request and before TLS is refused:
        it is what someone on the path would inject (CVE-2011-0411's kind)."""
        context, self._upgrade = self._upgrade, None
        if context is None or self._closed:
            return
        if more_came or self._decoder.buffered or self._deferred:
            self.bad_input(RemoteProtocolError("data after the request to start TLS, before the handshake"))
            return
        if self.layers is None:
            self.layers = self._new_stack((), self.peer)
        self.layers.push(TlsLayer(context))

    def _readdress(self, stack: LayerStack) -> bool:
        """Take the real peer a layer learned (a PROXY header) and count it against the
        per-IP limit; False if the connection was refused for it."""
        known, peer = stack.learned_peer(self.peer)  # (PROXY LOCAL leaves the socket's own peer)
        if not known:
            return True
        refusal = self._host.admit(peer, self.listener)
        if refusal is not None:
            self.bad_input(refusal)
            return False
        if peer is not self.peer:
            self.peer = peer
            self._peer_url = None
        self.per_ip_counted = True
        return True
