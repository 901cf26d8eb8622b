// Issue 18, finding 5: Directory Put checks every file's stated size
// against the blob the store has (tvix does not), so a Directory whose
// NAR cannot be rendered is refused when it is uploaded, not only at
// PathInfo Put. A blob not uploaded yet is not an error here (clients may
// send Directories first); PathInfo Put still requires it.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';

let daemon: DaemonProcess;
let w: Writer;
const content = randomBytes(1000);

before(async () => {
  daemon = await startDaemonProcess();
  w = new Writer(daemon.socket);
  assert.equal((await w.putBlob(content)).name, 'OK');
});
after(async () => {
  w?.close();
  await daemon?.stop();
});

const withFile = (name: string, digest: Uint8Array, size: number): Directory => ({
  directories: [],
  symlinks: [],
  files: [{ name: Buffer.from(name), digest, size, executable: false }],
});

it('a file stating another size than its blob is refused, and nothing is stored', async () => {
  for (const size of [999, 1001, 1]) {
    const dir = withFile(`wrong-${size}`, blake3(content), size);
    const a = await w.putDirectories([dir]);
    assert.equal(a.name, 'INVALID_ARGUMENT', a.details);
    assert.match(a.details, new RegExp(`states size ${size}, but its blob \\S+ has 1000 bytes`));
    assert.equal((await w.getDirectory(directoryDigest(dir))).name, 'NOT_FOUND');
  }
});

it('also deep in a closure: the whole stream is refused', async () => {
  const leaf = withFile('deep', blake3(content), 1234);
  const root: Directory = { files: [], symlinks: [], directories: [{ name: Buffer.from('sub'), digest: directoryDigest(leaf), size: directorySize(leaf, 'head') }] };
  const a = await w.putDirectories([leaf, root]);
  assert.equal(a.name, 'INVALID_ARGUMENT', a.details);
  assert.equal((await w.getDirectory(directoryDigest(root))).name, 'NOT_FOUND');
  assert.equal((await w.getDirectory(directoryDigest(leaf))).name, 'NOT_FOUND');
});

it('the right size is accepted; a blob not uploaded yet is not checked here', async () => {
  const good = withFile('right', blake3(content), 1000);
  assert.equal((await w.putDirectories([good])).name, 'OK');
  const early = withFile('blob-comes-later', blake3(Buffer.from('not uploaded yet')), 16);
  assert.equal((await w.putDirectories([early])).name, 'OK');
});
