"""chat: a chat page and its WebSocket on one port, for a browser (``socketkit serve chat``).

Why the broker underneath: a chat room is the broker's fan-out (a member that does not
keep up is cut off, never slowing the others; ``--backend redis://`` joins the rooms of
several processes), with members that are browsers. The WebSocket codec serves the
page too (``serve_http``): a plain GET of ``/`` gets the page, the upgrade makes the
connection a member, and each text message goes to every other member. The page is
one file of HTML and script, no build step; it shows what it sends itself, and what
others send as text (never as markup).
"""

from __future__ import annotations

from typing import Any

from ..codecs.http import HttpResponse, Request
from ..codecs.websocket import WebSocket
from ..connection import Connection
from . import Service
from .broker import Broker

__all__ = ["PAGE", "Chat"]

_MEMBER = "socketkit.chat.member"
MAX_MESSAGE = 4096  # characters of one chat line; longer ones are cut
#: a page that says nothing this long is pinged (the browser answers by itself), so a page
#: left open stays a member past idle_timeout, and a closed laptop's is let go
KEEPALIVE = 30.0

PAGE = b"""<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>socketkit chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: 0; min-height: 12rem; border: 1px solid #ccc; border-radius: 4px; }
  #log li { padding: .25rem .5rem; } #log li.mine { color: #555; }
  form { display: flex; gap: .5rem; } #text { flex: 1; font: inherit; padding: .4rem; }
  #status { color: #777; font-size: .9rem; }
</style>
<h1>socketkit chat</h1>
<p id="status">connecting...</p>
<ul id="log"></ul>
<form id="say"><input id="text" autocomplete="off" placeholder="Say something" autofocus>
<button>Send</button></form>
<script>
  const log = document.getElementById("log"), status = document.getElementById("status");
  const text = document.getElementById("text");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  function show(line, mine) {
    const item = document.createElement("li");
    item.textContent = line;  // text, never markup
    if (mine) item.className = "mine";
    log.appendChild(item);
    item.scrollIntoView();
  }
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onclose = (event) => { status.textContent = "disconnected (" + event.code + ")"; };
  ws.onmessage = (event) => {
    show(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data), false);
  };
  document.getElementById("say").onsubmit = (event) => {
    event.preventDefault();
    if (text.value && ws.readyState === WebSocket.OPEN) {
      ws.send(text.value);
      show(text.value, true);
      text.value = "";
    }
  };
</script>
</html>
"""


class Chat(Broker):
    """The page at ``/``; every text message from a member to every other member."""

    def on_connect(self, conn: Connection) -> None:
        self.start_relay()  # (members join at the upgrade, not at the connection)

    def on_message(self, conn: Connection, message: Any) -> None:
        if isinstance(message, Request):
            if message.header(b"upgrade") is not None:  # a WebSocket began: a member
                conn.state[_MEMBER] = True
                with self._lock:
                    self._members.append(conn)
            else:
                conn.send(page(message))
            return
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        if message:  # (an empty line is said to no one)
            super().on_message(conn, message[:MAX_MESSAGE])

    def on_close(self, conn: Connection, error: BaseException | None) -> None:
        if conn.state.get(_MEMBER):
            super().on_close(conn, error)


def page(request: Request) -> HttpResponse:
    """The answer to a plain HTTP request: the page, or why not."""
    if request.method not in (b"GET", b"HEAD"):
        return HttpResponse(405, b"405 Method Not Allowed\n", [("Allow", "GET, HEAD")])
    if request.target.split(b"?", 1)[0] not in (b"/", b"/index.html"):
        return HttpResponse(404, b"404 Not Found: the chat page is at /\n", [("Content-Type", "text/plain")])
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
    return HttpResponse(200, PAGE, headers, head_only=request.method == b"HEAD")


def service() -> Service:
    chat = Chat()
    return Service(
        "chat",
        "a chat page and its WebSocket",
        chat,
        codec=WebSocket(serve_http=True, ping_interval=KEEPALIVE),
        codec_selectable=False,
        backend=chat.use_backend,
    )
