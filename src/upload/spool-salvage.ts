// A spool entry that does not parse (a torn or damaged file): what it still
// names is recovered, and its bytes are never thrown away. Both writers put
// drvPath first, so a file cut short usually still names the derivation.
// Only node: imports here (see spool.ts).

/** A SpoolEntry (spool.ts; not imported from there, which imports this). */
export interface SalvagedEntry {
  id: string;
  drvPath?: string;
  outPaths: string[];
  queuedAt: string;
  attempts: number;
  lastError: string;
  unreadable?: string;
}

const STORE_PATH = /^\/[^"\\]*\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$/;

/** The strings of `text` that are complete JSON strings holding a store path. */
function completePaths(text: string): string[] {
  return [...text.matchAll(/"([^"\\]*)"/g)].map((m) => m[1]).filter((s) => STORE_PATH.test(s));
}

/**
 * The entry a damaged file `id` (its bytes `raw`) still describes: its
 * derivation and output paths where they are whole, else an unreadable
 * entry that keeps the bytes (base64) so a rewrite loses nothing.
 */
export function salvageEntry(id: string, raw: Buffer, error: string): SalvagedEntry {
  const text = raw.toString('latin1');
  const ms = Number(/^(\d{15})-/.exec(id)?.[1]);
  const queuedAt = Number.isFinite(ms) ? new Date(ms).toISOString() : '';
  const paths = completePaths(text);
  const drvPath = paths.find((p) => p.endsWith('.drv'));
  const outPaths = [...new Set(paths.filter((p) => !p.endsWith('.drv')))];
  if (drvPath || outPaths.length > 0) return { id, drvPath, outPaths, queuedAt, attempts: 0, lastError: `salvaged from a damaged spool entry (${error})` };
  return { id, outPaths: [], queuedAt, attempts: 0, lastError: `unreadable spool entry: ${error}`, unreadable: raw.toString('base64') };
}
