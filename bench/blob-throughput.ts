// Blob Put/Read of one large blob through a real daemon on a unix socket,
// against the disk's own write + fsync of the same bytes and in-process
// BLAKE3, all in one run: ROUNDS interleaved rounds, medians.
import { Blake3Stream } from '../src/castore/digest.js';
import { GrpcBlobService } from '../src/grpc/backends/grpc-blob-service.js';
import { startDaemonProcess } from '../test/helpers/daemon.js';
import { putFromPool as putPooled } from '../test/helpers/pooled-put.js';
import { rate, peakRssMiB, pseudoRandomChunks, table, GiB, MiB, summary } from './util.js';
import { ROUNDS, flushedAround, listRounds, median, verdict } from './rounds.js';
import { diskWriteTimed } from './disk-write.js';

/**
 * One blob of `size` bytes, sent from 8 reused 1 MiB buffers (the first 4
 * bytes of every MiB differ, and the round marks the first MiB): making a
 * fresh GiB per round cost the client a page fault per 4 KiB, up to
 * seconds on this VM, which the Put was charged for.
 */
export function putFromPool(blobs: GrpcBlobService, size: number, round: number): Promise<Buffer> {
  return putPooled(blobs, size, round, onePiece());
}

let piece: Buffer | undefined;

/** 1 MiB of pseudo-random bytes, made once: not inside a timed Put (~262,000 xorshift steps). */
function onePiece(): Buffer {
  return (piece ??= pseudoRandomChunks(MiB).next().value as Buffer);
}

export async function blobThroughput(size = GiB): Promise<string> {
  // BLAKE3 of the same number of bytes, from one 1 MiB piece at hand.
  const piece = onePiece();
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
  /** The final fsync of the faster write, each round. */
  const flushes: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let disk = (await flushedAround(() => diskWriteTimed(daemon.tmp, size, false))).value;
      try {
        const direct = (await flushedAround(() => diskWriteTimed(daemon.tmp, size, true))).value;
        if (direct.seconds < disk.seconds) disk = direct;
      } catch {
        // O_DIRECT refused: the page-cache figure alone
      }
      disks.push(disk.seconds);
      flushes.push(disk.flush);
      const put = await flushedAround(() => putFromPool(blobs, size, round));
      puts.push(put.seconds);
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
    const flush = median(flushes);
    const vsDisk = disk / put;
    // A Put can only start its flush once its last byte is in: it takes at least its receiving plus this.
    const flushNote = `the disk's final fsync alone ${flush.toFixed(2)} s of it`;
    const gib = (size / GiB).toFixed(2);
    summary.rows.push(
      {
        what: `Blob Put, one ${gib} GiB blob (\`grpc+unix\`, hashed and fsynced)`,
        measured: rate(size, put),
        compared: `${vsDisk.toFixed(2)}× the disk's write + fsync (${rate(size, disk)}; ${flushNote}); ${listRounds(puts, 's', 1)}`,
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
        ['disk: write + fsync of the same bytes (faster of page cache, O_DIRECT)', rate(size, disk), `${listRounds(disks)}; its final fsync: ${listRounds(flushes)}`],
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
