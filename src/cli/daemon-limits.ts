// The daemon limits that may also come from the environment or the config
// file, parsed as the daemon takes them; `config` shows the same values.
import { daemonLimitSettings, type LimitSetting } from '../addr/config.js';
import { DEFAULT_CONNECTION_LIMITS as LIMITS } from '../server/connection-limits.js';
import { byteSizeFlag, positiveIntFlag } from '../util/usage.js';

export interface StreamLimits {
  maxBufferedBytes: number;
  maxStreams: number;
  streamStallMs: number;
  httpWriteBufferBytes: number;
}

/**
 * The values, and where each came from: the flag, its environment variable,
 * the config file and key, or 'default'. A bad value throws (naming its
 * source) unless `problems` is given: then it collects the message and the
 * value stays the default.
 */
export async function streamLimits(flags: Record<string, unknown>, problems?: string[]): Promise<{ limits: StreamLimits; sources: Record<string, string> }> {
  const v = (k: string) => flags[k] as string | undefined;
  const set = await daemonLimitSettings({
    maxBufferedBytes: v('max-buffered-bytes'),
    maxConcurrentStreams: v('max-concurrent-streams'),
    streamStallTimeout: v('stream-stall-timeout'),
    httpWriteBuffer: v('http-write-buffer'),
  });
  const sources: Record<string, string> = {};
  const one = <T>(key: keyof typeof set, flag: string, parse: (value: string | undefined, source: string) => T, dflt: T): T => {
    const s: LimitSetting | undefined = set[key];
    // An error names where the bad value came from: the flag, its environment variable or the config file.
    sources[key] = s === undefined ? 'default' : (s.source ?? flag);
    try {
      return parse(s?.value, s?.source ?? flag);
    } catch (err) {
      if (!problems) throw err;
      problems.push((err as Error).message);
      return dflt;
    }
  };
  return {
    limits: {
      maxBufferedBytes: one('maxBufferedBytes', '--max-buffered-bytes', (x, f) => byteSizeFlag(x, f, LIMITS.maxBufferedBytes), LIMITS.maxBufferedBytes),
      maxStreams: one('maxConcurrentStreams', '--max-concurrent-streams', (x, f) => positiveIntFlag(x, f, LIMITS.maxStreams), LIMITS.maxStreams),
      streamStallMs: one('streamStallTimeout', '--stream-stall-timeout', (x, f) => positiveIntFlag(x, f, LIMITS.streamStallMs / 1000) * 1000, LIMITS.streamStallMs),
      httpWriteBufferBytes: one('httpWriteBuffer', '--http-write-buffer', (x, f) => byteSizeFlag(x, f, LIMITS.httpWriteBufferBytes), LIMITS.httpWriteBufferBytes),
    },
    sources,
  };
}
