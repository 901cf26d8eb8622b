// How PathInfo Puts and the garbage collector of one on-disk store stay out
// of each other's way (any number of processes; no flock in Node, so files):
//
//   gc/epoch      bumped by a collector before it deletes anything
//   gc/marking    exists while a collector marks (its pid)
//   gc/journal    store-path digests of PathInfos stored while it marked
//   gc/deleting   exists while a collector deletes (its pid)
//   gc/puts/*     one marker per PathInfo Put in progress (pid in the name)
//   gc/deleted/*  the store paths each recent collection deleted
//
// A Put creates its marker, then waits while `deleting` names a live
// process, then (if the epoch moved) drops what its process cached about
// packs, checks the content, stores the PathInfo, and — if a collector is
// marking — appends the path to the journal, and only then removes its
// marker. A collector writes `deleting` and bumps the epoch, waits for the
// markers of live processes to go, reads the journal and marks those paths
// too, and only then deletes. So a PathInfo is either stored before the
// delete phase (and its content marked), or checked after the deletions
// against the disk as it now is: FAILED_PRECONDITION, and a retry uploads
// what is missing. Never a stored PathInfo with missing content. Nor one
// whose reference a recent collection deleted (its uploader found it
// present before): FAILED_PRECONDITION too, and the retry uploads it.
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CastoreError } from '../errors.js';
import { makeDirsSync } from '../../util/make-dirs.js';

/** How long a PathInfo Put waits for a collector's delete phase before giving up (UNAVAILABLE, retried). */
const PUT_WAIT_MS = 10 * 60_000;

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a state file, or undefined if it is absent. */
export function statePid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const nonce = randomBytes(4).toString('hex');

/**
 * Collections whose deleted paths a PathInfo Put checks its references
 * against: the last 16, and none older than a day (an uploader's "present"
 * answer is older than its Put by minutes, not days). The scale-out store
 * keeps the same (scaleout/pg-gc.ts).
 */
export const DELETED_KEEP_MS = 24 * 3_600_000;
export const DELETED_KEEP_COLLECTIONS = 16;
let markerCount = 0;

export class GcFence {
  readonly dir: string;
  readonly puts: string;
  private seenEpoch: string | undefined;
  private readonly listeners: (() => Promise<void>)[] = [];
  private syncing: Promise<void> | undefined;
  private deleted: Set<string> | undefined;
  /** The look at the epoch that callers of sync() wait for, until it is taken. */
  private nextLook: Promise<void> | undefined;
  /** Looks at the epoch taken so far (for tests). */
  looks = 0;

  constructor(root: string) {
    this.dir = join(root, 'gc');
    this.puts = join(this.dir, 'puts');
  }

  get epochFile(): string {
    return join(this.dir, 'epoch');
  }
  get markingFile(): string {
    return join(this.dir, 'marking');
  }
  get deletingFile(): string {
    return join(this.dir, 'deleting');
  }
  get journalFile(): string {
    return join(this.dir, 'journal');
  }
  get deletedDir(): string {
    return join(this.dir, 'deleted');
  }

  /** Store-path digests (hex) recent collections deleted, as of the last epoch this process saw. */
  private recentlyDeleted(): Set<string> {
    if (this.deleted) return this.deleted;
    const set = new Set<string>();
    let names: string[] = [];
    try {
      names = readdirSync(this.deletedDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const n of names) {
      let text;
      try {
        text = readFileSync(join(this.deletedDir, n), 'utf8');
      } catch {
        continue; // pruned meanwhile
      }
      for (const line of text.split('\n')) if (line) set.add(line);
    }
    return (this.deleted = set);
  }

  /** Whether a recent collection deleted this store path (hex digest) — and it is still gone. */
  wasCollected(hex: string, stillAbsent: () => boolean): boolean {
    return this.recentlyDeleted().has(hex) && stillAbsent();
  }

  /** For the collector, before it deletes PathInfos: records them; drops old records. */
  recordDeleted(epoch: string, hexes: string[]): void {
    makeDirsSync(this.deletedDir);
    const files = readdirSync(this.deletedDir)
      .map((n) => ({ n, t: statSync(join(this.deletedDir, n)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    files.forEach((f, i) => {
      if (i >= DELETED_KEEP_COLLECTIONS - 1 || Date.now() - f.t > DELETED_KEEP_MS) unlinkSync(join(this.deletedDir, f.n));
    });
    writeFileSync(join(this.deletedDir, epoch), hexes.map((h) => h + '\n').join(''));
  }

  init(): void {
    makeDirsSync(this.puts);
  }

  /** Called when a collector has (maybe) deleted since this process last looked: drop cached knowledge. */
  onEpochChange(fn: () => Promise<void>): void {
    this.listeners.push(fn);
  }

  readEpoch(): string {
    // Asked for every Stat: no exception for the usual "never collected".
    if (!existsSync(this.epochFile)) return '0';
    try {
      return readFileSync(this.epochFile, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '0';
      throw err;
    }
  }

  /**
   * Drops cached knowledge if a collector started deleting since the last
   * look. One look (a stat and a small file read) serves every caller that
   * asked before it was taken: each still sees the epoch as of after its
   * call, and a batch of lookups (a PathInfo check of 50k blobs, a gRPC
   * read of many Stats) costs one look, not one each.
   */
  sync(): Promise<void> {
    this.nextLook ??= Promise.resolve().then(() => {
      this.nextLook = undefined;
      return this.look();
    });
    return this.nextLook;
  }

  private look(): Promise<void> {
    this.looks++;
    const epoch = this.readEpoch();
    if (epoch === this.seenEpoch) return this.syncing ?? Promise.resolve();
    if (this.seenEpoch === undefined) {
      this.seenEpoch = epoch; // nothing cached yet that could be stale
      return Promise.resolve();
    }
    this.seenEpoch = epoch;
    this.deleted = undefined;
    const run = (async () => {
      for (const fn of this.listeners) await fn();
    })();
    this.syncing = run.finally(() => {
      if (this.syncing === run) this.syncing = undefined;
    });
    return this.syncing;
  }

  /**
   * Runs `store` (a PathInfo Put: check content, then save) so that no
   * collector deletes while it runs; `storeDigest` is journalled for a
   * collector that is marking.
   */
  guardPut<T>(storeDigest: Uint8Array, store: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.guard([storeDigest], store, signal);
  }

  /**
   * Runs `store`, which makes the store paths `storeDigests` roots (a
   * PathInfo Put, a pin), as guardPut does: never while a collector
   * deletes, and journalled for one that marks.
   */
  async guard<T>(storeDigests: Uint8Array[], store: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.init();
    const marker = join(this.puts, `${process.pid}-${nonce}-${(markerCount++).toString(36)}`);
    // The marker names the paths: a Put killed after storing its PathInfo and
    // before journalling it leaves the marker, and the collector journals them.
    const hex = storeDigests.map((d) => Buffer.from(d).toString('hex') + '\n').join('');
    const deadline = Date.now() + PUT_WAIT_MS;
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      writeFileSync(marker, hex, { flag: 'wx' });
      const pid = statePid(this.deletingFile);
      if (pid === undefined || !pidAlive(pid)) break;
      unlinkSync(marker);
      if (Date.now() > deadline) throw new CastoreError('unavailable', 'the garbage collector is deleting; try again');
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      await this.sync();
      const result = await store();
      const marking = statePid(this.markingFile);
      if (marking !== undefined && pidAlive(marking)) appendFileSync(this.journalFile, hex);
      return result;
    } finally {
      unlinkSync(marker);
    }
  }

  /**
   * Markers of PathInfo Puts by live processes (for the collector, while it
   * marks); removes those of dead ones, first journalling the path each
   * names: its Put may have stored the PathInfo before it died.
   */
  livePuts(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.puts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const live: string[] = [];
    for (const n of names) {
      if (pidAlive(Number(n.split('-')[0]))) live.push(n);
      else {
        const file = join(this.puts, n);
        let named: string;
        try {
          named = readFileSync(file, 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // gone already
          throw err;
        }
        // Failing to journal stops the collection (fail closed), with the marker still there.
        if (/^([0-9a-f]{40}\n)+$/.test(named)) appendFileSync(this.journalFile, named);
        try {
          unlinkSync(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
    return live;
  }
}
