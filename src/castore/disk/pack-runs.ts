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

/** Records one read covers, and the bytes [start, end) it reads. */
export interface Run<P> {
  records: PackedRecord<P>[];
  start: number;
  end: number;
}

/** Records grouped into runs: one pack each, in offset order, gaps ≤ RUN_GAP, spans ≤ RUN_MAX unless one record is larger. */
export function packRuns<P>(records: PackedRecord<P>[], header: number): Run<P>[] {
  const byPack = new Map<P, PackedRecord<P>[]>();
  for (const r of records) {
    const list = byPack.get(r.pack);
    if (list) list.push(r);
    else byPack.set(r.pack, [r]);
  }
  const runs: Run<P>[] = [];
  for (const list of byPack.values()) {
    list.sort((a, b) => a.offset - b.offset);
    let run: Run<P> | undefined;
    for (const r of list) {
      const rEnd = r.offset + header + r.length;
      if (run && (r.offset - run.end > RUN_GAP || Math.max(run.end, rEnd) - run.start > RUN_MAX)) run = undefined;
      if (!run) runs.push((run = { records: [], start: r.offset, end: rEnd }));
      run.records.push(r);
      run.end = Math.max(run.end, rEnd);
    }
  }
  return runs;
}
