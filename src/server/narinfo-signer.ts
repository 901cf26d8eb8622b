// The daemon's own narinfo signature, given only to what it checked: before
// a path is first signed its NAR is rendered from the castore and compared
// with the NarHash/NarSize the PathInfo claims (rendering stops once it
// passes the claimed size, so a Directory-DAG bomb costs no more than the
// claim). A match is recorded durably by storing the signature with the
// PathInfo; a later request finds it there and verifies it with the public
// key instead of rendering again. A client's claim is never signed unchecked.
import { createHash } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { PathInfo } from '../store/messages.js';
import { calculateNar, NarTooLargeError } from '../store/render-nar.js';
import { fingerprintOf, type NixPathInfo } from '../store/nix-view.js';
import { PathInfoCodec } from '../store/messages.js';
import { sameBytes } from '../castore/digest.js';
import { publicKeyOf, sign, verify, type SecretKey, type Signature } from '../nix/signature.js';
import * as nixbase32 from '../nix/nixbase32.js';
import { absolute } from '../nix/store-path.js';
import { Limiter } from '../util/limiter.js';

/** Paths being checked at once: each renders a whole NAR. */
const CHECK_CONCURRENCY = 2;
/** Results remembered in memory (also what a read-only store cannot record). */
const REMEMBERED = 4096;

export interface NarInfoSignerOptions {
  /** Record checked signatures in the store (off for a read-only daemon: its store may be immutable). */
  persist: boolean;
  log: (line: string) => void;
}

export class NarInfoSigner {
  private readonly publicKey;
  private readonly limiter = new Limiter(CHECK_CONCURRENCY);
  private readonly inFlight = new Map<string, Promise<Signature | undefined>>();
  /** Outcome by PathInfo (fingerprint and root node): a signature, or undefined for a mismatch. */
  private readonly remembered = new Map<string, Signature | undefined>();

  constructor(
    private readonly store: Store,
    private readonly key: SecretKey,
    private readonly opts: NarInfoSignerOptions,
  ) {
    this.publicKey = publicKeyOf(key);
  }

  /** The signature for `p`, or undefined when its content does not render to the NAR it claims. */
  async signatureFor(p: NixPathInfo): Promise<Signature | undefined> {
    const fp = fingerprintOf(p);
    const stored = p.info.narinfo?.signatures.find((s) => s.name === this.key.name);
    if (stored && verify(fp, stored, this.publicKey)) return stored;
    const id = pathInfoId(fp, p.info);
    if (this.remembered.has(id)) return this.remembered.get(id);
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = this.limiter.run(() => this.check(p, fp, id)).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, pending);
    }
    return pending;
  }

  private async check(p: NixPathInfo, fp: string, id: string): Promise<Signature | undefined> {
    const path = absolute(p.storePath);
    let problem: string | undefined;
    try {
      const nar = await calculateNar(p.info.node!, this.store, { maxSize: p.narSize });
      if (nar.narSize !== p.narSize) problem = `its content renders a NAR of ${nar.narSize} bytes, the PathInfo says ${p.narSize}`;
      else if (!sameBytes(nar.narSha256, p.narSha256))
        problem = `its content renders NAR hash sha256:${nixbase32.encode(nar.narSha256)}, the PathInfo says sha256:${nixbase32.encode(p.narSha256)}`;
    } catch (err) {
      if (!(err instanceof NarTooLargeError)) throw err; // storage trouble: not remembered, tried again next time
      problem = `its content renders a NAR longer than the ${p.narSize} bytes the PathInfo says`;
    }
    if (problem) {
      this.opts.log(`nix-castore http: not signing ${path}: ${problem}`);
      this.remember(id, undefined);
      return undefined;
    }
    const sig = sign(fp, this.key);
    this.remember(id, sig);
    if (this.opts.persist) await this.record(p.info, sig, path);
    return sig;
  }

  /** Stores the signature with the PathInfo, so the check survives restarts. */
  private async record(info: PathInfo, sig: Signature, path: string): Promise<void> {
    const narinfo = info.narinfo!;
    const signatures = [...narinfo.signatures.filter((s) => s.name !== sig.name), sig];
    try {
      await this.store.pathInfos.put({ ...info, narinfo: { ...narinfo, signatures } });
    } catch (err) {
      this.opts.log(`nix-castore http: checked ${path} but could not record its signature (kept in memory): ${(err as Error).message}`);
    }
  }

  private remember(id: string, sig: Signature | undefined): void {
    if (this.remembered.size >= REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(id, sig);
  }
}

/** What a check result is valid for: the claim (fingerprint) and the content (the whole PathInfo but its signatures). */
function pathInfoId(fp: string, info: PathInfo): string {
  const unsigned = { ...info, narinfo: info.narinfo && { ...info.narinfo, signatures: [] } };
  return createHash('sha256').update(fp).update(PathInfoCodec.encode(unsigned)).digest('base64');
}
