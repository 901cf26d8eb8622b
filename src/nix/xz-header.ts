// The LZMA2 dictionary an .xz file asks for, read from its first block's
// header (the .xz file format, sections 2.1.1 and 3.1): what decoding it
// will hold in memory, known before any of it is decoded.

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const STREAM_HEADER = 12;
const LZMA2 = 0x21;

/** Bytes of `head` needed before xzDictionaryBytes can answer (at most 12 + 1024). */
export function xzHeadNeeded(head: Uint8Array): number {
  if (head.length <= STREAM_HEADER) return STREAM_HEADER + 1;
  const b0 = head[STREAM_HEADER];
  return b0 === 0 ? STREAM_HEADER + 1 : STREAM_HEADER + (b0 + 1) * 4;
}

/**
 * The dictionary size of the first block's LZMA2 filter; 0 for a stream
 * without blocks; undefined when the header is not one (the decoder then
 * says what is wrong). `head` holds at least xzHeadNeeded(head) bytes.
 */
export function xzDictionaryBytes(head: Uint8Array): number | undefined {
  if (head.length < STREAM_HEADER + 1 || MAGIC.some((b, i) => head[i] !== b)) return undefined;
  const b0 = head[STREAM_HEADER];
  if (b0 === 0) return 0; // the index: no blocks
  const end = STREAM_HEADER + (b0 + 1) * 4;
  if (head.length < end) return undefined;
  let at = STREAM_HEADER + 1;
  const flags = head[at++];
  const varint = (): number | undefined => {
    let n = 0;
    for (let i = 0; i < 9 && at < end; i++) {
      const b = head[at++];
      n += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return n;
    }
    return undefined;
  };
  if (flags & 0x40 && varint() === undefined) return undefined;
  if (flags & 0x80 && varint() === undefined) return undefined;
  for (let f = 0; f <= (flags & 3); f++) {
    const id = varint();
    const size = varint();
    if (id === undefined || size === undefined || at + size > end) return undefined;
    if (id === LZMA2) {
      const bits = head[at] & 0x3f;
      if (size !== 1 || bits > 40) return undefined;
      return bits === 40 ? 0xffffffff : (2 | (bits & 1)) * 2 ** (Math.floor(bits / 2) + 11);
    }
    at += size;
  }
  return undefined;
}
