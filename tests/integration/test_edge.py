"""The HTTP server itself, as clients meet it."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

CLIENT_KEEP_ALIVE_S = 5.0  # httpx's default expiry; uvicorn's default server timeout is the same


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_stays_open_longer_than_clients_keep_it(api):
    # A server that closes idle connections when its clients still reuse them resets requests
    # at random (the CI failure this guards against was an httpx.ReadError mid-test).
    url = urlsplit(api.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        assert (await _get(reader, writer, "/openapi.json")).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(CLIENT_KEEP_ALIVE_S + 1)
        try:
            status = await _get(reader, writer, "/openapi.json")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise AssertionError("the server closed a keep-alive connection a client would "
                                 f"still reuse ({error!r})") from error
        assert status.startswith(b"HTTP/1.1 200"), status
    finally:
        writer.close()
