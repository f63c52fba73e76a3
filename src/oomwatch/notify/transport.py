"""The receivers' HTTP connections on plain asyncio, under httpx and httpcore.

httpx reaches the network through httpcore's anyio backend: a cancel scope, a
checkpoint (a turn of the event loop) and an exception map around every read and
write. A kill's POST is one header write, one body write and a few reads, and
that layer was a fifth of its time (0.80 ms from call to arrival on loopback
without it, 1.00 ms with it). This backend is asyncio's
own transports and one protocol; httpx still builds the request, httpcore still
speaks HTTP/1.1 and pools the connections, and their errors are the usual ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any, cast

import httpcore
import httpx

READ_BUFFER = 256 * 1024  # bytes received and not yet read before the socket is paused
# a closing client waits this long for its TLS peers to answer the goodbye, then cuts
CLOSE_WAIT_S = 0.5
# writes held to go out as one (a request's head and body) up to this many bytes
WRITE_BATCH = 64 * 1024


class _Protocol(asyncio.Protocol):
    """Bytes received (bounded), end of stream, and whether writing must wait."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False  # the connection is gone and its socket closed
        self.error: Exception | None = None
        self._read_paused = False
        self.write_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_BUFFER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake()
        return None  # close the transport: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self, max_bytes: int) -> bytes:
        while not self.buffer and not self.eof:
            await self._wait()
        if not self.buffer:
            if self.error is not None:
                raise self.error
            return b""
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._read_paused and len(self.buffer) <= READ_BUFFER // 2 and self.transport:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        while self.write_paused and not self.eof:
            await self._wait()
        if self.eof:
            raise self.error or ConnectionResetError("the connection was closed")

    async def gone(self) -> None:
        """Wait until the connection is lost."""
        while not self.lost:
            await self._wait()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: a transport and its protocol."""

    def __init__(
        self, transport: asyncio.Transport, protocol: _Protocol, closing: set[AsyncioStream]
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.closing = closing  # the backend's connections saying goodbye
        self.held: list[bytes] = []  # written, not yet handed to the transport
        self.held_bytes = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """Up to `max_bytes` bytes; b"" at the end of the stream."""
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                return await self.protocol.read(max_bytes)
        except TimeoutError as e:
            raise httpcore.ReadTimeout(f"no data in {timeout} s") from e
        except OSError as e:
            raise httpcore.ReadError(str(e) or type(e).__name__) from e

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Hand `buffer` to the transport; wait only while the peer does not take it."""
        if not buffer:
            return
        if self.transport.is_closing():
            raise httpcore.WriteError("the connection was closed")
        # httpcore writes a request's head, then its body, then reads: held until the
        # read (or the loop's next turn), they leave in one send, so the receiver has
        # the whole request in one segment and one wake-up
        if not self.held:
            asyncio.get_running_loop().call_soon(self._flush)
        self.held.append(buffer)
        self.held_bytes += len(buffer)
        if self.held_bytes < WRITE_BATCH:
            return
        try:
            self._flush()
            if self.protocol.write_paused:
                async with asyncio.timeout(timeout):
                    await self.protocol.drain()
        except TimeoutError as e:
            raise httpcore.WriteTimeout(f"not written in {timeout} s") from e
        except OSError as e:
            raise httpcore.WriteError(str(e) or type(e).__name__) from e

    def _flush(self) -> None:
        """Hand what is held to the transport, as one write."""
        if self.held:
            data = b"".join(self.held) if len(self.held) > 1 else self.held[0]
            self.held.clear()
            self.held_bytes = 0
            if not self.transport.is_closing():
                self.transport.write(data)

    async def aclose(self) -> None:
        """Close the connection; a TLS one says goodbye first, unless the peer has gone.

        This runs on the way of a request too (httpcore closes an idle connection the
        peer closed before it picks another), so it never waits: the goodbye finishes
        on the loop, and the client's `aclose` waits for it.
        """
        if self.protocol.eof:
            self.transport.abort()
            return
        self._flush()
        self.transport.close()
        if not self.protocol.lost:
            self.closing.difference_update([s for s in self.closing if s.protocol.lost])
            self.closing.add(self)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        """The same connection, now speaking TLS with `server_hostname`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self.transport, self.protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as e:
            self.transport.abort()
            raise httpcore.ConnectTimeout(f"no TLS handshake in {timeout} s") from e
        except (OSError, ssl.SSLError) as e:
            self.transport.abort()
            raise httpcore.ConnectError(str(e) or type(e).__name__) from e
        if tls is None:  # the loop closed the connection meanwhile
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self.protocol.transport = tls
        return AsyncioStream(tls, self.protocol, self.closing)

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a connection; "is_readable": the peer closed it or spoke."""
        if info == "is_readable":
            # asked of an idle connection before it is used again: the peer's close may
            # still wait in the socket, not yet seen by the loop
            sock = self.transport.get_extra_info("socket")
            return self.protocol.eof or bool(self.protocol.buffer) or _readable(sock)
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        if key in ("ssl_object", "sockname", "peername", "socket"):
            return self.transport.get_extra_info(key)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections for httpcore's pool, opened with asyncio."""

    def __init__(self) -> None:
        self.closing: set[AsyncioStream] = set()

    async def settle(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Wait until the connections being closed are gone; cut those still there."""
        streams, self.closing = self.closing, set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                for stream in streams:
                    await stream.protocol.gone()
        for stream in streams:
            if not stream.protocol.lost:
                stream.transport.abort()
        await asyncio.sleep(0)  # the loop closes the sockets it was told to

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A TCP connection (asyncio sets TCP_NODELAY)."""
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=local
                )
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"no connection in {timeout} s") from e
        except OSError as e:
            raise httpcore.ConnectError(str(e) or type(e).__name__) from e
        _set_options(transport, socket_options)
        return AsyncioStream(transport, protocol, self.closing)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(seconds)


def _readable(sock: socket.socket | None) -> bool:
    if sock is None:
        return True  # no socket to ask: take it as closed
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _set_options(transport: asyncio.Transport, options: Iterable[Any] | None) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is not None:
        for option in options or ():
            sock.setsockopt(*option)


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpx's default transport (HTTP/1.1, a connection pool) over `AsyncioBackend`."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self.backend = AsyncioBackend()
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on a pooled connection; its answer with the body still to read."""
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=cast(httpx.AsyncByteStream, request.stream),
            extensions=request.extensions,
        )
        with _httpx_errors():
            resp = await self.pool.handle_async_request(req)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Body(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection, its socket closed when this returns."""
        await self.pool.aclose()
        await self.backend.settle()


class _Body(httpx.AsyncByteStream):
    """A response body from httpcore, its errors raised as httpx's."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def __aiter__(self) -> Any:
        with _httpx_errors():
            async for part in self.stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self.stream, "aclose"):
            await self.stream.aclose()


# an httpcore error becomes the httpx error of the same name; the most specific first
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = tuple(
    (getattr(httpcore, name), getattr(httpx, name))
    for name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "UnsupportedProtocol",
        "LocalProtocolError",
        "RemoteProtocolError",
        "ProtocolError",
    )
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as the httpx errors callers catch."""
    try:
        yield
    except Exception as e:
        for theirs, ours in _ERRORS:
            if isinstance(e, theirs):
                raise ours(str(e)) from e
        raise
