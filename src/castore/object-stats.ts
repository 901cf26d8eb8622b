// What a service holds: `nix-castore stats`, the store_* metrics and the
// StoreStats gRPC service all read these.

/** Objects of one kind and their bytes (blobs: distinct blob bytes; directories: canonical encodings). */
export interface ObjectStats {
  count: number;
  bytes: number;
}

/** PathInfos and the sum of their NAR sizes. */
export interface PathInfoStats {
  count: number;
  narBytes: number;
}
