// fsync of a directory, after a rename into it, shared by everyone who
// renamed into it meanwhile. A store writes into a few hundred shard
// directories; opening one, syncing it and closing it for every blob costs
// three thread-pool round trips and a journal flush each. Here each
// directory stays open, and callers that arrive while its fsync runs share
// the next one: that one starts after their renames, so it covers them.
import { statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

interface DirState {
  handle: Promise<FileHandle>;
  /** Inode the handle was opened on: a directory removed and made again must be reopened. */
  ino: number;
  running: Promise<void> | undefined;
  queued: Promise<void> | undefined;
}

/** Directories kept open at most; others are opened for each sync. */
const MAX_OPEN = 1024;
const dirs = new Map<string, DirState>();
const counts = { opens: 0, syncs: 0 };

/** How many directory opens and fsyncs were issued (for tests). */
export function dirSyncCounts(): Readonly<typeof counts> {
  return { ...counts };
}

/** Makes renames into `dir` that completed before this call durable. */
export function syncDir(dir: string): Promise<void> {
  try {
    return syncShared(dir);
  } catch (err) {
    return Promise.reject(err);
  }
}

function syncShared(dir: string): Promise<void> {
  const ino = statSync(dir).ino;
  let s = dirs.get(dir);
  if (s && s.ino !== ino) {
    forget(dir, s);
    s = undefined;
  }
  if (!s) {
    if (dirs.size >= MAX_OPEN) return syncOnce(dir);
    counts.opens++;
    const handle = open(dir, 'r');
    s = { handle, ino, running: undefined, queued: undefined };
    dirs.set(dir, s);
    const state = s;
    handle.catch(() => dirs.get(dir) === state && dirs.delete(dir));
  }
  const state = s;
  if (state.queued) return state.queued;
  if (!state.running) return start(state);
  state.queued = state.running.then(
    () => ((state.queued = undefined), start(state)),
    () => ((state.queued = undefined), start(state)),
  );
  return state.queued;
}

function start(s: DirState): Promise<void> {
  counts.syncs++;
  const run = s.handle.then((h) => h.sync());
  s.running = run;
  const clear = () => {
    if (s.running === run) s.running = undefined;
  };
  run.then(clear, clear);
  return run;
}

function forget(dir: string, s: DirState): void {
  dirs.delete(dir);
  const close = () => s.handle.then((h) => h.close()).catch(() => {});
  Promise.allSettled([s.running, s.queued]).then(close);
}

async function syncOnce(dir: string): Promise<void> {
  counts.opens++;
  counts.syncs++;
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
