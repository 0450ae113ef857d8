"""The websockets library's echo server, for bench/websocket_compare.py: its asyncio server or
its sync (a thread per connection) one. Usage: websockets_echo.py asyncio|sync PORT [deflate]
(with deflate, its permessage-deflate is on, as by its default; without, off)."""

from __future__ import annotations

import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection as AsyncConnection
from websockets.asyncio.server import serve as serve_async
from websockets.sync.server import ServerConnection as SyncConnection
from websockets.sync.server import serve as serve_sync

flavour, port = sys.argv[1], int(sys.argv[2])
compression = "deflate" if sys.argv[3:] == ["deflate"] else None


async def echo_async(ws: AsyncConnection) -> None:
    async for message in ws:
        await ws.send(message)


def echo_sync(ws: SyncConnection) -> None:
    for message in ws:
        ws.send(message)


async def main() -> None:
    async with serve_async(echo_async, "127.0.0.1", port, compression=compression) as server:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, server.close)
        await server.wait_closed()


if flavour == "asyncio":
    asyncio.run(main())
else:
    with serve_sync(echo_sync, "127.0.0.1", port, compression=compression) as server:
        signal.signal(signal.SIGINT, lambda *_: server.shutdown())
        server.serve_forever()
