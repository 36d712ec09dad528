"""Listening: the loopback rule, the socket, and uvicorn on a thread (the app) or in the foreground.

The socket is bound before uvicorn starts, so a port in use or a bad address is one clear line at
once, and port 0 gives a free port whose number is known before the first request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterable

from engine.errors import HearthError

from .api import create_app
from .backend import ServedEngine

DEFAULT_PORT = 8470
# After a stop, streams still open get this long before uvicorn cancels them.
GRACEFUL_SHUTDOWN_S = 2


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, api_key: str | None) -> None:
    """Only this machine may reach a server without a key."""
    if not is_loopback(host) and not api_key:
        raise HearthError(f"listening on {host} would let other machines use the model without a "
                          f"key; add --api-key KEY (clients send it as 'Authorization: Bearer KEY') "
                          f"or listen on 127.0.0.1")


class Server:
    """One listening server over `served`. start() runs it on a thread; run() in this thread."""

    def __init__(self, served: ServedEngine, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 api_key: str | None = None, cors_origins: Iterable[str] = ()) -> None:
        import uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        check_address(host, api_key)
        self.served, self.host = served, host
        self.socket = _bind(host, port)
        self.port = self.socket.getsockname()[1]
        app = create_app(served, api_key=api_key, loopback=is_loopback(host), cors_origins=cors_origins)
        # log_config=None: uvicorn's records go to Hearth's log like everything else.
        config = uvicorn.Config(app, http=H11Protocol, ws="none", lifespan="off", log_config=None,
                                access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until Ctrl-C (uvicorn handles the signal in the main thread)."""
        try:
            asyncio.run(self._serve())
        finally:
            self.socket.close()

    def start(self) -> Server:
        self._thread = threading.Thread(target=self.run, name="hearth-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the server to end (any thread); stops its generations. timeout: wait that long."""
        self._uvicorn.should_exit = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.served.cancel_all)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Wait (off the GUI thread) for a stopped server's thread to end and free the port."""
        if self._thread is not None:
            self._thread.join(timeout)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._uvicorn.serve(sockets=[self.socket])


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise HearthError(f"cannot listen on {host!r}: not an address of this machine ({exc})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise HearthError(f"port {port} on {host} is in use (another server, or Hearth "
                              f"already serving?); pick another with --port") from None
        raise HearthError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
