// Blob Put/Read of one large blob through a real daemon on a unix socket,
// as ratios to in-process BLAKE3 of the same bytes (measured in this run).
import { Blake3Stream } from '../src/castore/digest.js';
import { GrpcBlobService } from '../src/grpc/backends/grpc-blob-service.js';
import { startDaemonProcess } from '../test/helpers/daemon.js';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { timed, rate, peakRssMiB, pseudoRandomChunks, table, GiB, summary } from './util.js';

/** Writing the bytes to a file on the daemon's disk and fsyncing it: what durable storage allows at best. */
async function diskWrite(dir: string, size: number): Promise<number> {
  const file = join(dir, 'disk-write-reference');
  const t = await timed(async () => {
    const h = await open(file, 'w');
    for (const c of pseudoRandomChunks(size)) await h.write(c);
    await h.sync();
    await h.close();
  });
  await rm(file);
  return t.seconds;
}

export async function blobThroughput(size = GiB): Promise<string> {
  const hash = await timed(async () => {
    const h = new Blake3Stream();
    for (const c of pseudoRandomChunks(size)) h.update(c);
    return h.digest();
  });
  const gen = await timed(async () => {
    let n = 0;
    for (const c of pseudoRandomChunks(size)) n += c.length;
    return n;
  });
  const hashSeconds = Math.max(hash.seconds - gen.seconds, 1e-9); // without producing the bytes

  const daemon = await startDaemonProcess();
  const blobs = new GrpcBlobService(daemon.addr);
  try {
    const diskSeconds = Math.max((await diskWrite(daemon.tmp, size)) - gen.seconds, 1e-9);
    const put = await timed(async () => {
      const w = blobs.put();
      for (const c of pseudoRandomChunks(size)) await w.write(c);
      return w.close();
    });
    if (!put.value.equals(hash.value)) throw new Error('daemon stored a different digest');
    const putSeconds = Math.max(put.seconds - gen.seconds, 1e-9);
    const read = await timed(async () => {
      const stream = await blobs.read(put.value);
      let n = 0;
      for await (const c of stream!) n += c.length;
      return n;
    });
    if (read.value !== size) throw new Error(`read ${read.value} bytes, expected ${size}`);
    const rss = peakRssMiB(daemon.child.pid!);
    summary.rows.push([
      'Blob Put, one large blob (grpc+unix)',
      rate(size, putSeconds),
      `${(hashSeconds / putSeconds).toFixed(2)}× in-process BLAKE3 (target ≥ 0.50×), ${(diskSeconds / putSeconds).toFixed(2)}× the disk's fsynced write speed; daemon RSS ${rss.toFixed(0)} MiB`,
    ]);
    const gib = (size / GiB).toFixed(2);
    return [
      `Blob throughput, ${gib} GiB over grpc+unix to a daemon on an on-disk store:`,
      table([
        ['in-process BLAKE3', rate(size, hashSeconds), '1.00× (reference)'],
        ['write + fsync of a file on the same disk', rate(size, diskSeconds), `${(hashSeconds / diskSeconds).toFixed(2)}× hash speed: the most a durable Put can reach`],
        ['Blob Put (hash, fsync)', rate(size, putSeconds), `${(hashSeconds / putSeconds).toFixed(2)}× hash speed (target ≥ 0.50×)`],
        ['Blob Read', rate(size, read.seconds), `${(hashSeconds / read.seconds).toFixed(2)}× hash speed`],
        ['daemon peak RSS', `${rss.toFixed(0)} MiB`, 'target < 200 MiB'],
      ]),
    ].join('\n');
  } finally {
    await blobs.close();
    await daemon.stop();
  }
}
