// Formats whose bytes are compressed already, known by their first bytes.
// zstd cannot shrink them, so the S3 store does not try: in the bench
// closure 28,857 of 48,182 blobs (gzip'd man pages and changelogs, PNGs)
// cost 0.9 CPU s of zstd to save 0.55 MiB. A blob that only looks like one
// of these is stored raw, which is always correct. zip is not listed: its
// entries may be stored uncompressed (jars often are).
const MAGICS: readonly (readonly number[])[] = [
  [0x1f, 0x8b], // gzip
  [0x28, 0xb5, 0x2f, 0xfd], // zstd
  [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], // xz
  [0x42, 0x5a, 0x68], // bzip2 "BZh"
  [0x04, 0x22, 0x4d, 0x18], // lz4 frame
  [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], // 7z
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], // PNG
  [0xff, 0xd8, 0xff], // JPEG
  [0x77, 0x4f, 0x46, 0x32], // WOFF2 "wOF2"
];

/** Whether `bytes` begin like a compressed format (gzip, zstd, xz, bzip2, lz4, 7z, PNG, JPEG, WOFF2). */
export function looksCompressed(bytes: Uint8Array): boolean {
  for (const m of MAGICS) {
    if (bytes.length < m.length) continue;
    let k = 0;
    while (k < m.length && bytes[k] === m[k]) k++;
    if (k === m.length) return true;
  }
  return false;
}
