// The compressions of Nix binary caches by name, extension and level:
// no codecs here, so what only names them loads none.
export type Compression = 'none' | 'zstd' | 'xz' | 'bzip2';

/** What the daemon can serve NARs as. */
export const SERVED_COMPRESSIONS = ['zstd', 'xz', 'none'] as const;
export type ServedCompression = (typeof SERVED_COMPRESSIONS)[number];

/** File extension after `.nar` of each compression, as Nix names them. */
export const EXTENSION: Record<Compression, string> = { none: '', zstd: '.zst', xz: '.xz', bzip2: '.bz2' };

export const LEVELS: Record<ServedCompression, { min: number; max: number; default: number }> = {
  zstd: { min: 1, max: 19, default: 3 },
  // liblzma's presets; 0 is left out (lzma-native reads it as "default").
  // Preset 6 (xz's default) compresses at a few MB/s: too slow to serve on the fly.
  xz: { min: 1, max: 9, default: 2 },
  none: { min: 0, max: 0, default: 0 },
};

/** Bytes per zstd frame when compressing. */
export const ZSTD_FRAME = 1 << 20;
/** Frames of one stream compressing at once (each holds its MiB and its output). */
export const FRAMES_IN_FLIGHT = 3;

/**
 * liblzma's encoder memory per preset (xz(1), "Compressor memory usage"),
 * MiB: what one .nar.xz response's compressor holds.
 */
const XZ_ENCODER_MIB = [3, 9, 17, 32, 48, 94, 94, 186, 370, 674];

/**
 * Memory one compressing stream holds, beyond what renders its input: for
 * zstd the frames gathering and compressing and their outputs (libzstd's
 * own context per frame not counted: ~1-2 MiB at the default level), for
 * xz its encoder.
 */
export function compressorBytes(kind: ServedCompression, level: number): number {
  if (kind === 'zstd') return (2 * FRAMES_IN_FLIGHT + 1) * ZSTD_FRAME;
  // A level outside the table (the CLI refuses those) counts as the largest: never less than the encoder may take.
  if (kind === 'xz') return (XZ_ENCODER_MIB[level] ?? XZ_ENCODER_MIB[XZ_ENCODER_MIB.length - 1]) * 2 ** 20;
  return 0;
}

export class CompressionError extends Error {
  override name = 'CompressionError';
}

/** The compression a narinfo's `Compression` value or a file extension names, if known. */
export function parseCompression(s: string): Compression | undefined {
  return (['none', 'zstd', 'xz', 'bzip2'] as const).find((c) => c === s);
}

/** `nar/….nar.zst` → zstd etc.; undefined for an unknown extension. */
export function compressionOfExtension(ext: string): Compression | undefined {
  return (Object.keys(EXTENSION) as Compression[]).find((c) => EXTENSION[c] === ext);
}

export function checkLevel(kind: ServedCompression, level: number): void {
  const l = LEVELS[kind];
  if (!Number.isInteger(level) || level < l.min || level > l.max) {
    throw new CompressionError(kind === 'none' ? 'no compression takes no level' : `${kind} levels go from ${l.min} to ${l.max}, not ${level}`);
  }
}

