"""Twisted with its epoll reactor."""

from __future__ import annotations

from twisted.internet import epollreactor

epollreactor.install()

from _common import answer, args  # noqa: E402
from twisted.internet import protocol, reactor  # noqa: E402

service, port = args()


class Hello(protocol.Protocol):
    def connectionMade(self) -> None:
        self.buffer = bytearray()

    def dataReceived(self, data: bytes) -> None:
        if service == "echo":
            self.transport.write(data)
            return
        self.buffer += data
        reply, close = answer(self.buffer)
        self.transport.write(reply)
        if close:
            self.transport.loseConnection()


factory = protocol.Factory.forProtocol(Hello)
reactor.listenTCP(port, factory, backlog=4096, interface="127.0.0.1")
reactor.run()
