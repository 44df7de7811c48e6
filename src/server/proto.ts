/**
 * Loads containerd's gRPC service definitions (vendored .proto files under `proto/`, see
 * proto/README.md) with @grpc/proto-loader. Message objects keep proto field names
 * (snake_case), 64-bit integers as strings, enums as their names.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { packagePath } from '../services/fsutil/package-path.js';

/** `proto/` at the package root (this module runs from src/ or from the dist/ bundle). */
function findProtoDir(): string {
  const dir = packagePath('proto');
  if (!dir) throw new Error('winsnap: the proto/ directory was not found above ' + fileURLToPath(import.meta.url));
  return dir;
}

export const PROTO_DIR = findProtoDir();

const CONTAINERD_API = 'github.com/containerd/containerd/api';
export const PROTO_FILES = [
  `${CONTAINERD_API}/services/snapshots/v1/snapshots.proto`,
  `${CONTAINERD_API}/services/diff/v1/diff.proto`,
  `${CONTAINERD_API}/services/content/v1/content.proto`,
];

let cached: grpc.GrpcObject | undefined;

export function loadContainerdApi(): grpc.GrpcObject {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO_FILES, {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    cached = grpc.loadPackageDefinition(def);
  }
  return cached;
}

function lookup(path: string): grpc.ServiceClientConstructor {
  let node: unknown = loadContainerdApi();
  for (const part of path.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`service ${path} not found in the containerd API`);
  return node as grpc.ServiceClientConstructor;
}

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';
export const DIFF_SERVICE = 'containerd.services.diff.v1.Diff';
export const CONTENT_SERVICE = 'containerd.services.content.v1.Content';

export function serviceClient(name: string): grpc.ServiceClientConstructor {
  return lookup(name);
}

export function serviceDefinition(name: string): grpc.ServiceDefinition {
  return lookup(name).service;
}

/** google.protobuf.Timestamp as proto-loader gives it (seconds as a decimal string). */
export interface PbTimestamp {
  seconds: string | number;
  nanos: number;
}

export function toPbTimestamp(ns: bigint): PbTimestamp {
  const seconds = ns / 1_000_000_000n;
  const nanos = Number(ns - seconds * 1_000_000_000n);
  return { seconds: seconds.toString(), nanos };
}

export function fromPbTimestamp(t: PbTimestamp | null | undefined): bigint {
  if (!t) return 0n;
  return BigInt(t.seconds ?? 0) * 1_000_000_000n + BigInt(t.nanos ?? 0);
}

/** `unix:///path`, `unix:path` or a bare path → the socket path. */
export function socketPath(address: string): string {
  if (address.startsWith('unix://')) return address.slice('unix://'.length);
  if (address.startsWith('unix:')) return address.slice('unix:'.length);
  return address;
}
