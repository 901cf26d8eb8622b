// The one-pass floor: the least work a copy must do, on one thread. Every
// file of the closure is read once, in NAR order, with reads of at least
// 1 MiB, into one buffer that feeds both the file's BLAKE3 (the native
// addon) and the path's NAR SHA-256 (Node's crypto), NAR framing included.
// Framing and small files are gathered in that buffer so SHA-256 gets few,
// large updates. The NAR hashes are checked against Nix's, so the floor
// provably does the whole job.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { Blake3Hasher, blake3 } from '@napi-rs/blake-hash';
import { NarTokens } from '../src/nix/nar.js';

const READ = 4 << 20;
/** Gathered bytes are hashed once this much is pending, leaving room for a whole read. */
const GATHER = 1 << 20;

class OnePass {
  private readonly buf = Buffer.allocUnsafe(GATHER + READ + 4096);
  private pos = 0;
  bytes = 0;

  constructor(private readonly sha: Hash) {}

  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.drain();
  }

  drain(): void {
    if (this.pos > 0) this.sha.update(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  token(t: Uint8Array): void {
    this.room(t.length);
    this.buf.set(t, this.pos);
    this.pos += t.length;
  }

  /** A NAR string (u64le length, bytes, zero padding to 8). */
  string(b: Uint8Array): void {
    const padded = Math.ceil(b.length / 8) * 8;
    this.room(8 + padded);
    this.u64(b.length);
    this.buf.set(b, this.pos);
    this.buf.fill(0, this.pos + b.length, this.pos + padded);
    this.pos += padded;
  }

  private u64(n: number): void {
    this.buf.writeUInt32LE(n % 2 ** 32, this.pos);
    this.buf.writeUInt32LE(Math.floor(n / 2 ** 32), this.pos + 4);
    this.pos += 8;
  }

  file(path: Buffer, size: number): void {
    this.room(8);
    this.u64(size);
    const fd = openSync(path, 'r');
    try {
      if (size <= READ) {
        // Straight into the gathered bytes: one read, one BLAKE3 call.
        this.room(size + 8);
        const start = this.pos;
        let got = 0;
        while (got < size) {
          const n = readSync(fd, this.buf, start + got, size - got, got);
          if (n === 0) throw new Error(`${path}: shrank while read`);
          got += n;
        }
        blake3(this.buf.subarray(start, start + size));
        this.pos += size;
      } else {
        this.drain();
        const h = new Blake3Hasher();
        for (let off = 0; off < size; ) {
          const n = readSync(fd, this.buf, 0, Math.min(READ, size - off), off);
          if (n === 0) throw new Error(`${path}: shrank while read`);
          const chunk = this.buf.subarray(0, n);
          h.update(chunk);
          this.sha.update(chunk);
          off += n;
        }
        h.digestBuffer();
      }
    } finally {
      closeSync(fd);
    }
    this.bytes += size;
    const pad = (8 - (size % 8)) % 8;
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }

  node(path: Buffer): void {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) {
      this.token(NarTokens.SYMLINK);
      this.string(Buffer.from(readlinkSync(path, { encoding: 'latin1' }), 'latin1'));
    } else if (st.isFile()) {
      this.token(st.mode & 0o100 ? NarTokens.EXECUTABLE : NarTokens.REGULAR);
      this.file(path, st.size);
    } else if (st.isDirectory()) {
      this.token(NarTokens.DIRECTORY);
      for (const name of readdirSync(path, { encoding: 'latin1' }).sort()) {
        const n = Buffer.from(name, 'latin1');
        this.token(NarTokens.ENTRY_START);
        this.string(n);
        this.token(NarTokens.NODE_START);
        this.node(Buffer.concat([path, SLASH, n]));
        this.token(NarTokens.CLOSE);
      }
    } else {
      throw new Error(`${path}: not a file, directory or symlink`);
    }
    this.token(NarTokens.CLOSE);
  }
}

const SLASH = Buffer.from('/');

/** One pass over a store path: its NAR SHA-256 (raw) and the bytes of its files. */
export function onePass(storePath: string): { narSha256: Buffer; bytes: number } {
  const sha = createHash('sha256');
  const pass = new OnePass(sha);
  pass.token(NarTokens.NAR_START);
  pass.node(Buffer.from(storePath));
  pass.drain();
  return { narSha256: sha.digest(), bytes: pass.bytes };
}
