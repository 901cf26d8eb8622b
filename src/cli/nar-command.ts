import { setFlagsFromString } from 'node:v8';
import { parse, UsageError, type Command } from '../util/usage.js';
import { openConfiguredStore, parseStorePathArg } from './path-info-command.js';
import { recordReads } from './daemon-gc.js';
import { unwritableStoreDirs } from './daemon-ops.js';
import { renderNar } from '../store/render-nar.js';
import { lookupStorePath } from '../store/nix-view.js';
import { formatNix32 } from '../nix/hash.js';
import { absolute } from '../nix/store-path.js';
import { HashThread } from '../upload/hash-thread.js';
import { ChunkPool } from '../nix/nar.js';

const HELP = `Usage: nix-castore nar [--store ADDR] STOREPATH > FILE.nar

Writes the NAR of a store path to stdout, rendered from the castore as it
is written (memory stays flat whatever the size) — the same bytes as
'nix-store --dump STOREPATH'. Restore it with 'nix-store --restore DIR'.

The NAR's size and SHA-256 are checked against what the store recorded;
a mismatch is reported and the exit status is 1 (the bytes are already
out by then: treat the output as bad). Rendering stops as soon as the NAR
grows past the recorded size.

STOREPATH is /nix/store/<hash>-<name>, its basename, or a symlink to one.

Options:
      --store ADDR  the store to read (otherwise BLOB_SERVICE_ADDR etc.,
                    the config file, then grpc+http://[::1]:8000); also
                    file:///abs/dir or grpc+unix:///socket.
  -h, --help        show this help.

Exit status: 0 written and verified, 1 not in the store or reading
failed, 2 bad input or usage (e.g. stdout is a terminal).`;

export const narCommand: Command = {
  name: 'nar',
  summary: "write a store path's NAR to stdout",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { store: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('give exactly one store path, e.g. /nix/store/<hash>-<name>');
    const sp = parseStorePathArg(positionals[0]);
    const path = absolute(sp);
    const out = process.stdout;
    if (out.isTTY) throw new UsageError('refusing to write a NAR to a terminal: redirect stdout to a file or a pipe');

    moreHeapGrowth();
    const { store, where, addrs } = await openConfiguredStore(values.store, 'nar');
    // A NAR export is a read of the path (retention), recorded in the store
    // if it may be written: not into a Nix store path (`--store file://$PWD/result`),
    // which root could otherwise change under Nix.
    if ((await unwritableStoreDirs(addrs)).length === 0) recordReads(store);
    let hashing: HashThread | undefined;
    try {
      const info = await lookupStorePath(store.pathInfos, sp);
      if (!info?.node) {
        console.error(`nix-castore: ${path} is not in the store (${where})`);
        return 1;
      }
      let outError: Error | undefined;
      const onError = (err: Error) => (outError ??= err);
      out.on('error', onError);
      let size = 0;
      const ni = info.narinfo;
      const recorded = ni && ni.narSha256.length === 32 ? ni : undefined;
      // SHA-256 on a thread of its own: on this one it was a sixth to a fifth of the rendering's time.
      if (recorded) hashing = new HashThread();
      const hash = hashing?.begin(path);
      try {
        // Stops once past the recorded NarSize: a Directory DAG can render exponentially more than it stores.
        // Chunks go back to the renderer once written (the hashing thread copies them at once).
        const pool = new ChunkPool();
        for await (const chunk of renderNar(info.node, store, { maxBytes: recorded?.narSize, pool })) {
          if (hash) {
            if (!hash.hasRoom(chunk.length)) await hash.room(chunk.length);
            hash.update(chunk);
          }
          size += chunk.length;
          if (!out.write(chunk, () => pool.give(chunk))) await drained(out);
          if (outError) break;
        }
        await new Promise<void>((resolve) => out.write('', () => resolve()));
      } catch (err) {
        if (outError) throw err;
        console.error(`nix-castore: rendering the NAR of ${path} failed after ${size} bytes (the output is incomplete: discard it): ${(err as Error).message}`);
        return 1;
      } finally {
        out.off('error', onError);
        if (outError) hash?.abort();
      }
      if (outError) {
        console.error(`nix-castore: writing the NAR of ${path} failed: ${outError.message}`);
        return 1;
      }
      if (recorded && hash) {
        const got = await hash.digest();
        if (size !== recorded.narSize || !got.equals(Buffer.from(recorded.narSha256))) {
          console.error(
            `nix-castore: the NAR of ${path} does not match the store's record: ` +
              `got ${size} bytes, ${formatNix32(got)}; recorded ${recorded.narSize} bytes, ${formatNix32(recorded.narSha256)}`,
          );
          return 1;
        }
      }
      return 0;
    } finally {
      await hashing?.close();
      await store.close();
    }
  },
};

/**
 * Rendering from S3 receives the NAR's bytes in fresh 64 KiB socket
 * buffers, and the read-ahead holds them long enough to be promoted:
 * V8's old generation then reached its limit (a small multiple of the
 * ~20 MB live) every ~20 MB received, a full collection each time (94 for
 * the bench's 1.9 GB). Letting it grow to 5x what is live before the next
 * one leaves far fewer; what is live stays bounded by the read-ahead.
 * Only for this one-shot command (the daemon keeps V8's default, like
 * copy-run.ts's lessHeapGrowth for copies). Read whenever V8 sets the
 * next limit, so setting it now takes effect.
 */
function moreHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=400');
}

function drained(out: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}
