// Node's flags for nix-castore live in four places: the CLI's
// `#!/usr/bin/env -S node …` line, `npm start`, the hook script's fallback
// and the Nix package's wrapper. Each runs the same CLI, so each must pass
// the same flags; and the flags must do what they are there for.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLI, CLI_NODE_FLAGS, waitForSocket } from '../helpers/daemon.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { putFromPool } from '../helpers/pooled-put.js';

const MiB = 1 << 20;
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const read = (rel: string): string => readFileSync(REPO + rel, 'utf8');
const flags = CLI_NODE_FLAGS.join(' ');

/** One blob of `mib` MiB, every round's different. */
const put = (blobs: GrpcBlobService, mib: number, round: number) => putFromPool(blobs, mib * MiB, round, Buffer.alloc(MiB, round));

describe('Node flags of the CLI', () => {
  it('the CLI line has the heap flags', () => {
    assert.deepEqual(CLI_NODE_FLAGS, ['--max-semi-space-size=4', '--initial-old-space-size=32']);
  });

  it('npm start, the hook fallback and the Nix wrapper pass the same flags', () => {
    assert.match(JSON.parse(read('package.json')).scripts.start, new RegExp(`node ${flags} dist/src/cli/main\\.js daemon$`));
    assert.match(read('bin/nix-castore-hook'), new RegExp(`exec node ${flags} "\\$here/\\.\\./dist/src/cli/main\\.js" hook "\\$@"`));
    assert.match(read('nix/package.nix'), new RegExp(`--add-flags "${flags} \\$out/lib/node_modules/nix-castore/dist/src/cli/main\\.js"`));
  });

  it('a daemon receiving large blobs after idling runs (almost) no full collections', async () => {
    // Every new network buffer counts against V8's old-generation limit
    // until it is freed. Without --initial-old-space-size V8 shrinks a small
    // heap's limit to a few MB above what survives: most daemons then ran a
    // full collection per ~25 MB received (15-19 here, up to twice the CPU
    // of a Put). Two daemons, as it did not happen in every daemon. (The
    // daemon's --no-concurrent-array-buffer-sweeping, daemon-command.ts,
    // answers the same thing under disk load, which this does not make.)
    for (let d = 0; d < 2; d++) {
      const tmp = await mkdtemp(join(tmpdir(), 'node-flags-'));
      const child = spawn(process.execPath, [...CLI_NODE_FLAGS, '--trace-gc', CLI, 'daemon', '--listen', `unix:${tmp}/s`, '--data', `${tmp}/data`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b) => (out += b));
      child.stderr.on('data', (b) => (out += b));
      const blobs = new GrpcBlobService(`grpc+unix://${tmp}/s`);
      try {
        await waitForSocket(`${tmp}/s`, child, () => out);
        await put(blobs, 2, 99);
        const before = out.length;
        for (let round = 0; round < 3; round++) {
          await new Promise((r) => setTimeout(r, 1200)); // idle, as between a client's uploads
          await put(blobs, 128, round);
        }
        const full = out.slice(before).split('\n').filter((l) => l.includes('Mark-Compact')).length;
        assert.ok(full <= 3, `daemon ${d}: ${full} full collections while receiving 384 MiB`);
      } finally {
        await blobs.close();
        child.kill('SIGKILL');
        await rm(tmp, { recursive: true, force: true });
      }
    }
  });
});
