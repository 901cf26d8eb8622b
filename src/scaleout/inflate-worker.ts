// An inflating thread (inflate-pool.ts): decodes a job's zstd frames into
// exactly their stated size and checks each piece's BLAKE3 (or its first
// bytes) before anything is handed back. Raw stored bytes are only checked.
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

async function inflate(job: InflateJob): Promise<UnitResult> {
  const stored = new Uint8Array(job.input, 0, job.stored);
  let raw: Uint8Array;
  if (!job.compressed) raw = stored;
  else {
    try {
      raw = await zstdDecompressExact(stored, job.raw);
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
  let at = 0;
  let check = 0;
  for (let k = 0; k < job.lengths.length; k++) {
    const piece = raw.subarray(at, (at += job.lengths[k]));
    if (!matches(piece, job.checks.subarray(check, (check += job.checkLengths[k])))) return { error: 'mismatch', piece: k };
  }
  return { bytes: raw };
}

port.on('message', async (job: InflateJob) => {
  const result = await inflate(job);
  const reply: InflateReply = { id: job.id, result, input: job.input };
  // The input goes back too: raw bytes handed on are a view of it, and it is reused when they are not.
  const transfer = [job.input];
  if ('bytes' in result && result.bytes.buffer !== job.input) transfer.push(result.bytes.buffer as ArrayBuffer);
  port.postMessage(reply, transfer);
});
