"""asyncio with a Protocol (run with --uvloop for uvloop's libuv loop)."""

from __future__ import annotations

import asyncio
import signal
import sys

from _common import answer, args

service, port = args()


class Hello(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        if service == "echo":
            self.transport.write(data)
            return
        self.buffer += data
        reply, close = answer(self.buffer)
        self.transport.write(reply)
        if close:
            self.transport.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hello, "127.0.0.1", port, backlog=4096)
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with server:
        await stopped.wait()


if "--uvloop" in sys.argv:
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())
