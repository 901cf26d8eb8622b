// What a collection did (or, dry, would do).
export interface GcReport {
  dryRun: boolean;
  paths: { total: number; kept: number; deleted: number; keptNarBytes: number };
  /** Store paths (basenames) kept, with why: pinned, recent, grace, size, reference. */
  kept: { path: string; reason: string }[];
  deleted: string[];
  directories: { deleted: number };
  blobs: { deleted: number };
  packs: { rewritten: number; deleted: number; liveBytesCopied: number };
  /** Disk (or bucket) usage before and after, and the difference. */
  bytes: { before: number; after: number; reclaimed: number };
  warnings: string[];
  seconds: number;
  /** Peak resident set size of the collecting process so far. */
  peakRssMiB: number;
  /** The memory budget of the marks and lists, and whether they went beyond it to scratch files. */
  memory?: { budgetBytes: number; spilled: boolean };
}

export function formatReport(r: GcReport): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const would = r.dryRun ? 'would delete' : 'deleted';
  const lines = [
    ...r.warnings.map((w) => `warning: ${w}`),
    ...r.deleted.map((p) => `${would} /nix/store/${p}`),
    `gc: ${r.paths.total} paths: kept ${r.paths.kept} (${mib(r.paths.keptNarBytes)} of NARs), ${would} ${r.paths.deleted}; ` +
      `${would} ${r.directories.deleted} directories and ${r.blobs.deleted} blobs; ` +
      `packs: ${r.packs.rewritten} rewritten (${mib(r.packs.liveBytesCopied)} of live records copied), ${r.packs.deleted} deleted`,
    r.dryRun
      ? `gc: dry run, nothing changed (store uses ${mib(r.bytes.before)})`
      : `gc: store used ${mib(r.bytes.before)}, now ${mib(r.bytes.after)}: ${mib(r.bytes.reclaimed)} reclaimed in ${r.seconds.toFixed(1)} s`,
  ];
  if (r.memory?.spilled) lines.push(`gc: the marks outgrew --memory ${mib(r.memory.budgetBytes)} and spilled to scratch files (peak RSS ${r.peakRssMiB} MiB)`);
  return lines.join('\n');
}
