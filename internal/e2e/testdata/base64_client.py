"""A websockify-era client: it offers only the "base64" subprotocol, as
noVNC before 1.0 and websockify 0.8's own clients did, sends N random
bytes as base64 text messages of varied sizes and checks that the echo
target's answer, decoded, is the same. Uses Debian's python3-websockets.

usage: base64_client.py URL N
prints "ok SUBPROTOCOL BYTES SHA256" or fails with a message.
"""
import asyncio
import base64
import hashlib
import os
import sys

import websockets


async def main(url, n):
    data = os.urandom(n)
    origin = "http://" + url.split("/")[2]
    async with websockets.connect(url, subprotocols=["base64"], origin=origin,
                                  max_size=None, compression=None) as ws:
        if ws.subprotocol != "base64":
            sys.exit(f"server chose subprotocol {ws.subprotocol!r}, not base64")

        async def send():
            off, size = 0, 1
            while off < n:
                chunk = data[off:off + size]
                await ws.send(base64.b64encode(chunk).decode())
                off += len(chunk)
                size = size * 3 % 50000 + 1

        sender = asyncio.create_task(send())
        got = bytearray()
        while len(got) < n:
            msg = await ws.recv()
            if not isinstance(msg, str):
                sys.exit("a binary message in a base64 session")
            got += base64.b64decode(msg, validate=True)
        await sender
        if bytes(got) != data:
            sys.exit(f"echo differs: {len(got)} bytes back for {n}")
        print("ok", ws.subprotocol, len(got), hashlib.sha256(got).hexdigest())


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
