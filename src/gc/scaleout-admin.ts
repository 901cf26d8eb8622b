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
  return {
    async setPin(name, storePaths) {
      checkPinName(name);
      const paths = pinPaths(name, storePaths);
      const absent = await withPins((pins) => pins.setIfPresent(name, paths, paths.map((p) => Buffer.from(parseAbsolute(p).digest))));
      if (absent.length > 0) throw new CastoreError('precondition', `not in the store: ${absent.join(' ')}; pin ${name} not changed (copy the paths first)`);
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
