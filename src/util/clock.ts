// The time retention is judged by. Tests of the garbage collector move it
// without waiting: NIX_CASTORE_CLOCK_FILE names a file holding the current
// time in milliseconds since the epoch, read at every call (test use only).
import { readFileSync } from 'node:fs';

export function now(): number {
  const file = process.env.NIX_CASTORE_CLOCK_FILE;
  if (!file) return Date.now();
  const ms = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`NIX_CASTORE_CLOCK_FILE ${file}: not a time in milliseconds`);
  return ms;
}
