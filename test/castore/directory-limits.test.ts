// Directory messages stay within what a gRPC client can receive (wire.md
// §7: 4 MiB), checked as a directory grows (entryEncodedBytes, which must
// agree with the canonical encoding) and once it is whole (ClosureValidator).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ClosureValidator } from '../../src/castore/closure-validator.js';
import { encodeDirectory, entryEncodedBytes, MAX_DIRECTORY_BYTES } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import type { Directory } from '../../src/castore/messages.js';
import { seededRandom } from '../helpers/seeded-random.js';

it('entryEncodedBytes adds up to the canonical encoding, whatever the entries', () => {
  const rng = seededRandom(7);
  for (let round = 0; round < 200; round++) {
    const d: Directory = { directories: [], files: [], symlinks: [] };
    const n = rng.range(0, 12);
    for (let i = 0; i < n; i++) {
      const name = Buffer.from(`${String(i).padStart(3, '0')}${'x'.repeat(rng.range(0, 250))}`);
      const size = [0, 1, 127, 128, 16383, 16384, 2 ** 32, 2 ** 53 - 1][rng.range(0, 7)];
      const kind = rng.range(0, 2);
      if (kind === 0) d.directories.push({ name, digest: blake3(name), size });
      else if (kind === 1) d.files.push({ name, digest: blake3(name), size, executable: rng.chance(0.5) });
      else d.symlinks.push({ name, target: Buffer.alloc(rng.range(1, 4095), 0x61) });
    }
    let sum = 0;
    for (const e of d.directories) sum += entryEncodedBytes({ type: 'directory', ...e });
    for (const e of d.files) sum += entryEncodedBytes({ type: 'file', ...e });
    for (const e of d.symlinks) sum += entryEncodedBytes({ type: 'symlink', ...e });
    assert.equal(sum, encodeDirectory(d).length, `round ${round}`);
  }
});

it('a Put stream refuses a directory over 4 MiB encoded, and takes one just under', () => {
  const symlinks = (n: number, target: number) => Array.from({ length: n }, (_, i) => ({ name: Buffer.from(`l${String(i).padStart(5, '0')}`), target: Buffer.alloc(target, 0x61) }));
  const over: Directory = { directories: [], files: [], symlinks: symlinks(1100, 4000) };
  assert.ok(encodeDirectory(over).length > MAX_DIRECTORY_BYTES);
  assert.throws(() => new ClosureValidator().add(over), (e) => isKind(e, 'invalid') && /a directory of 1100 entries takes \d+ bytes as one Directory message, over the 4194304/.test((e as Error).message));
  const under: Directory = { directories: [], files: [], symlinks: symlinks(1000, 4090) };
  assert.ok(encodeDirectory(under).length <= MAX_DIRECTORY_BYTES);
  const v = new ClosureValidator();
  v.add(under);
  assert.equal(v.ordered.length, 1);
});
