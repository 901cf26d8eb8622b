// gRPC service definitions for grpc-js built on our own codecs (not
// protobufjs: it writes default values, which would change Directory
// digests, and it can't tell an unset oneof from an empty one). Paths and
// streaming shapes follow wire.md §2, under the tvix.* and snix.* packages.
import type { ServiceDefinition, MethodDefinition } from '@grpc/grpc-js';
import * as C from '../castore/messages.js';
import * as S from '../store/messages.js';
import * as B from '../castore/batch-messages.js';
import { GetStoreStatsRequestCodec, StoreStatsCodec } from '../store/store-stats.js';
import * as A from './admin-messages.js';
import * as D from '../castore/delta/delta-messages.js';
import * as F from '../castore/from-path-messages.js';

export type ProtoPackage = 'tvix' | 'snix';
export const PACKAGES: readonly ProtoPackage[] = ['tvix', 'snix'];

function method<Req, Res>(
  path: string,
  req: C.Codec<Req>,
  res: C.Codec<Res>,
  requestStream: boolean,
  responseStream: boolean,
): MethodDefinition<Req, Res> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: req.encode,
    requestDeserialize: req.decode,
    responseSerialize: res.encode,
    responseDeserialize: res.decode,
  };
}

export function blobServiceDef(pkg: ProtoPackage = 'tvix') {
  const p = `/${pkg}.castore.v1.BlobService/`;
  return {
    Stat: method(p + 'Stat', C.StatBlobRequestCodec, C.StatBlobResponseCodec, false, false),
    Read: method(p + 'Read', C.ReadBlobRequestCodec, C.BlobChunkCodec, false, true),
    Put: method(p + 'Put', C.BlobChunkCodec, C.PutBlobResponseCodec, true, false),
  } satisfies ServiceDefinition;
}

export function directoryServiceDef(pkg: ProtoPackage = 'tvix') {
  const p = `/${pkg}.castore.v1.DirectoryService/`;
  return {
    Get: method(p + 'Get', C.GetDirectoryRequestCodec, C.DirectoryCodec, false, true),
    Put: method(p + 'Put', C.DirectoryCodec, C.PutDirectoryResponseCodec, true, false),
  } satisfies ServiceDefinition;
}

export function pathInfoServiceDef(pkg: ProtoPackage = 'tvix') {
  const p = `/${pkg}.store.v1.PathInfoService/`;
  return {
    Get: method(p + 'Get', S.GetPathInfoRequestCodec, S.PathInfoCodec, false, false),
    Put: method(p + 'Put', S.PathInfoCodec, S.PathInfoCodec, false, false),
    CalculateNAR: method(p + 'CalculateNAR', C.NodeMessageCodec, S.CalculateNarResponseCodec, false, false),
    List: method(p + 'List', S.ListPathInfoRequestCodec, S.PathInfoCodec, false, true),
  } satisfies ServiceDefinition;
}

/** nix-castore's own extension (protos/nixcastore/v1/blob_batch.proto): many blobs per call. */
export function blobBatchServiceDef() {
  const p = '/nixcastore.v1.BlobBatchService/';
  return {
    Has: method(p + 'Has', B.HasBlobsRequestCodec, B.HasBlobsResponseCodec, false, false),
    Put: method(p + 'Put', B.PutBlobsRequestCodec, B.PutBlobsResponseCodec, false, false),
  } satisfies ServiceDefinition;
}

/** nix-castore's own extension (protos/nixcastore/v1/blob_delta.proto): a large blob sent as a delta against a similar one. */
export function blobDeltaServiceDef() {
  const p = '/nixcastore.v1.BlobDeltaService/';
  return {
    FindBase: method(p + 'FindBase', D.FindBaseRequestCodec, D.FindBaseResponseCodec, false, false),
    Put: method(p + 'Put', D.DeltaPartCodec, D.PutDeltaResponseCodec, true, false),
  } satisfies ServiceDefinition;
}

/** nix-castore's own extension (protos/nixcastore/v1/blob_from_path.proto): a local client's file read by the daemon itself. */
export function blobFromPathServiceDef() {
  return {
    Put: method('/nixcastore.v1.BlobFromPathService/Put', F.PutFromPathRequestCodec, F.PutFromPathResponseCodec, false, false),
  } satisfies ServiceDefinition;
}

/** nix-castore's own read-only addition (protos/nixcastore/v1/stats.proto): what the store holds. */
export function storeStatsServiceDef() {
  return {
    Get: method('/nixcastore.v1.StoreStats/Get', GetStoreStatsRequestCodec, StoreStatsCodec, false, false),
  } satisfies ServiceDefinition;
}

/** nix-castore's store maintenance (protos/nixcastore/v1/admin.proto): pins and garbage collection. */
export function adminServiceDef() {
  const p = '/nixcastore.v1.AdminService/';
  return {
    SetPin: method(p + 'SetPin', A.SetPinRequestCodec, A.EmptyCodec, false, false),
    RemovePin: method(p + 'RemovePin', A.RemovePinRequestCodec, A.EmptyCodec, false, false),
    ListPins: method(p + 'ListPins', A.EmptyCodec, A.ListPinsResponseCodec, false, false),
    CollectGarbage: method(p + 'CollectGarbage', A.CollectGarbageRequestCodec, A.CollectGarbageResponseCodec, false, false),
    CollectGarbageWithProgress: method(p + 'CollectGarbageWithProgress', A.CollectGarbageRequestCodec, A.CollectGarbageEventCodec, false, true),
  } satisfies ServiceDefinition;
}
