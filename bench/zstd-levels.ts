// What zstd costs at each level on real files, as the S3 store compresses
// them (src/scaleout/blob-codec.ts): files up to 1 MiB whole, larger ones
// in 1 MiB frames, on libuv's thread pool, the compressed form kept only
// where it saves ≥ 10%. Prints per level: bytes stored, ratio, wall and
// process CPU seconds to compress, and to decompress what was kept.
//   node dist/bench/zstd-levels.js [--levels 1,3] PATH...
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compressed, FRAME_RAW, type Compression } from '../src/scaleout/blob-codec.js';
import { createRequire } from 'node:module';
import { Limiter } from '../src/util/limiter.js';

const zstd = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as { decompress(b: Buffer): Promise<Buffer> };

async function* files(p: string): AsyncGenerator<string> {
  for (const e of await readdir(p, { withFileTypes: true })) {
    const q = join(p, e.name);
    if (e.isDirectory()) yield* files(q);
    else if (e.isFile()) yield q;
  }
}

function pieces(data: Buffer): Buffer[] {
  if (data.length <= FRAME_RAW) return [data];
  const out = [];
  for (let i = 0; i < data.length; i += FRAME_RAW) out.push(data.subarray(i, i + FRAME_RAW));
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let levels = [1, 3];
  const at = args.indexOf('--levels');
  if (at >= 0) levels = args.splice(at, 2)[1].split(',').map(Number);
  const all: Buffer[] = [];
  const seen = new Set<string>();
  for (const root of args) for await (const f of files(root)) if (!seen.has(f)) (seen.add(f), all.push(...pieces(await readFile(f))));
  const raw = all.reduce((a, b) => a + b.length, 0);
  console.log(`${all.length} pieces, ${(raw / 1e6).toFixed(0)} MB`);
  for (const level of levels) {
    const c: Compression = { level };
    const limit = new Limiter(8);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const forms = await Promise.all(all.map((b) => limit.run(() => compressed(b, c))));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const stored = forms.reduce((a, z, i) => a + (z ? z.length : all[i].length), 0);
    const kept = forms.filter((z): z is Buffer => z !== undefined);
    const cpu1 = process.cpuUsage();
    const t1 = process.hrtime.bigint();
    await Promise.all(kept.map((z) => limit.run(() => zstd.decompress(z))));
    const dwall = Number(process.hrtime.bigint() - t1) / 1e9;
    const dcpu = process.cpuUsage(cpu1);
    console.log(
      `level ${level}: ${(stored / 1e6).toFixed(0)} MB stored (${(raw / stored).toFixed(2)}×, ${kept.length} of ${all.length} pieces compressed); ` +
        `compress ${wall.toFixed(2)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU (${(raw / 1e6 / ((cpu.user + cpu.system) / 1e6)).toFixed(0)} MB/s per core); ` +
        `decompress ${dwall.toFixed(2)} s wall, ${((dcpu.user + dcpu.system) / 1e6).toFixed(2)} s CPU`,
    );
  }
}

await main();
