"""One handler, two concurrency engines: a thread per client, then one epoll loop.

The handler never changes; only the engine name does.
"""

from concurrent.futures import ThreadPoolExecutor

import socketkit as sk


def shout(message: bytes, conn: sk.Connection) -> bytes:
    return message.upper()


def client_session(url: str, n: int) -> bytes:
    with sk.connect(url, codec=sk.Lines(), timeout=5) as client:
        return client.request(b"client %d says hi" % n)


for engine in ("threads", "epoll"):
    with sk.Server("tcp://127.0.0.1:0", shout, codec=sk.Lines(), engine=engine).start() as server:
        with ThreadPoolExecutor(50) as pool:
            replies = list(pool.map(lambda n: client_session(server.url, n), range(50)))
        stats = server.stats
    print(
        f"{engine:8} {len(replies)} clients served, first reply {replies[0]!r}, "
        f"{stats.messages_in} requests, {stats.bytes_out} bytes out"
    )
