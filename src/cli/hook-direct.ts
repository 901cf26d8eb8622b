// Direct mode of the hook: copy the new outputs' closures now, bounded in time.
import { effectiveConfig } from '../addr/config.js';
import { openConfiguredStore, readSigningKey, runCopy } from './copy-run.js';
import { parsePathInfoJson } from '../closure/path-info-json.js';
import { derivationOutputs, nixPathInfoJson } from '../upload/nix-cli.js';

export async function pushNow(job: { drvPath?: string; outPaths: string[]; store?: string; timeoutMs: number }): Promise<void> {
  const config = await effectiveConfig({ store: job.store });
  const outs = job.outPaths.length > 0 ? job.outPaths : await derivationOutputs(job.drvPath!);
  const closure = parsePathInfoJson(await nixPathInfoJson(outs), { file: 'nix path-info' });
  const key = config.signKeyFile ? await readSigningKey(config.signKeyFile) : undefined;
  const store = openConfiguredStore(config);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`gave up after ${job.timeoutMs / 1000} s`)), job.timeoutMs);
    });
    const report = await Promise.race([runCopy(config, store, closure, { signingKey: key }), timeout]);
    if (report.failed.length > 0) throw new Error(report.failed.map((f) => `${f.path}: ${f.reason}`).join('; '));
    console.error(`nix-castore hook: pushed ${outs.join(' ')} (${report.uploaded.length} new paths, ${report.bytesSent} bytes)`);
  } finally {
    clearTimeout(timer);
    await Promise.race([store.close(), new Promise((r) => setTimeout(r, 1000))]);
  }
}
