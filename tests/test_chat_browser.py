"""`socketkit serve chat` in a real browser: two headless Chromium pages load the page and
join; one says something, the other shows it. Chromium is driven over its DevTools protocol
(a WebSocket itself, spoken by the websockets library's client); a screenshot of the page
that received the message is kept (SOCKETKIT_ARTIFACTS, else the test's temporary folder)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from conftest import peer_tool, wait_until
from test_cli import cli_server

WAIT = 20.0


class DevTools:
    """A browser's DevTools protocol over its WebSocket: commands, each to a page's session."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        number = next(self._ids)
        command: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        self.ws.send(json.dumps(command))
        while True:  # (events come between: skipped)
            answer = json.loads(self.ws.recv(timeout=WAIT))
            if answer.get("id") == number:
                assert "error" not in answer, answer
                return answer.get("result", {})

    def open(self, url: str) -> str:
        """A new page at ``url``; its session."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        session: str = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result["result"].get("value")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    browser = peer_tool("chromium")
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",  # (as root, in a container: Chromium's sandbox needs namespaces)
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",  # (the wss:// case's certificate is the tests' own CA's)
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        wait_until(lambda: active.exists() and len(active.read_text().splitlines()) == 2, WAIT, "Chromium")
        port, path = active.read_text().splitlines()
        with ws_connect(f"ws://127.0.0.1:{port}{path}", open_timeout=WAIT, max_size=None) as ws:
            yield DevTools(ws)
    finally:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss-deflate"])
def test_two_browser_pages_chat_through_serve_chat(
    chromium: DevTools, tmp_path: Path, test_pki: tuple[str, str], secure: bool
) -> None:
    """Over ws://, and over wss:// with compression (Chromium offers permessage-deflate)."""
    args = ["chat", "-l", "tcp://127.0.0.1:0"]
    if secure:
        args = ["chat", "-l", "tls://127.0.0.1:0", "--tls-cert", test_pki[1], "--deflate"]
    with cli_server(*args) as (_, urls):
        page = urls[0].replace("tls://", "https://").replace("tcp://", "http://") + "/"
        alice, bob = chromium.open(page), chromium.open(page)
        for session in (alice, bob):
            wait_until(
                lambda session=session: (
                    chromium.evaluate(session, "document.getElementById('status').textContent") == "connected"
                ),
                WAIT,
                "the page's WebSocket to open",
            )
        extensions = chromium.evaluate(bob, "ws.extensions")
        assert extensions.startswith("permessage-deflate") if secure else extensions == "", extensions
        chromium.evaluate(
            alice,
            "document.getElementById('text').value = 'hello from Alice <b>not bold</b>';"
            "document.getElementById('say').requestSubmit()",
        )
        shown = "Array.from(document.querySelectorAll('#log li')).map(li => li.textContent)"
        wait_until(
            lambda: chromium.evaluate(bob, shown) == ["hello from Alice <b>not bold</b>"], WAIT, "Bob's page"
        )
        assert chromium.evaluate(alice, shown) == ["hello from Alice <b>not bold</b>"]  # (her own line)
        assert chromium.evaluate(bob, "document.querySelectorAll('#log b').length") == 0  # text, not markup
        shot = base64.b64decode(chromium.call("Page.captureScreenshot", bob, format="png")["data"])
        assert shot.startswith(b"\x89PNG\r\n\x1a\n")
        folder = Path(os.environ.get("SOCKETKIT_ARTIFACTS") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"chat-in-chromium{'-wss' if secure else ''}.png").write_bytes(shot)
