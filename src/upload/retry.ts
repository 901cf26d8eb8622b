// Retries of transient store failures: exponential backoff with equal jitter.
import { CastoreError } from '../castore/errors.js';

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseMs: 100, maxMs: 5000 };
/**
 * `copy`'s: at least ~14 s of waiting in all (at most ~28 s), so a copy
 * rides out a daemon's restart (systemd's RestartSec plus its start) or its
 * PostgreSQL's. The direct hook keeps DEFAULT_RETRY: a build waits on it.
 */
export const COPY_RETRY: RetryPolicy = { attempts: 10, baseMs: 250, maxMs: 5000 };

/** UNAVAILABLE, DEADLINE_EXCEEDED (both 'unavailable') and RESOURCE_EXHAUSTED, incl. connection resets. */
export function isTransient(err: unknown): boolean {
  return err instanceof CastoreError && (err.kind === 'unavailable' || err.kind === 'too-large');
}

/** `retryable`: false once fn cannot run again (e.g. the bytes it sends were handed over). */
export async function withRetry<T>(what: string, fn: () => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY, onRetry?: (msg: string) => void, retryable?: () => boolean): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt >= policy.attempts || retryable?.() === false) throw err;
      // Half the step for sure, half jittered: the waits add up to at least half the steps' sum.
      const step = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      const delay = step / 2 + (Math.random() * step) / 2;
      onRetry?.(`${what}: ${(err as Error).message}; retry ${attempt}/${policy.attempts - 1} in ${Math.round(delay)} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

const RETRY_LINE = /; retry \d+\/\d+ in \d+ ms$/;

/**
 * `log`, with withRetry's lines at most one per `everyMs`: when the store
 * goes away every call in flight retries at once (a line each, dozens a
 * second); the line printed says how many were held back.
 */
export function quietRetries(log: (msg: string) => void, everyMs = 1000): (msg: string) => void {
  let last = -Infinity;
  let held = 0;
  return (msg) => {
    if (!RETRY_LINE.test(msg)) return log(msg);
    const now = Date.now();
    if (now - last < everyMs) {
      held++;
      return;
    }
    last = now;
    log(held > 0 ? `${msg} (and ${held} more retr${held === 1 ? 'y' : 'ies'} since the last such line)` : msg);
    held = 0;
  };
}
