"""The receivers' connections on plain asyncio: reuse, closes, errors, TLS, big answers, proxies."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trustme

from oomwatch.errors import FailureReason, NotifyError
from oomwatch.notify.http import client, post
from oomwatch.notify.transport import READ_BUFFER, WRITE_BATCH, AsyncioTransport
from tests.agentproc import free_port
from tests.servers import Recorder

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """An asyncio server on 127.0.0.1 running `handle` per connection; (url, connections)."""
    conns: list[int] = []

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            await handle(r, w)
        finally:
            w.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", conns
    finally:
        server.close()
        await server.wait_closed()


async def read_request(r: asyncio.StreamReader) -> bytes:
    """One request's head and body."""
    head = await r.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await r.readexactly(length)


def test_a_client_uses_the_asyncio_transport_and_reuses_its_connection() -> None:
    """Three POSTs go out on one kept-alive connection, each answered."""
    paths: list[bytes] = []

    async def keep_alive(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while not r.at_eof():
            try:
                request = await read_request(r)
            except asyncio.IncompleteReadError:
                return
            paths.append(request.split(b" ")[1])
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()

    async def main() -> tuple[list[int], int]:
        async with raw_server(keep_alive) as (url, conns):
            c = client(url=url)
            assert isinstance(c._transport, AsyncioTransport)
            codes = []
            for path in ("/a", "/b", "/c"):
                codes.append((await post(c, url + path, "webhook", content=b"{}")).status_code)
            await c.aclose()
            return codes, len(conns)

    assert asyncio.run(main()) == ([200, 200, 200], 1)
    assert paths == [b"/a", b"/b", b"/c"]


@pytest.mark.parametrize("size", [2, 3 * WRITE_BATCH + 5])
def test_a_request_leaves_in_one_write(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Head and body go to the socket as one write: one segment, one receiver wake-up.

    A body past WRITE_BATCH is not held for a later turn of the loop.
    """
    got: list[bytes] = []
    writes: list[int] = []
    real = asyncio.selector_events._SelectorSocketTransport.write  # type: ignore[attr-defined]

    def counting(self: asyncio.Transport, data: bytes) -> None:
        writes.append(len(data))
        real(self, data)

    monkeypatch.setattr(
        asyncio.selector_events._SelectorSocketTransport,  # type: ignore[attr-defined]
        "write",
        counting,
    )

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.append(await read_request(r))
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()

    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def main() -> int:
        async with raw_server(answer) as (url, _):
            c = client(url=url)
            writes.clear()  # the server's answers count from here on too
            code = (await post(c, url + "/hook", "webhook", content=body)).status_code
            await c.aclose()
            return code

    assert asyncio.run(main()) == 200
    assert got[0].endswith(b"\r\n\r\n" + body)
    ours = [n for n in writes if n > len(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]
    assert ours == [len(got[0])]


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """The server closes after each answer, without saying so: the next POST connects again."""
    closed = asyncio.Queue[None]()

    async def answer_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        w.close()
        await w.wait_closed()
        closed.put_nowait(None)

    async def main() -> tuple[list[int], int]:
        async with raw_server(answer_once) as (url, conns):
            c = client(url=url)
            codes = []
            for _ in range(3):
                codes.append((await post(c, url + "/hook", "webhook", content=b"{}")).status_code)
                await closed.get()  # the server has closed: the next POST must not use it
            await c.aclose()
            return codes, len(conns)

    assert asyncio.run(main()) == ([200, 200, 200], 3)


def test_no_answer_is_a_timeout_and_a_refused_port_a_connection_failure() -> None:
    """The failures the lanes tell apart come out as before: timeout, connection refused."""

    async def silent(r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await asyncio.sleep(5)

    async def main() -> tuple[NotifyError, NotifyError]:
        async with raw_server(silent) as (url, _):
            c = client(timeout_s=0.3, url=url)
            with pytest.raises(NotifyError) as slow:
                await post(c, url + "/hook", "webhook", content=b"{}")
            await c.aclose()
        port = free_port()
        c = client(url=f"http://127.0.0.1:{port}")
        with pytest.raises(NotifyError) as refused:
            await post(c, f"http://127.0.0.1:{port}/hook", "webhook", content=b"{}")
        await c.aclose()
        return slow.value, refused.value

    slow, refused = asyncio.run(main())
    assert slow.reason is FailureReason.TIMEOUT
    assert "no answer in 0.3 s" in str(slow)
    assert refused.reason is FailureReason.CONNECTION
    assert "connection refused by 127.0.0.1:" in str(refused)


def test_an_answer_larger_than_the_read_buffer_is_read_whole() -> None:
    """Reading pauses past READ_BUFFER and resumes as httpcore reads: 4 MB arrive intact."""
    size = 16 * READ_BUFFER
    reply = bytes(range(256)) * (size // 256)

    async def big(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + reply)
        await w.drain()

    async def main() -> bytes:
        async with raw_server(big) as (url, _):
            c = client(url=url)
            resp = await post(c, url + "/hook", "webhook", content=b"{}")
            await c.aclose()
            return resp.content

    assert asyncio.run(main()) == reply


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate of a test CA; (url, CA file)."""
    with _tls_server(tmp_path, None) as served:
        yield served


@contextlib.contextmanager
def _tls_server(tmp_path: Path, hold: threading.Event | None) -> Iterator[tuple[str, Path]]:
    """The HTTPS server; with `hold`, it answers and then reads nothing until `hold` is set."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secure")
            self.wfile.flush()
            if hold is not None:
                hold.wait(30)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    try:
        yield f"https://127.0.0.1:{server.server_port}", path
    finally:
        server.shutdown()
        server.server_close()


def _connections_to(url: str) -> list[Any]:
    port = int(url.rsplit(":", 1)[1])
    return [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr[1] == port]


@pytest.mark.parametrize("answers", [True, False], ids=["peer answers", "peer silent"])
def test_a_closed_client_has_closed_its_tls_connections(tmp_path: Path, answers: bool) -> None:
    """After `aclose`, no socket to the server is left open, even if it never says goodbye.

    A TLS close is a message to the peer and its answer: without waiting for it, the
    socket outlives the client (and the loop that would have closed it).
    """
    hold = None if answers else threading.Event()

    async def main(url: str, ca_file: Path) -> tuple[int, list[Any]]:
        c = httpx.AsyncClient(
            transport=AsyncioTransport(ssl.create_default_context(cafile=str(ca_file)), LIMITS)
        )
        code = (await post(c, url + "/hook", "webhook", content=b"{}")).status_code
        await c.aclose()
        return code, _connections_to(url)

    with _tls_server(tmp_path, hold) as (url, ca_file):
        try:
            assert asyncio.run(main(url, ca_file)) == (200, [])
        finally:
            if hold is not None:
                hold.set()


def test_tls_verifies_the_server(tls_server: tuple[str, Path]) -> None:
    """A server whose CA is trusted answers over TLS; one whose CA is not fails as TLS."""
    url, ca_file = tls_server

    async def main() -> tuple[str, NotifyError]:
        trusted = httpx.AsyncClient(
            transport=AsyncioTransport(ssl.create_default_context(cafile=str(ca_file)), LIMITS)
        )
        text = (await post(trusted, url + "/hook", "webhook", content=b"{}")).text
        await trusted.aclose()
        strange = client(url=url)  # the system's CAs: this test CA is not among them
        with pytest.raises(NotifyError) as failed:
            await post(strange, url + "/hook", "webhook", content=b"{}")
        await strange.aclose()
        return text, failed.value

    text, failed = asyncio.run(main())
    assert text == "secure"
    assert failed.reason is FailureReason.CONNECTION
    assert "TLS failed with 127.0.0.1:" in str(failed)


LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=1, keepalive_expiry=5)


def test_with_a_proxy_in_the_environment_requests_go_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY set: httpx's own transport, which sends the request to the proxy."""
    proxy = Recorder().start()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    target = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there

    async def main() -> int:
        c = client(url=target)
        assert not isinstance(c._transport, AsyncioTransport)
        code = (await post(c, target, "webhook", content=b"{}")).status_code
        await c.aclose()
        return code

    try:
        assert asyncio.run(main()) == 200
        assert [r.path for r in proxy.received] == [target]  # the absolute form, to a proxy
    finally:
        proxy.stop()


def test_an_idle_connection_closed_by_the_peer_reads_as_readable_before_the_loop_sees_it() -> None:
    """The check httpcore makes before reusing a connection looks at the socket itself."""
    import socket

    from oomwatch.notify.transport import _readable

    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not _readable(ours)  # open and quiet: fit to be used again
        theirs.close()
        assert _readable(ours)  # the close waits in the socket
    assert _readable(None)


def test_the_first_post_imports_nothing() -> None:
    """What httpcore loads on a first request comes with the client: no kill waits on it."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, sys
        from oomwatch.notify.http import client, post
        from tests.servers import Recorder

        async def main():
            hook = Recorder(keep_alive=True).start()
            c = client(url=hook.url)
            before = set(sys.modules)
            await post(c, hook.url + "/hook", "webhook", content=b"{}")
            print(sorted(set(sys.modules) - before), len(hook.received))
            await c.aclose()
            hook.stop()

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["[]", "1"]
