// The few parts of untyped dependencies that compression.ts uses.
declare module 'lzma-native' {
  import type { Duplex } from 'node:stream';
  export const CHECK_CRC64: number;
  export const CONCATENATED: number;
  export function createStream(coder: 'easyEncoder' | 'streamDecoder', options: Record<string, unknown>): Duplex;
}

declare module 'unbzip2-stream' {
  import type { Duplex } from 'node:stream';
  export default function bz2(): Duplex;
}
