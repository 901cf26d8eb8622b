// A collector that counts its runs for /metrics: runs by result, their
// duration and the bytes they freed (dry runs free nothing).
import { gcDuration, gcReclaimedBytes, gcRuns } from '../metrics/metrics.js';
import type { GcAdmin } from './admin.js';

export function metered(admin: GcAdmin): GcAdmin {
  return {
    ...admin,
    async collect(req, log) {
      const done = gcDuration.startTimer();
      try {
        const report = await admin.collect(req, log);
        gcRuns.inc({ result: 'ok' });
        if (!report.dryRun) gcReclaimedBytes.inc(Math.max(0, report.bytes.reclaimed));
        return report;
      } catch (err) {
        gcRuns.inc({ result: 'failed' });
        throw err;
      } finally {
        done();
      }
    },
  };
}
