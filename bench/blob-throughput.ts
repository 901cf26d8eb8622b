// Blob Put/Read of one large blob through a real daemon on a unix socket,
// against the disk's own write + fsync of the same bytes and in-process
// BLAKE3, all in one run: ROUNDS interleaved rounds, medians.
import { Blake3Stream } from '../src/castore/digest.js';
import { GrpcBlobService } from '../src/grpc/backends/grpc-blob-service.js';
import { startDaemonProcess } from '../test/helpers/daemon.js';
import { rate, peakRssMiB, pseudoRandomChunks, table, GiB, MiB, summary } from './util.js';
import { ROUNDS, flushedAround, listRounds, median, verdict } from './rounds.js';
import { diskWriteSeconds } from './disk-write.js';

export async function blobThroughput(size = GiB): Promise<string> {
  // The bytes are made as they are sent: that cost is measured and taken off the Put.
  const gen = await flushedAround(() => {
    let n = 0;
    for (const c of pseudoRandomChunks(size)) n += c.length;
    return n;
  });
  // BLAKE3 of the same number of bytes, from one 1 MiB piece at hand.
  const piece = pseudoRandomChunks(MiB).next().value as Buffer;
  const hash = await flushedAround(() => {
    const h = new Blake3Stream();
    for (let n = 0; n < size; n += piece.length) h.update(piece);
    return h.digest();
  });
  const hashSeconds = hash.seconds;

  const daemon = await startDaemonProcess();
  const blobs = new GrpcBlobService(daemon.addr);
  const puts: number[] = [];
  const reads: number[] = [];
  const disks: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let disk = (await flushedAround(() => diskWriteSeconds(daemon.tmp, size, false))).seconds;
      try {
        disk = Math.min(disk, (await flushedAround(() => diskWriteSeconds(daemon.tmp, size, true))).seconds);
      } catch {
        // O_DIRECT refused: the page-cache figure alone
      }
      disks.push(disk);
      // Each round a blob of its own (the first 4 bytes of every MiB differ), into the same daemon.
      const put = await flushedAround(async () => {
        const w = blobs.put();
        let first = true;
        for (const c of pseudoRandomChunks(size)) {
          if (first) c.writeUInt32LE(0x80000000 + round, 4);
          first = false;
          await w.write(c);
        }
        return w.close();
      });
      puts.push(Math.max(put.seconds - gen.seconds, 1e-9));
      const read = await flushedAround(async () => {
        const stream = await blobs.read(put.value);
        let n = 0;
        for await (const c of stream!) n += c.length;
        return n;
      });
      if (read.value !== size) throw new Error(`read ${read.value} bytes, expected ${size}`);
      reads.push(read.seconds);
    }
    const rss = peakRssMiB(daemon.child.pid!);
    const put = median(puts);
    const disk = median(disks);
    const read = median(reads);
    const vsDisk = disk / put;
    const gib = (size / GiB).toFixed(2);
    summary.rows.push(
      {
        what: `Blob Put, one ${gib} GiB blob (\`grpc+unix\`, hashed and fsynced)`,
        measured: rate(size, put),
        compared: `${vsDisk.toFixed(2)}× the disk's write + fsync (${rate(size, disk)}); ${listRounds(puts, 's', 1)}`,
        target: '≥ 0.9× the disk',
        met: vsDisk >= 0.9,
      },
      { what: 'Blob Read of it', measured: rate(size, read), compared: listRounds(reads, 's', 1) },
      { what: 'peak RSS of the daemon during Blob Put/Read', measured: `${rss.toFixed(0)} MiB`, compared: '', target: '< 200 MiB', met: rss < 200 },
    );
    return [
      `Blob throughput, one ${gib} GiB blob over grpc+unix to a daemon on an on-disk store; medians of ${ROUNDS} interleaved rounds:`,
      table([
        ['in-process BLAKE3', rate(size, hashSeconds), '(one round)'],
        ['disk: write + fsync of the same bytes (faster of page cache, O_DIRECT)', rate(size, disk), listRounds(disks)],
        ['Blob Put (hash, fsync)', rate(size, put), `${vsDisk.toFixed(2)}× the disk (target ≥ 0.9×: ${verdict(vsDisk >= 0.9)}); ${listRounds(puts)}`],
        ['Blob Read', rate(size, read), listRounds(reads)],
        ['daemon peak RSS', `${rss.toFixed(0)} MiB`, `target < 200 MiB: ${verdict(rss < 200)}`],
      ]),
    ].join('\n');
  } finally {
    await blobs.close();
    await daemon.stop();
  }
}
