// k6 side of `cargo xtask bench` (engine part, comparison 3): VUS virtual users,
// each opens one WebSocket to TARGET, sends a 64-byte binary message and waits
// for its echo, in a loop, for HOLD_S seconds. The `echoes` counter is the
// number of round trips; xtask divides k6's CPU time (/usr/bin/time) by it.
//
//   k6 run -e TARGET=ws://127.0.0.1:18080/ -e VUS=1000 -e HOLD_S=15 xtask/bench/k6/echo.js
import ws from 'k6/ws';
import { Counter } from 'k6/metrics';

const echoes = new Counter('echoes');
const VUS = parseInt(__ENV.VUS || '1000');
const HOLD_S = parseFloat(__ENV.HOLD_S || '15');
const TARGET = __ENV.TARGET || 'ws://127.0.0.1:18080/';
const SIZE = parseInt(__ENV.MESSAGE_SIZE || '64');

export const options = {
  scenarios: {
    echo: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(HOLD_S) + 60}s`,
    },
  },
  summaryTrendStats: ['med', 'p(99)'],
};

export default function () {
  const payload = new Uint8Array(SIZE).fill(0x61).buffer;
  const res = ws.connect(TARGET, null, function (socket) {
    socket.on('open', function () {
      socket.sendBinary(payload);
      socket.setTimeout(function () {
        socket.close();
      }, HOLD_S * 1000);
    });
    socket.on('binaryMessage', function () {
      echoes.add(1);
      socket.sendBinary(payload);
    });
    socket.on('error', function (e) {
      console.error(`ws error: ${e.error()}`);
    });
  });
  if (!res || res.status !== 101) {
    console.error(`upgrade failed: ${res && res.status}`);
  }
}
