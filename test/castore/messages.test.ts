// Our hand-written codecs against the spec's byte vectors, and against
// protobufjs reading the .proto files (so schema and codec cannot drift).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import * as C from '../../src/castore/messages.js';
import * as S from '../../src/store/messages.js';
import { encodeDirectory, directoryDigest, directorySize } from '../../src/castore/directory.js';
import { fixtures, b, hex, HELLO_DIGEST, EMPTY_DIGEST } from '../helpers/castore-fixtures.js';

const PROTOS = fileURLToPath(new URL('../../../protos', import.meta.url));

describe('canonical Directory encoding (castore.md §5.2)', () => {
  const head = fixtures('head');
  const legacy = fixtures('legacy');
  const cases: [string, C.Directory, string, string][] = [
    ['A', head.A, '', 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
    ['WITH_KEEP', head.WITH_KEEP, '12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', '8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e'],
    ['B', head.B, '0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', '8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc'],
    ['C', head.C, '0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' + '0a260a0261271220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', '78eb200ae0cc95d4ea954655fbcf91e285013a261310e161927f2401d2bca803'],
    ['COMPLICATED (legacy)', legacy.COMPLICATED,
      '0a2a0a046b65657012208b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e1801' +
      '12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' +
      '1a1e0a02616112182f6e69782f73746f72652f736f6d657768657265656c7365',
      '3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a'],
    ['COMPLICATED (head)', head.COMPLICATED,
      '0a2a0a046b65657012208b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e1802' +
      '12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' +
      '1a1e0a02616112182f6e69782f73746f72652f736f6d657768657265656c7365',
      '424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb'],
    ['D (legacy)', legacy.D, '0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' + '0a270a016212208701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc1801', '99922a5c1801805287a647af73bca0ed7352a5f7f373e54992795bcc4a235213'],
    ['D (head)', head.D, '0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' + '0a270a016212208701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc1802', '76cd8b55b37333961c1778ba997e57df92e219926ae5a66c414b810331a77603'],
    ['exe + ln', {
      directories: [],
      files: [{ name: b('exe'), digest: HELLO_DIGEST, size: 12, executable: true }],
      symlinks: [{ name: b('ln'), target: b('exe') }],
    }, '122b0a0365786512205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c2001' + '1a090a026c6e1203657865', 'f42218a60eabd11f804cf09ae2cf1ca9e2fc63974cde5deba4625e3a9a7b0ee3'],
    ['big (multi-byte varint)', {
      directories: [],
      files: [{ name: b('big'), digest: HELLO_DIGEST, size: 300, executable: false }],
      symlinks: [],
    }, '122a0a0362696712205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c18ac02', 'a2aabf1c0fe7d71577510c4558c11027541dd15ce64aeda9395b9c3b879e5330'],
  ];
  for (const [name, dir, encoding, digest] of cases) {
    it(`${name}: bytes and digest`, () => {
      assert.equal(encodeDirectory(dir).toString('hex'), encoding);
      assert.equal(directoryDigest(dir).toString('hex'), digest);
      assert.equal(C.DirectoryCodec.encode(C.DirectoryCodec.decode(Buffer.from(encoding, 'hex'))).toString('hex'), encoding);
    });
  }

  it('sizes follow both formulas', () => {
    assert.deepEqual([head.WITH_KEEP, head.COMPLICATED, head.B, head.C, head.D].map((d) => directorySize(d, 'head')), [2, 8, 2, 4, 6]);
    assert.deepEqual([legacy.WITH_KEEP, legacy.COMPLICATED, legacy.B, legacy.C, legacy.D].map((d) => directorySize(d, 'legacy')), [1, 4, 1, 2, 3]);
  });

  it('drops unknown fields and re-encodes canonically', () => {
    // WITH_KEEP's FileNode with an explicit `size: 0` and `executable: false`
    // (what protobufjs writes) plus an unknown field 9.
    const sloppy = hex('122d0a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f326218002000' + '4801');
    assert.equal(encodeDirectory(C.DirectoryCodec.decode(sloppy)).toString('hex'), encodeDirectory(head.WITH_KEEP).toString('hex'));
  });

  it('rejects malformed bytes', () => {
    for (const bad of ['0a', '0aff', '0a05aabb', '0f', '12020a']) {
      assert.throws(() => C.DirectoryCodec.decode(hex(bad)), C.ProtoDecodeError, bad);
    }
  });
});

describe('PathInfo wire vectors (store.md §8)', () => {
  const nar = hex('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040');
  it('import of hello.txt (159 bytes)', () => {
    const info: S.PathInfo = {
      node: { type: 'file', name: b('925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'), digest: HELLO_DIGEST, size: 12, executable: false },
      references: [],
      narinfo: { narSize: 128, narSha256: nar, signatures: [], referenceNames: [], ca: { type: 0, digest: nar } },
    };
    const want = '0a5212500a2a39323566316a6231616a7279706a6279713772796c7772797177697a766870302d68656c6c6f2e74787412205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c1a49088001122003e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb80403222122003e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040';
    const got = S.PathInfoCodec.encode(info);
    assert.equal(got.length, 159);
    assert.equal(got.toString('hex'), want);
    assert.equal(S.PathInfoCodec.encode(S.PathInfoCodec.decode(hex(want))).toString('hex'), want);
  });

  it('GetPathInfoRequest, CalculateNAR request and response', () => {
    assert.equal(S.GetPathInfoRequestCodec.encode({ byOutputHash: hex('e0c2fd23c73e73eaf3c17ec9ebb35461c9e08a48') }).toString('hex'), '0a14e0c2fd23c73e73eaf3c17ec9ebb35461c9e08a48');
    const anon: C.Node = { type: 'file', name: new Uint8Array(0), digest: HELLO_DIGEST, size: 12, executable: false };
    assert.equal(C.NodeMessageCodec.encode({ node: anon }).toString('hex'), '122412205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c');
    assert.equal(C.NodeMessageCodec.encode({ node: { ...anon, name: b('hello.txt') } }).toString('hex'), '122f0a0968656c6c6f2e74787412205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c');
    assert.equal(S.CalculateNarResponseCodec.encode({ narSize: 128, narSha256: nar }).toString('hex'), '088001122003e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040');
  });

  it('tvix HEAD fixture PATH_INFO (212 bytes)', () => {
    const dummy = '00000000000000000000000000000000-dummy';
    const info: S.PathInfo = {
      node: { type: 'directory', name: b(dummy), digest: Buffer.alloc(32), size: 0 },
      references: [Buffer.alloc(20)],
      narinfo: { narSize: 0, narSha256: Buffer.alloc(32), signatures: [], referenceNames: [dummy], ca: { type: 0, digest: Buffer.alloc(32) } },
    };
    const want = '0a4c0a4a0a2630303030303030303030303030303030303030303030303030303030303030302d64756d6d7912200000000000000000000000000000000000000000000000000000000000000000121400000000000000000000000000000000000000001a6e12200000000000000000000000000000000000000000000000000000000000000000222630303030303030303030303030303030303030303030303030303030303030302d64756d6d79322212200000000000000000000000000000000000000000000000000000000000000000';
    assert.equal(S.PathInfoCodec.encode(info).toString('hex'), want);
  });

  it('keeps an unset oneof apart from an empty one', () => {
    assert.equal(S.GetPathInfoRequestCodec.decode(Buffer.alloc(0)).byOutputHash, undefined);
    assert.equal(S.GetPathInfoRequestCodec.decode(hex('0a00')).byOutputHash?.length, 0);
    assert.equal(C.GetDirectoryRequestCodec.decode(hex('1001')).digest, undefined);
  });
});

describe('codecs agree with the .proto files', () => {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${PROTOS}/${target}`);
  root.loadSync(['tvix/castore/protos/rpc_blobstore.proto', 'tvix/castore/protos/rpc_directory.proto', 'tvix/store/protos/rpc_pathinfo.proto']);
  const T = (name: string) => root.lookupType(name);

  it('a full PathInfo decodes field by field through protobufjs', () => {
    const info: S.PathInfo = {
      node: { type: 'directory', name: b('00bgd045z0d4icpbc2yyz4gx48ak44la-x'), digest: EMPTY_DIGEST, size: 7 },
      references: [Buffer.alloc(20, 1)],
      narinfo: {
        narSize: 300,
        narSha256: Buffer.alloc(32, 2),
        signatures: [{ name: 'k-1', data: Buffer.alloc(64, 3) }],
        referenceNames: ['ref'],
        deriver: { name: 'drv', digest: Buffer.alloc(20, 4) },
        ca: { type: 7, digest: Buffer.alloc(32, 5) },
      },
    };
    const o = T('tvix.store.v1.PathInfo').toObject(T('tvix.store.v1.PathInfo').decode(S.PathInfoCodec.encode(info)), { longs: Number, enums: Number });
    assert.equal(Buffer.from(o.node.directory.name).toString(), '00bgd045z0d4icpbc2yyz4gx48ak44la-x');
    assert.equal(o.node.directory.size, 7);
    assert.equal(o.narinfo.narSize, 300);
    assert.equal(o.narinfo.signatures[0].name, 'k-1');
    assert.equal(o.narinfo.referenceNames[0], 'ref');
    assert.equal(o.narinfo.deriver.name, 'drv');
    assert.equal(o.narinfo.ca.type, 7);
    assert.equal(o.references.length, 1);
  });

  it('the blob and directory request messages decode through protobufjs', () => {
    const stat = T('tvix.castore.v1.StatBlobRequest').decode(C.StatBlobRequestCodec.encode({ digest: EMPTY_DIGEST, sendChunks: true, sendBao: true })) as unknown as Record<string, unknown>;
    assert.equal(stat.sendChunks, true);
    assert.equal(stat.sendBao, true);
    const resp = T('tvix.castore.v1.StatBlobResponse').decode(C.StatBlobResponseCodec.encode({ chunks: [{ digest: EMPTY_DIGEST, size: 9 }], bao: b('x') })) as unknown as { chunks: { size: number }[]; bao: Uint8Array };
    assert.equal(Number(resp.chunks[0].size), 9);
    assert.equal(Buffer.from(resp.bao).toString(), 'x');
    const get = T('tvix.castore.v1.GetDirectoryRequest').decode(C.GetDirectoryRequestCodec.encode({ digest: EMPTY_DIGEST, recursive: true })) as unknown as Record<string, unknown>;
    assert.equal(get.recursive, true);
    const put = T('tvix.castore.v1.PutDirectoryResponse').decode(C.PutDirectoryResponseCodec.encode({ rootDigest: EMPTY_DIGEST })) as unknown as { rootDigest: Uint8Array };
    assert.equal(Buffer.from(put.rootDigest).toString('hex'), EMPTY_DIGEST.toString('hex'));
  });
});
