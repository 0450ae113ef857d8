"""asyncio with streams (StreamReader/StreamWriter)."""

from __future__ import annotations

import asyncio
import signal

from _common import answer, args

service, port = args()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = bytearray()
    try:
        while data := await reader.read(65536):
            if service == "echo":
                writer.write(data)
                await writer.drain()
                continue
            buffer += data
            reply, close = answer(buffer)
            writer.write(reply)
            await writer.drain()
            if close:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with server:
        await stopped.wait()


asyncio.run(main())
