#!/usr/bin/env node
// Interop WebSocket server for loadgen's integration tests, on `ws`.
//
// Usage: node server.js --mode MODE [--deflate] [--exit-on-stdin-eof]
//
// Binds 127.0.0.1 on an ephemeral port, prints exactly one line `PORT <n>` to
// stdout once listening, and runs until killed. The CLI and behaviour contract
// is shared with ../python/server.py; see ../README.md for the modes.
'use strict';

const { WebSocketServer } = require('ws');

const MAX_MESSAGE = 16 * 1024 * 1024;
const HOSTILE_HOLD_MS = 30000;

// Raw server-to-client bytes written straight to the TCP socket by the hostile
// modes, once the client has sent its first frame.
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
function u64be(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
const HOSTILE = {
  // Text "hi" with the mask bit set: servers must not mask (-> 1002).
  'masked-frame': Buffer.concat([
    Buffer.from([0x81, 0x82]),
    MASK,
    Buffer.from([...Buffer.from('hi')].map((b, i) => b ^ MASK[i % 4])),
  ]),
  // Text frame whose payload encodes a UTF-16 surrogate (-> 1007).
  'invalid-utf8': Buffer.concat([
    Buffer.from([0x81, 0x14]),
    Buffer.from('cebae1bdb9cf83cebcceb5eda080', 'hex'),
    Buffer.from('edited'),
  ]),
  // Binary frame announcing 64 MiB (64-bit length form), then 4 KiB (-> 1009).
  'oversize-frame': Buffer.concat([
    Buffer.from([0x82, 0x7f]),
    u64be(64 * 1024 * 1024),
    Buffer.alloc(4096),
  ]),
  // Ping with a 126-byte payload, 16-bit length form (-> 1002).
  'oversize-control': Buffer.concat([
    Buffer.from([0x89, 0x7e, 0x00, 0x7e]),
    Buffer.alloc(126, 'p'),
  ]),
  // Reserved data opcode 0x3 (-> 1002).
  'reserved-opcode': Buffer.from([0x83, 0x02, 0x68, 0x69]),
  // Text frame with RSV2 set (-> 1002).
  'rsv-bits': Buffer.from([0xa1, 0x02, 0x68, 0x69]),
};
const MODES = ['echo', 'no-close-reply', ...Object.keys(HOSTILE)];

function usage(msg) {
  process.stderr.write(`${msg}\nusage: server.js --mode {${MODES.join(',')}} [--deflate] [--exit-on-stdin-eof]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { mode: null, deflate: false, exitOnStdinEof: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--mode' && i + 1 < argv.length) args.mode = argv[++i];
    else if (argv[i].startsWith('--mode=')) args.mode = argv[i].slice('--mode='.length);
    else if (argv[i] === '--deflate') args.deflate = true;
    else if (argv[i] === '--exit-on-stdin-eof') args.exitOnStdinEof = true;
    else usage(`unknown argument: ${argv[i]}`);
  }
  if (!MODES.includes(args.mode)) usage(`invalid or missing --mode: ${args.mode}`);
  return args;
}

// Follows client-to-server frame boundaries in the raw byte stream.
// feed(chunk) returns { keep, closeSeen }: how many leading bytes belong to
// frames before the first close frame, and whether a close frame starts here.
class FrameTracker {
  constructor() {
    this.header = [];
    this.remaining = 0;
  }

  feed(chunk) {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining > 0) {
        const step = Math.min(this.remaining, n - i);
        i += step;
        this.remaining -= step;
        continue;
      }
      if (this.header.length === 0 && (chunk[i] & 0x0f) === 0x8) {
        return { keep: i, closeSeen: true };
      }
      this.header.push(chunk[i]);
      i += 1;
      if (this.header.length < 2) continue;
      const len7 = this.header[1] & 0x7f;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.header[1] & 0x80 ? 4 : 0);
      if (this.header.length < need) continue;
      const h = Buffer.from(this.header);
      if (len7 === 126) this.remaining = h.readUInt16BE(2);
      else if (len7 === 127) this.remaining = Number(h.readBigUInt64BE(2));
      else this.remaining = len7;
      this.header = [];
    }
    return { keep: n, closeSeen: false };
  }
}

// Replaces the library's 'data' listeners on the raw socket with `onData`,
// which receives the chunk and a function forwarding bytes to the library.
function interceptData(socket, onData) {
  const originals = socket.listeners('data');
  socket.removeAllListeners('data');
  const forward = (chunk) => {
    for (const listener of originals) listener.call(socket, chunk);
  };
  socket.on('data', (chunk) => onData(chunk, forward));
}

// Stops reading and never lets the library react to the socket again.
function freeze(socket) {
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  socket.on('data', () => {});
  socket.pause();
}

function echo(ws) {
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text.startsWith('close:')) {
        const [, code, ...rest] = text.split(':');
        try {
          ws.close(Number.parseInt(code, 10), rest.join(':'));
          return;
        } catch (err) {
          process.stderr.write(`cannot close with ${JSON.stringify(text)}: ${err.message}\n`);
        }
      } else if (text.startsWith('ping:')) {
        try {
          ws.ping(data.subarray('ping:'.length));
        } catch (err) {
          process.stderr.write(`cannot ping with ${JSON.stringify(text)}: ${err.message}\n`);
        }
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.exitOnStdinEof) {
    // So that a parent that dies without killing us leaves no orphan.
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    maxPayload: MAX_MESSAGE,
    clientTracking: false,
    // Defaults accept whatever parameters the client offers
    // (client/server_no_context_takeover, *_max_window_bits); threshold 0 so
    // that every message is compressed.
    perMessageDeflate: args.deflate ? { threshold: 0 } : false,
  });

  wss.on('connection', (ws) => {
    const socket = ws._socket;
    ws.on('error', (err) => process.stderr.write(`connection error: ${err.message}\n`));
    if (args.mode === 'echo') {
      echo(ws);
    } else if (args.mode === 'no-close-reply') {
      echo(ws);
      const tracker = new FrameTracker();
      interceptData(socket, (chunk, forward) => {
        const { keep, closeSeen } = tracker.feed(chunk);
        if (keep > 0) forward(chunk.subarray(0, keep));
        // The library never sees the close frame, so never answers it; reading
        // stops and the TCP connection stays open.
        if (closeSeen) freeze(socket);
      });
    } else {
      const raw = HOSTILE[args.mode];
      interceptData(socket, () => {
        freeze(socket);
        socket.write(raw);
        setTimeout(() => socket.destroy(), HOSTILE_HOLD_MS).unref();
      });
    }
  });

  wss.on('listening', () => {
    process.stdout.write(`PORT ${wss.address().port}\n`);
  });
  wss.on('error', (err) => {
    process.stderr.write(`server error: ${err.message}\n`);
    process.exit(1);
  });
}

main();
