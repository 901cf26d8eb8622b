// Issue 21: the first full bench hung in `copy` -> file:// with the walk
// waiting for room in the hashing thread's ring and the thread asleep on an
// empty ring. These tests drive the interleavings on a real thread: the
// thread stops where the test wants by reading a FIFO (a FILE record) until
// the test writes it, so the ring stays exactly as full as the test made it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { HashThread } from '../../src/upload/hash-thread.js';
import type { NarDigest } from '../../src/upload/nar-digest.js';

let tmp: string;
let fifos = 0;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'hash-ring-wakeups-'));
});

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A named pipe: the hashing thread blocks opening it until the test writes it. */
function fifo(): { path: Buffer; release: () => Promise<void> } {
  const p = join(tmp, `fifo${fifos++}`);
  execFileSync('mkfifo', [p]);
  return { path: Buffer.from(p), release: () => writeFile(p, 'abc') };
}

const MiB = 1 << 20;
const KiB = 1 << 10;
const sha256 = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();

/** Tracks a promise's outcome without awaiting it. */
function watch(p: Promise<unknown>): { settled: boolean; error?: unknown } {
  const s: { settled: boolean; error?: unknown } = { settled: false };
  p.then(
    () => (s.settled = true),
    (err: unknown) => {
      s.settled = true;
      s.error = err;
    },
  );
  return s;
}

describe('hashing thread: every wait for room is woken', () => {
  it('a walk waiting for much room is woken once there is, although a walk that wanted little took its turn first', async () => {
    // Ring of 2 MiB: a wait for room asks for at most 1 MiB.
    const thread = new HashThread({ ringBytes: 2 * MiB });
    const first = fifo();
    const second = fifo();
    try {
      const a = thread.begin('/nix/store/a');
      // The thread stops at the first FIFO, then at the second after 512 KiB: the test decides when room appears.
      const f1 = a.file(first.path, 3);
      const half = Buffer.alloc(512 * KiB, 1);
      a.update(half);
      const f2 = a.file(second.path, 3);
      // Fill the ring until less than a small file's room (80 KiB headroom) is left.
      const rest = Buffer.alloc(thread.free() - 48 * KiB, 2);
      a.update(rest);
      assert.equal(a.hasRoom(0), false, 'the ring is full');

      const b = thread.begin('/nix/store/b');
      const c = thread.begin('/nix/store/c');
      const bRoom = watch(b.room(2 * MiB)); // as much as a wait may ask for (1 MiB)
      const cRoom = c.room(0); // a small file's
      await first.release();
      // The thread hashed 512 KiB and stopped at the second FIFO: room for c, not for b.
      await cRoom;
      assert.equal(bRoom.settled, false, 'b still waits: less than 1 MiB is free');
      await second.release();
      // The thread drains the ring: all of it is free before a's digest comes back.
      const digest = await a.digest();
      await turn();
      assert.equal(bRoom.settled, true, 'b was woken when the ring drained');
      assert.equal(bRoom.error, undefined);
      assert.deepEqual(digest, sha256(Buffer.from('abc'), half, Buffer.from('abc'), rest));
      await Promise.all([f1, f2]);
      b.abort();
      c.abort();
    } finally {
      await thread.close();
    }
  });

  it('a wait armed while the thread sleeps on an empty ring, after it read the records that freed the room, returns at once', async () => {
    const thread = new HashThread({ ringBytes: 2 * MiB });
    try {
      for (let i = 0; i < 200; i++) {
        const a = thread.begin(`/nix/store/a${i}`);
        const bytes = Buffer.alloc(MiB + 512 * KiB, i);
        a.update(bytes);
        // The thread may be anywhere in those bytes, or asleep after them: either way the wait ends.
        await a.room(MiB);
        assert.deepEqual(await a.digest(), sha256(bytes));
      }
    } finally {
      await thread.close();
    }
  });

  it('many walks at once, each waiting for room of its own size on a small ring, all finish with the right digests', async () => {
    const thread = new HashThread({ ringBytes: 2 * MiB });
    let seed = 0x9e3779b9;
    const rnd = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const walk = async (i: number): Promise<void> => {
      const d: NarDigest = thread.begin(`/nix/store/w${i}`);
      const h = createHash('sha256');
      for (let k = 0; k < 40; k++) {
        // Mostly small pieces, now and then one that needs most of the ring.
        const n = rnd(8) === 0 ? 900 * KiB + rnd(100 * KiB) : rnd(64 * KiB);
        if (!d.hasRoom(n)) await d.room(n);
        const piece = Buffer.alloc(n, (i + k) & 0xff);
        d.update(piece);
        h.update(piece);
        if (rnd(3) === 0) await turn();
      }
      assert.deepEqual(await d.digest(), h.digest(), `walk ${i}`);
    };
    try {
      for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 6 }, (_, i) => walk(round * 6 + i)));
    } finally {
      await thread.close();
    }
  });
});
