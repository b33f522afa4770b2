// Loaded into the downloader child with --import by test/oci/downloader.test.ts: what a parser taken
// over by a hostile registry reply could do from inside the child. Its mode is the child's last argument.
import { appendFileSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';

const mode = process.argv[process.argv.length - 1];
// The data pipe to root is fd 4; registry connections are other sockets, left alone.
const toRoot = (sock) => sock._handle?.fd === 4;

if (mode === 'write') {
  // Try to write where root keeps verified content; report each outcome in one log message.
  const targets = JSON.parse(process.env.MOSCTL_TEST_TARGETS ?? process.argv[process.argv.length - 2]);
  const outcomes = {};
  for (const t of targets) {
    try {
      if (t.endsWith('/')) mkdirSync(t + 'evil');
      else if (t.endsWith('.json')) writeFileSync(t, '{}');
      else appendFileSync(t, 'evil');
      outcomes[t] = 'written';
    } catch (e) {
      outcomes[t] = e.code;
    }
  }
  try {
    openSync('/proc/1/mem', 'r');
    outcomes['/proc/1/mem'] = 'opened';
  } catch (e) {
    outcomes['/proc/1/mem'] = e.code;
  }
  process.send?.({ t: 'log', sid: 0, level: 'info', msg: 'compromised-writes', fields: { outcomes, uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() } });
}

if (mode === 'flip') {
  // Flip one byte of every blob payload on its way to root.
  const write = Socket.prototype.write;
  Socket.prototype.write = function (chunk, ...rest) {
    if (toRoot(this) && chunk instanceof Uint8Array && chunk.byteLength > 9) {
      const copy = Buffer.from(chunk);
      copy[copy.length >> 1] ^= 0x01;
      return write.call(this, copy, ...rest);
    }
    return write.call(this, chunk, ...rest);
  };
}

if (mode === 'flood') {
  // Announce a chunk frame far larger than any allowed (a child ignoring its window).
  const write = Socket.prototype.write;
  Socket.prototype.write = function (chunk, ...rest) {
    if (toRoot(this) && chunk instanceof Uint8Array && chunk.byteLength === 9 && chunk[0] === 1) {
      const h = Buffer.from(chunk);
      h.writeUInt32BE(0xffffffff, 5);
      return write.call(this, h, ...rest);
    }
    return write.call(this, chunk, ...rest);
  };
}

if (mode === 'stall') {
  // Answer requests but never send a blob byte.
  const write = Socket.prototype.write;
  Socket.prototype.write = function (...args) {
    return toRoot(this) ? true : write.apply(this, args);
  };
}
