// The daemon reads a local client's large files (BlobFromPathService) into
// a few reused buffers, each given back once the store's writer has let go
// of it, not into a fresh 1 MiB per chunk (whose page faults cost a VM
// about as much as reading the bytes). In-process daemon on a unix socket,
// real on-disk store, a real file.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { Blake3Stream, blake3 } from '../../src/castore/digest.js';
import { startDaemon } from '../../src/server/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { readBuffersAllocated } from '../../src/castore/disk/read-ahead.js';

const MiB = 1 << 20;

it('a 48 MiB file read by the daemon, twice, goes through a handful of reused buffers and is stored exactly', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'from-path-buffers-'));
  const root = join(tmp, 'files');
  await mkdir(root);
  // What a local user could read: o+x up to the root, o+r on the file.
  await chmod(tmp, 0o755);
  await chmod(root, 0o755);
  const store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
  const daemon = await startDaemon(store, { listen: [{ kind: 'unix', path: join(tmp, 'sock') }], fromPathRoots: [root] });
  const blobs = new GrpcBlobService(daemon.addrs[0]);
  try {
    const local = await blobs.fromPath();
    assert.ok(local, 'the daemon offers to read local files');
    const before = readBuffersAllocated();
    for (let round = 0; round < 2; round++) {
      const data = Buffer.alloc(48 * MiB + 777);
      for (let o = 0; o + 4 <= data.length; o += 4) data.writeUInt32LE(((o + round) * 2654435761) >>> 0, o);
      const file = join(root, `large-${round}`);
      await writeFile(file, data, { mode: 0o644 });
      const digest: Buffer = await local!.put(blake3(data), data.length, file);
      assert.deepEqual(digest, blake3(data));
      const h = new Blake3Stream();
      for await (const c of (await blobs.read(digest))!) h.update(c);
      assert.deepEqual(h.digest(), digest, 'the stored blob holds the file');
    }
    // The Reads above take the store's own lent buffers (8 at most); a fresh buffer per MiB read from the files would be 98 more.
    const allocated = readBuffersAllocated() - before;
    assert.ok(allocated <= 24, `${allocated} read buffers allocated for 2 files of 49 chunks and their Reads`);
  } finally {
    await blobs.close();
    await daemon.stop();
    await store.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
