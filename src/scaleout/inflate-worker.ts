// An inflating thread (inflate-pool.ts): decodes the zstd units of a job
// into exactly their stated sizes and checks each piece's BLAKE3 (or its
// first bytes) before anything is handed back. Raw units are only checked.
import { parentPort } from 'node:worker_threads';
import { blake3 } from '../castore/digest.js';
import { zstdDecompressExact } from '../nix/zstd-exact.js';
import type { InflateJob, InflateReply, UnitResult } from './inflate-pool.js';

const port = parentPort!;

function matches(bytes: Uint8Array, expected: Uint8Array): boolean {
  const got = blake3(bytes);
  for (let i = 0; i < expected.length; i++) if (got[i] !== expected[i]) return false;
  return true;
}

async function unit(input: Uint8Array, u: InflateJob['units'][number]): Promise<UnitResult> {
  const stored = input.subarray(u.at, u.at + u.stored);
  let raw: Uint8Array;
  if (!u.compressed) raw = stored;
  else {
    try {
      raw = await zstdDecompressExact(stored, u.raw);
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
  let at = 0;
  let check = 0;
  for (let k = 0; k < u.lengths.length; k++) {
    const piece = raw.subarray(at, (at += u.lengths[k]));
    if (!matches(piece, u.checks.subarray(check, (check += u.checkLengths[k])))) return { error: 'mismatch', piece: k };
  }
  return { bytes: raw };
}

port.on('message', async (job: InflateJob) => {
  const input = new Uint8Array(job.input);
  const results: UnitResult[] = [];
  const transfer = new Set<ArrayBuffer>([job.input]);
  for (const u of job.units) {
    const r = await unit(input, u);
    if ('bytes' in r) transfer.add(r.bytes.buffer as ArrayBuffer);
    results.push(r);
  }
  const reply: InflateReply = { id: job.id, results, input: job.input };
  // The input goes back too: raw units are views of it, and its memory is freed with the reply.
  port.postMessage(reply, [...transfer]);
});
