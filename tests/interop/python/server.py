#!/usr/bin/env python3
"""Interop WebSocket server for loadgen's integration tests, on `websockets`.

Usage: server.py --mode MODE [--deflate] [--exit-on-stdin-eof]

Binds 127.0.0.1 on an ephemeral port, prints exactly one line `PORT <n>` to
stdout once listening, and runs until killed. The CLI and behaviour contract is
shared with ../node/server.js; see ../README.md for the modes.
"""

import argparse
import asyncio
import logging
import os
import sys
import threading

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.protocol import State

MAX_MESSAGE = 16 * 1024 * 1024
HOSTILE_HOLD_SECONDS = 30.0

# Raw server-to-client bytes written straight to the TCP socket by the hostile
# modes, once the client has sent its first frame.
_MASK = b"\x37\xfa\x21\x3d"
HOSTILE = {
    # Text "hi" with the mask bit set: servers must not mask (-> 1002).
    "masked-frame": b"\x81\x82" + _MASK + bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"hi")),
    # Text frame whose payload encodes a UTF-16 surrogate (-> 1007).
    "invalid-utf8": b"\x81\x14" + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    # Binary frame announcing 64 MiB (64-bit length form), then 4 KiB (-> 1009).
    "oversize-frame": b"\x82\x7f" + (64 * 1024 * 1024).to_bytes(8, "big") + bytes(4096),
    # Ping with a 126-byte payload, 16-bit length form (-> 1002).
    "oversize-control": b"\x89\x7e\x00\x7e" + b"p" * 126,
    # Reserved data opcode 0x3 (-> 1002).
    "reserved-opcode": b"\x83\x02hi",
    # Text frame with RSV2 set (-> 1002).
    "rsv-bits": b"\xa1\x02hi",
}
MODES = ["echo", "no-close-reply", *HOSTILE]

log = logging.getLogger("interop")


class FrameTracker:
    """Follows client-to-server frame boundaries in the raw byte stream.

    `feed(data)` returns how many leading bytes of `data` belong to frames
    before the first close frame, and whether a close frame starts in `data`.
    """

    def __init__(self) -> None:
        self.header = bytearray()  # bytes of the current frame header so far
        self.remaining = 0  # payload bytes of the current frame still to skip
        self.closed = False

    def feed(self, data: bytes) -> tuple[int, bool]:
        i = 0
        n = len(data)
        while i < n:
            if self.remaining:
                step = min(self.remaining, n - i)
                i += step
                self.remaining -= step
                continue
            if not self.header and data[i] & 0x0F == 0x8:
                self.closed = True
                return i, True
            self.header.append(data[i])
            i += 1
            if len(self.header) < 2:
                continue
            len7 = self.header[1] & 0x7F
            need = 2 + {126: 2, 127: 8}.get(len7, 0) + (4 if self.header[1] & 0x80 else 0)
            if len(self.header) < need:
                continue
            if len7 == 126:
                self.remaining = int.from_bytes(self.header[2:4], "big")
            elif len7 == 127:
                self.remaining = int.from_bytes(self.header[2:10], "big")
            else:
                self.remaining = len7
            self.header.clear()
        return n, False


class InteropConnection(ServerConnection):
    """Intercepts raw bytes after the handshake for the non-echo modes."""

    mode = "echo"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = FrameTracker()
        self.frozen = False

    def data_received(self, data: bytes) -> None:
        if self.frozen:
            return
        if self.protocol.state is State.CONNECTING or self.mode == "echo":
            super().data_received(data)
            return
        if self.mode == "no-close-reply":
            keep, close_seen = self.tracker.feed(data)
            if keep:
                super().data_received(data[:keep])
            if close_seen:
                # The library never sees the close frame, so never answers it;
                # reading stops and the TCP connection stays open.
                self.freeze()
            return
        # Hostile mode: the first bytes of the first client frame trigger it.
        self.freeze()
        self.transport.write(HOSTILE[self.mode])
        asyncio.get_running_loop().call_later(HOSTILE_HOLD_SECONDS, self.transport.abort)

    def eof_received(self) -> bool | None:
        if self.frozen:
            return True  # keep our half of the TCP connection open
        return super().eof_received()

    def freeze(self) -> None:
        self.frozen = True
        self.transport.pause_reading()


async def handler(ws: ServerConnection) -> None:
    if InteropConnection.mode not in ("echo", "no-close-reply"):
        await asyncio.sleep(HOSTILE_HOLD_SECONDS + 5)
        return
    try:
        async for message in ws:
            if isinstance(message, str):
                if message.startswith("close:"):
                    parts = message.split(":", 2)
                    try:
                        code = int(parts[1])
                        reason = parts[2] if len(parts) > 2 else ""
                        await ws.close(code, reason)
                        return
                    except Exception as exc:  # bad code or reason: report, keep echoing
                        log.warning("cannot close with %r: %s", message, exc)
                elif message.startswith("ping:"):
                    try:
                        await ws.ping(message[len("ping:") :])
                    except Exception as exc:
                        log.warning("cannot ping with %r: %s", message, exc)
                    continue
            await ws.send(message)
    except ConnectionClosed:
        pass  # the client went away or failed the connection: nothing to report


def _exit_on_stdin_eof() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--deflate", action="store_true", help="enable permessage-deflate")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="also exit when stdin reaches EOF (so a dead parent leaves no orphan)",
    )
    args = parser.parse_args()
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    InteropConnection.mode = args.mode

    extensions = None
    compression = None
    if args.deflate:
        # Default factory settings: accept whatever parameters the client offers
        # (client/server_no_context_takeover, *_max_window_bits).
        extensions = [ServerPerMessageDeflateFactory()]
        compression = "deflate"

    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=compression,
        extensions=extensions,
        max_size=MAX_MESSAGE,
        ping_interval=None,
        create_connection=InteropConnection,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().create_future()  # run until killed


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
