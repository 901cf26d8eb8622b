// What fsck reports: findings, counts, options, and their formatting.

/** `object`: an S3 object of a scale-out store (see scaleout-fsck.ts). */
export type FindingKind = 'blob' | 'directory' | 'pathinfo' | 'tmp' | 'layout' | 'pack' | 'object';

export interface Finding {
  severity: 'error' | 'warning';
  kind: FindingKind;
  /** The object's file, relative to the store directory (scale-out: its S3 key below the prefix, or table/key). */
  object: string;
  message: string;
}

export interface FsckCounts {
  blobs: number;
  blobBytes: number;
  directories: number;
  pathInfos: number;
  /** NARs rendered and compared (with `nar`). */
  nars: number;
  narBytes: number;
  orphanedBlobs: number;
  orphanedDirectories: number;
  tempFilesInProgress: number;
  tempFilesLeftOver: number;
  errors: number;
  warnings: number;
}

export interface FsckOptions {
  /** Render every PathInfo's NAR and compare it with the recorded hash and size. */
  nar?: boolean;
  /** Objects checked at once (default 8). */
  concurrency?: number;
  /** NARs rendered at once (default 2). */
  narConcurrency?: number;
  /** References held in memory per kind before they spill to scratch files (default 16 MiB). */
  spillLimitBytes?: number;
  /** Where scratch files go (default the OS temp directory). */
  scratchDir?: string;
  onFinding?(f: Finding): void;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function newCounts(): FsckCounts {
  return {
    blobs: 0,
    blobBytes: 0,
    directories: 0,
    pathInfos: 0,
    nars: 0,
    narBytes: 0,
    orphanedBlobs: 0,
    orphanedDirectories: 0,
    tempFilesInProgress: 0,
    tempFilesLeftOver: 0,
    errors: 0,
    warnings: 0,
  };
}

/** "1.5 MiB" */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}
