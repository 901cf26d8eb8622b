// Long synchronous work in slices: a daemon serves many clients from one
// event loop, so a call over ~100k items gives the others a turn between
// slices (and notices in between that its own client has gone away).
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Resolves after the event loop has run pending I/O callbacks. */
export function yieldToEventLoop(): Promise<void> {
  return nextTurn();
}
