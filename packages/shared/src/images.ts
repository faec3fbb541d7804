import type { WorkloadKind } from './spec.js';

export const IMAGE_FORMATS = ['qcow2', 'raw', 'docker-archive'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const KIND_OF_FORMAT: Record<ImageFormat, WorkloadKind> = { qcow2: 'vm', raw: 'vm', 'docker-archive': 'container' };

/** An image of the catalog, as the coordinator lists it and agents fetch it. */
export interface CatalogImage {
  name: string;
  kind: WorkloadKind;
  format: ImageFormat;
  size: number;
  /** `sha256:` and 64 hex digits. */
  digest: string;
  createdAt: string;
}

/** The parts of a JetStream object-store entry that describe a catalog image. */
export interface ImageObject {
  name: string;
  size: number;
  /** The object store's own: `SHA-256=` and the base64url digest. */
  digest: string;
  deleted?: boolean;
  metadata?: Record<string, string>;
}

const OBJECT_DIGEST = /^SHA-256=([A-Za-z0-9_-]+=*)$/;

/**
 * The catalog image an object-store entry holds: its kind, format and import
 * time ride in the entry's metadata, its digest is the object store's own
 * (as hex). Undefined for a deleted entry or one without virtfleet's metadata.
 */
export function imageFromObject(info: ImageObject): CatalogImage | undefined {
  const m = info.metadata ?? {};
  const format = IMAGE_FORMATS.find((f) => f === m.format);
  const digest = OBJECT_DIGEST.exec(info.digest)?.[1];
  if (info.deleted || !format || !digest || !m.created_at) return undefined;
  return { name: info.name, kind: KIND_OF_FORMAT[format], format, size: info.size, digest: `sha256:${Buffer.from(digest, 'base64url').toString('hex')}`, createdAt: m.created_at };
}
