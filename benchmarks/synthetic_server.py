"""Serve a ``SyntheticIndex`` over loopback HTTP/1.1 (keep-alive), from its own process.

``python -m benchmarks.synthetic_server --projects 20000 [--seed 1]`` prints ``PORT <n>`` once listening.
Routes: ``GET /simple/`` (PEP 691 JSON listing), ``GET /simple/<name>/`` (project page, with
``X-PyPI-Last-Serial`` and an ``ETag``; ``If-None-Match`` gives 304), ``GET /files/<i>/<filename>``,
and ``GET /_state/<0|1>`` to move the index to another state. A minimal asyncio server: the
point is to cost the client side as little CPU as possible on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import unquote

from benchmarks.synthetic import SyntheticIndex

__all__ = ["serve"]

JSON_TYPE = b"application/vnd.pypi.simple.v1+json"


def _response(status: bytes, body: bytes, content_type: bytes, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        content_type,
        len(body),
        extra,
    )
    return head + body


class _Handler:
    def __init__(self, index: SyntheticIndex) -> None:
        self.index = index
        self._listing: dict[int, bytes] = {}

    def answer(self, path: str, headers: dict[bytes, bytes]) -> bytes:
        index = self.index
        if path == "/simple/":
            if index.state not in self._listing:
                self._listing[index.state] = index.listing()
            return _response(b"200 OK", self._listing[index.state], JSON_TYPE)
        if path.startswith("/simple/"):
            i = index.lookup(unquote(path[len("/simple/") :]).rstrip("/"))
            if i is None:
                return _response(b"404 Not Found", b"Not Found\n", b"text/plain")
            serial = index.serial(i)
            etag = b'"s%d"' % serial
            extra = b"X-PyPI-Last-Serial: %d\r\nETag: %s\r\n" % (serial, etag)
            if headers.get(b"if-none-match") == etag:
                return _response(b"304 Not Modified", b"", JSON_TYPE, extra)
            return _response(b"200 OK", index.page(i), JSON_TYPE, extra)
        if path.startswith("/files/"):
            number, _, filename = path[len("/files/") :].partition("/")
            body = index.file(int(number), unquote(filename)) if number.isdigit() else None
            if body is None:
                return _response(b"404 Not Found", b"Not Found\n", b"text/plain")
            return _response(b"200 OK", body, b"application/octet-stream")
        if path.startswith("/_state/"):
            index.state = int(path[len("/_state/") :])
            return _response(b"200 OK", b"ok\n", b"text/plain")
        return _response(b"404 Not Found", b"Not Found\n", b"text/plain")

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.split(b"\r\n")
                parts = lines[0].split(b" ")
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(b":")
                    headers[key.strip().lower()] = value.strip()
                path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else "/"
                writer.write(self.answer(path, headers))
                await writer.drain()
        finally:
            writer.close()


async def serve(projects: int, seed: int, port: int, big_every: int) -> None:
    handler = _Handler(SyntheticIndex(projects, seed=seed, big_every=big_every))
    server = await asyncio.start_server(handler.connection, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--big-every", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(serve(args.projects, args.seed, args.port, args.big_every))


if __name__ == "__main__":
    main()
