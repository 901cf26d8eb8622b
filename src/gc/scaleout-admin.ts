// Pins and collections of a scale-out store (pins in PostgreSQL's gc_pins),
// as the CLI uses them; the same rules as diskAdmin.
import { CastoreError } from '../castore/errors.js';
import { checkPinName } from '../store/backends/disk-retention.js';
import { parseAbsolute } from '../nix/store-path.js';
import { now } from '../util/clock.js';
import { pinPaths, policyOf, type GcAdmin } from './admin.js';
import { collectScaleout, scaleoutPins } from './scaleout-gc.js';


/** Opens its connection pool per call: a daemon holding this admin keeps no pool open for it. */
export function scaleoutAdmin(addr: string): GcAdmin & { close(): Promise<void> } {
  const withPins = async <T>(fn: (pins: Awaited<ReturnType<typeof scaleoutPins>>) => Promise<T>): Promise<T> => {
    const pins = await scaleoutPins(addr);
    try {
      return await fn(pins);
    } finally {
      await pins.close();
    }
  };
  const missing = (paths: string[]) => withPins(async (pins) => {
    const have = await pins.present(paths.map((p) => Buffer.from(parseAbsolute(p).digest)));
    return paths.filter((p) => !have.has(Buffer.from(parseAbsolute(p).digest).toString('hex')));
  });
  return {
    async setPin(name, storePaths) {
      checkPinName(name);
      const paths = pinPaths(name, storePaths);
      const absent = await missing(paths);
      if (absent.length > 0) throw new CastoreError('precondition', `not in the store: ${absent.join(' ')}; pin ${name} not changed (copy the paths first)`);
      const previous = await withPins((pins) => pins.get(name));
      await withPins((pins) => pins.set(name, paths));
      // A collector past its fence read the pins before this one: if it took a path, put the pin back.
      const lost = await missing(paths);
      if (lost.length > 0) {
        await withPins(async (pins) => (previous ? pins.set(name, previous) : void (await pins.remove(name))));
        throw new CastoreError('precondition', `collected while being pinned: ${lost.join(' ')}; pin ${name} not changed (copy the paths again, then pin them)`);
      }
    },
    async removePin(name) {
      checkPinName(name);
      return withPins((pins) => pins.remove(name));
    },
    listPins: () => withPins((pins) => pins.list()),
    async collect(req, log) {
      const policy = policyOf(req);
      return collectScaleout(addr, { ...policy, nowMs: now(), dryRun: req.dryRun, log, signal: req.signal });
    },
    close: async () => {},
  };
}
