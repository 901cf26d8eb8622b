// Which packed records to read together: records of one pack lying close
// to each other are one read. A copy packs a path's small files in the
// order it walked them, which is the order NAR rendering asks for them, so
// a group of hundreds of files is a few reads instead of one each.

/** A record to read: where it is, and which answer it fills. */
export interface PackedRecord<P> {
  i: number;
  hex: string;
  pack: P;
  /** Where its record (header, then bytes) starts. */
  offset: number;
  /** Its blob's bytes (the record is RECORD_HEADER more). */
  length: number;
}

/** A gap this small between two records is read along rather than split on. */
export const RUN_GAP = 16 << 10;
/** A run spans at most this much (a record longer than it is a run of its own). */
export const RUN_MAX = 4 << 20;

/** Records grouped into runs: one pack each, in offset order, gaps ≤ RUN_GAP, spans ≤ RUN_MAX unless one record is larger. */
export function packRuns<P>(records: PackedRecord<P>[], header: number): PackedRecord<P>[][] {
  const byPack = new Map<P, PackedRecord<P>[]>();
  for (const r of records) {
    const list = byPack.get(r.pack);
    if (list) list.push(r);
    else byPack.set(r.pack, [r]);
  }
  const runs: PackedRecord<P>[][] = [];
  for (const list of byPack.values()) {
    list.sort((a, b) => a.offset - b.offset);
    let run: PackedRecord<P>[] = [];
    let start = 0;
    let end = 0;
    for (const r of list) {
      const rEnd = r.offset + header + r.length;
      if (run.length > 0 && (r.offset - end > RUN_GAP || Math.max(end, rEnd) - start > RUN_MAX)) {
        runs.push(run);
        run = [];
      }
      if (run.length === 0) {
        start = r.offset;
        end = rEnd;
      }
      run.push(r);
      end = Math.max(end, rEnd);
    }
    if (run.length > 0) runs.push(run);
  }
  return runs;
}

/** The bytes a run's read covers. */
export function runSpan<P>(run: PackedRecord<P>[], header: number): { start: number; end: number } {
  let end = 0;
  for (const r of run) end = Math.max(end, r.offset + header + r.length);
  return { start: run[0].offset, end };
}
