"""trio's serve_tcp: a task per connection."""

from __future__ import annotations

import trio
from _common import answer, args

service, port = args()


async def handle(stream: trio.SocketStream) -> None:
    buffer = bytearray()
    try:
        async for data in stream:
            if service == "echo":
                await stream.send_all(data)
                continue
            buffer += data
            reply, close = answer(buffer)
            await stream.send_all(reply)
            if close:
                return
    except trio.BrokenResourceError:
        pass


async def main() -> None:
    await trio.serve_tcp(handle, port, host="127.0.0.1", backlog=4096)


try:
    trio.run(main)
except KeyboardInterrupt:
    pass
