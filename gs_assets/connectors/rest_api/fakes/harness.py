"""What every vendor fake shares: a clock the test controls, and a way to serve the fake on loopback.

A fake is one FastAPI app per system that serves *every* host of that system (login hosts per
environment, My Domain, the instance host a token response names) and tells them apart by the
request's Host header, as the vendor's hosts differ. Clients keep the vendor's real host names; in
tests and the demo a host map sends them to the fake (in process through `httpx.ASGITransport`, or
to `serve_on_loopback`'s port) with the Host header unchanged, so "sandbox goes to test.salesforce.com"
is checked by the fake, not assumed.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional


@dataclass
class Clock:
    """The fake's notion of now (UTC). Frozen unless advanced, so tests never depend on real time;
    `ticking=True` follows the wall clock from the start value (demo, benchmarks)."""

    start: datetime = field(default_factory=lambda: datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc))
    ticking: bool = False
    _offset: timedelta = field(default_factory=timedelta)
    _t0: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        base = self.start + self._offset
        if self.ticking:
            base += timedelta(seconds=time.monotonic() - self._t0)
        return base

    def advance(self, **delta: float) -> datetime:
        self._offset += timedelta(**delta)
        return self.now()

    def set(self, when: datetime) -> None:
        self._offset = when - self.start
        if self.ticking:
            self._offset -= timedelta(seconds=time.monotonic() - self._t0)


def request_host(headers) -> str:
    """The virtual host a request was sent to (Host header without the port)."""
    return (headers.get("host") or "").split(":")[0].lower()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LoopbackServer:
    url: str
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_on_loopback(app, port: Optional[int] = None, ready_timeout: float = 60.0) -> LoopbackServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread; returns once it accepts
    connections (or raises after `ready_timeout` seconds, loudly)."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"fake-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"fake server on 127.0.0.1:{port} did not start")
        time.sleep(0.02)
    return LoopbackServer(url=f"http://127.0.0.1:{port}", _server=server, _thread=thread)
