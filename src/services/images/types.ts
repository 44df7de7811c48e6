/**
 * OCI image-spec documents (image-spec v1.1: descriptor, index, manifest, config) and the
 * Docker schema-2 equivalents, as much of them as unpacking needs.
 */
import type { Platform } from '../platforms/index.js';

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: {
    architecture: string;
    os: string;
    'os.version'?: string;
    'os.features'?: string[];
    variant?: string;
  };
  urls?: string[];
}

export interface OciIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: number;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  rootfs: { type: string; diff_ids: string[] };
}

/** A resolved image: its manifest, config and layers with their diff IDs. */
export interface ResolvedImage {
  manifestDescriptor: OciDescriptor;
  manifest: OciManifest;
  config: ImageConfig;
  platform: Platform;
  layers: Array<{ descriptor: OciDescriptor; diffId: string }>;
}

export function descriptorPlatform(d: OciDescriptor): Platform | undefined {
  if (!d.platform) return undefined;
  return {
    os: d.platform.os,
    architecture: d.platform.architecture,
    variant: d.platform.variant,
    osVersion: d.platform['os.version'],
    osFeatures: d.platform['os.features'],
  };
}

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';
