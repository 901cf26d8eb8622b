// readAhead with reused buffers: the bytes are right whatever the file
// size, a few buffers serve a whole file, and every buffer comes back,
// also when the reader stops early.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { READ_CHUNK, ReadBuffers, readAhead } from '../../src/castore/disk/read-ahead.js';

/** ReadBuffers that count what is out. */
class Counted extends ReadBuffers {
  out = 0;
  made = new Set<ArrayBufferLike>();
  override take(): Buffer {
    const b = super.take();
    this.out++;
    this.made.add(b.buffer);
    return b;
  }
  override give(b: Buffer): void {
    this.out--;
    super.give(b);
  }
}

describe('readAhead reusing buffers', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'read-ahead-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  for (const size of [0, 1, READ_CHUNK - 1, READ_CHUNK, 3 * READ_CHUNK + 17, 10 * READ_CHUNK]) {
    it(`${size} bytes: the right bytes through at most two buffers`, async () => {
      const data = Buffer.alloc(size);
      for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE(i ^ 0x5a5a5a5a, i);
      const path = join(dir, `f${size}`);
      await writeFile(path, data);
      const pool = new Counted();
      const h = await open(path, 'r');
      const got: Buffer[] = [];
      try {
        for await (const chunk of readAhead(h, size, pool)) got.push(Buffer.from(chunk)); // copied: the memory is reused
      } finally {
        await h.close();
      }
      assert.ok(Buffer.concat(got).equals(data));
      assert.ok(pool.made.size <= 2, `${pool.made.size} buffers`);
      assert.equal(pool.out, 0, 'every buffer came back');
    });
  }

  it('a reader that stops early gives back the chunk it held and the read in flight', async () => {
    const path = join(dir, 'early');
    await writeFile(path, Buffer.alloc(5 * READ_CHUNK, 1));
    const pool = new Counted();
    const h = await open(path, 'r');
    try {
      for await (const chunk of readAhead(h, 5 * READ_CHUNK, pool)) {
        assert.equal(chunk.length, READ_CHUNK);
        break;
      }
    } finally {
      await h.close();
    }
    assert.equal(pool.out, 0);
    // Without reuse every chunk has memory of its own.
    const h2 = await open(path, 'r');
    const arrays = new Set<ArrayBufferLike>();
    try {
      for await (const chunk of readAhead(h2, 5 * READ_CHUNK)) arrays.add(chunk.buffer);
    } finally {
      await h2.close();
    }
    assert.equal(arrays.size, 5);
  });
});
