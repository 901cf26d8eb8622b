// Byte ranges of data held as a list of chunks end to end (a GET's body as
// the socket delivered it, decoded frames), as views: never copied.

/** Each chunk's offset in what `chunks` hold end to end, and their total after the last. */
export function chunkStarts(chunks: readonly Uint8Array[]): number[] {
  const starts: number[] = [];
  let at = 0;
  for (const c of chunks) {
    starts.push(at);
    at += c.length;
  }
  starts.push(at);
  return starts;
}

/** Views of bytes [from, from+length) of what `chunks` hold end to end (`starts`: chunkStarts(chunks)). */
export function sliceChunks(chunks: readonly Uint8Array[], starts: readonly number[], from: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  // The last chunk starting at or before `from`.
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= from) lo = mid;
    else hi = mid - 1;
  }
  const end = from + length;
  for (let k = lo; k < chunks.length && starts[k] < end; k++) {
    const c = chunks[k];
    const a = Math.max(from, starts[k]) - starts[k];
    const b = Math.min(end, starts[k] + c.length) - starts[k];
    if (b > a) out.push(a === 0 && b === c.length ? c : c.subarray(a, b));
  }
  return out;
}
