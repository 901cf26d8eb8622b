// The durable queue of the post-build hook: one small JSON file per build,
// written atomically (temp file, fsync, rename, fsync of the directory), so
// a queued build survives crashes and restarts. Files are named by time, so
// listing them sorted gives the order they were queued in. An entry is
// removed only after its paths are in the store (at-least-once); a failing
// one is rescheduled with backoff and never blocks the others.
// Only node: imports here — the hook's queue mode must start fast.
import { open, readdir, readFile, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeDirs } from '../util/make-dirs.js';
import { salvageEntry } from './spool-salvage.js';

export interface SpoolEntry {
  /** File name in the spool directory. */
  id: string;
  drvPath?: string;
  /** Output paths; empty when only the derivation is known (Nix 2.8). */
  outPaths: string[];
  queuedAt: string;
  attempts: number;
  nextAttemptAt?: string;
  lastError?: string;
  /** The bytes (base64) of an entry that could not be parsed nor salvaged, kept as they were. */
  unreadable?: string;
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function writeDurably(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    const h = await open(tmp, 'w', 0o644);
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    await unlink(tmp).catch(() => {}); // a full disk: leave nothing behind
    throw err;
  }
  await syncDir(dir);
}

export async function enqueue(dir: string, job: { drvPath?: string; outPaths: string[] }): Promise<string> {
  await makeDirs(dir);
  const now = new Date();
  // Sortable: zero-padded milliseconds since the epoch, then uniqueness.
  const id = `${String(now.getTime()).padStart(15, '0')}-${process.pid}-${randomBytes(4).toString('hex')}.json`;
  const entry: Omit<SpoolEntry, 'id'> = { drvPath: job.drvPath, outPaths: job.outPaths, queuedAt: now.toISOString(), attempts: 0 };
  await writeDurably(dir, id, JSON.stringify(entry) + '\n');
  return id;
}

/** Queued entries, oldest first. Unreadable files are reported as entries with an error, never skipped. */
export async function listEntries(dir: string): Promise<SpoolEntry[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: SpoolEntry[] = [];
  for (const id of names) {
    let raw: Buffer;
    try {
      raw = await readFile(join(dir, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // drained meanwhile
      out.push({ id, outPaths: [], queuedAt: '', attempts: 0, lastError: `unreadable spool entry: ${(err as Error).message}` });
      continue;
    }
    try {
      const e = JSON.parse(raw.toString('utf8')) as Omit<SpoolEntry, 'id'>;
      out.push({ ...e, outPaths: Array.isArray(e.outPaths) ? e.outPaths : [], attempts: e.attempts ?? 0, id });
    } catch (err) {
      out.push(salvageEntry(id, raw, (err as Error).message));
    }
  }
  return out;
}

/** How many entries are queued and when the oldest was (from the names alone: no file is read). */
export async function queueSnapshot(dir: string): Promise<{ entries: number; oldestMs?: number }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: 0 };
    throw err;
  }
  const ms = names.length ? Number(/^(\d{15})-/.exec(names[0])?.[1]) : NaN;
  return { entries: names.length, oldestMs: Number.isFinite(ms) ? ms : undefined };
}

export async function complete(dir: string, id: string): Promise<void> {
  await unlink(join(dir, id)).catch((err) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
  await syncDir(dir);
}

export const MAX_BACKOFF_MS = 10 * 60 * 1000;

export async function reschedule(dir: string, e: SpoolEntry, error: string, now = Date.now()): Promise<SpoolEntry> {
  const attempts = e.attempts + 1;
  const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts - 1, 20)) * (0.5 + Math.random() / 2);
  const next: SpoolEntry = { ...e, attempts, lastError: error, nextAttemptAt: new Date(now + delay).toISOString() };
  // A file that could not even be read: writing over it would lose what it holds.
  if (e.lastError?.startsWith('unreadable spool entry') && e.unreadable === undefined) return next;
  const { id, ...body } = next;
  await writeDurably(dir, id, JSON.stringify(body) + '\n');
  return next;
}

export function isDue(e: SpoolEntry, now = Date.now()): boolean {
  return !e.nextAttemptAt || Date.parse(e.nextAttemptAt) <= now;
}

/**
 * Runs `fn` holding the spool's drain lock, so two drainers (the daemon and
 * a manual `drain`) never upload the same entry at once. A lock left by a
 * dead process is taken over; the lock names its holder by pid and start
 * time, so a pid used again (a container's drainer restarted as pid 1 after
 * a kill, an unrelated process) does not keep the spool locked for ever.
 * Returns undefined when another drainer holds it.
 */
export async function withDrainLock<T>(dir: string, fn: () => Promise<T>): Promise<T | undefined> {
  await makeDirs(dir);
  const lock = join(dir, '.drain.lock');
  if (heldHere.has(lock)) return undefined;
  heldHere.add(lock); // before taking it: a second call here must not see our pid as a stale lock
  try {
    if (!(await takeLock(lock))) return undefined;
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => {});
    }
  } finally {
    heldHere.delete(lock);
  }
}

/** Drain locks this process holds: a lock naming our pid but not in here was left by an earlier process with the same pid. */
const heldHere = new Set<string>();

async function takeLock(lock: string): Promise<boolean> {
  for (let tries = 0; tries < 2; tries++) {
    try {
      // A symbolic link holding the holder: created whole in one step (never
      // seen empty), and a short one needs no data block, so a spool on a
      // full disk can still be drained (which frees it).
      await symlink(`${process.pid} ${(await startTime(process.pid)) ?? ''}`, lock);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A regular file: the lock of an older nix-castore.
      const holder = await readlink(lock).catch(() => readFile(lock, 'utf8')).catch(() => '');
      const [pid, started] = holder.trim().split(/\s+/);
      if (await holderAlive(Number(pid), started)) return false;
      await unlink(lock).catch(() => {}); // left by a dead process
    }
  }
  return false;
}

async function holderAlive(pid: number, started: string | undefined): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !alive(pid)) return false;
  const now = started ? await startTime(pid) : undefined;
  return now === undefined || now === started;
}

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22); undefined where /proc cannot tell. */
async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
