"""A response's head and the first part of its body, written to the socket at once.

uvicorn writes a response's head as the app starts it, and the body as the app sends it: two
system calls and two TCP segments for an answer that is whole at once (most are). Each request's
writes go through HeadWithBody, which keeps the head back until the body's first part and sends
both in one write; a head whose body is not there by the next turn of the event loop (a stream
that waits before its first part) is sent then, by itself.
"""

import asyncio
from typing import Any


class HeadWithBody:
    """The transport of one request, as its response writer sees it: the first write (the head,
    or a 100 Continue) is held until the next write or the next turn of the loop, whichever is
    first; everything else is the connection's transport's own."""

    __slots__ = ("held", "is_first", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None
        self.is_first = True

    def write(self, data: bytes) -> None:
        if self.is_first:
            self.is_first = False
            self.held = data
            self.loop.call_soon(self.flush)
            return
        if self.held is not None:
            data, self.held = self.held + data, None
        self.transport.write(data)

    def flush(self) -> None:
        """Send the held head, unless the connection is closing (its client gone)."""
        held, self.held = self.held, None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # whatever else the transport has
        return getattr(self.transport, name)
