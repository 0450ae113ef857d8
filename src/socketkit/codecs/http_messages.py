"""The HTTP messages both codec sides carry: :class:`Request` and :class:`HttpResponse`.

Why apart: the server codec (``http``) decodes requests and encodes responses,
the client codec (``http_client``) the other way round; both need the two
types, and neither should import the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._http_head import split_fields

__all__ = ["HttpResponse", "Request"]


class Request:
    """One decoded HTTP request. Header names are lower-cased bytes.

    The head is validated when the request is decoded, but split into
    ``headers`` only when they are first read: a server that answers from the
    method and target alone never pays for it.
    """

    __slots__ = (
        "_head",
        "_headers",
        "body",
        "expects_continue",
        "keep_alive",
        "method",
        "target",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        keep_alive: bool = True,
        head: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._headers = headers
        self._head = head  # request line and header lines, each ending in CRLF
        self.body = body
        self.keep_alive = keep_alive
        #: The client sent ``Expect: 100-continue`` (the codec has answered it).
        self.expects_continue = False

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """(name, value) pairs in arrival order; names lower-cased, values stripped."""
        headers = self._headers
        if headers is None:
            headers = self._headers = split_fields(self._head)
        return headers

    def header(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The first value of header ``name`` (lower-case), or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def _fields(self) -> tuple[object, ...]:
        return (self.method, self.target, self.version, self.headers, self.body, self.keep_alive)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, target={self.target!r}, version={self.version!r}, "
            f"headers={self.headers!r}, body={self.body!r}, keep_alive={self.keep_alive!r})"
        )


@dataclass(slots=True)
class HttpResponse:
    """A response to encode; Content-Length is added, and Connection: close when asked."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    #: for HEAD: send the headers of ``body`` but not the body itself.
    head_only: bool = False
