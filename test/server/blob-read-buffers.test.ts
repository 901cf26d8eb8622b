// A daemon's Read of a large blob reads the file into the few buffers the
// store lends and takes back once grpc-js has written each chunk, not into
// a fresh 1 MiB per chunk (whose page faults cost as much CPU again as
// the rest of the Read). Real daemon on a unix socket, real on-disk store.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { Blake3Stream } from '../../src/castore/digest.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { startDaemon } from '../../src/server/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { readBuffersAllocated } from '../../src/castore/disk/read-ahead.js';

const MiB = 1 << 20;

describe('Blob Read buffers', () => {
  it('a 48 MiB Read, twice, reads into a handful of reused buffers and gives back the exact bytes', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'blob-read-buffers-'));
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    const daemon = await startDaemon(store, { listen: [{ kind: 'unix', path: join(tmp, 'sock') }] });
    const blobs = new GrpcBlobService(daemon.addrs[0]);
    try {
      const data = Buffer.alloc(48 * MiB + 777);
      for (let o = 0; o + 4 <= data.length; o += 4) data.writeUInt32LE((o * 2654435761) >>> 0, o);
      const digest = await putBytes(store.blobs, data);
      const before = readBuffersAllocated();
      for (let round = 0; round < 2; round++) {
        const h = new Blake3Stream();
        let n = 0;
        for await (const c of (await blobs.read(digest))!) {
          h.update(c);
          n += c.length;
        }
        assert.equal(n, data.length);
        assert.deepEqual(h.digest(), digest);
      }
      const allocated = readBuffersAllocated() - before;
      // A fresh buffer per MiB would be 98; lent ones are at most the chunks out at once (6) and the read ahead of them.
      assert.ok(allocated <= 12, `${allocated} read buffers allocated for 2 × 49 chunks of 1 MiB`);
    } finally {
      await blobs.close();
      await daemon.stop();
      await store.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
