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

/** Bytes of an image's start that decide its format: a tar header is 512 bytes. */
export const FORMAT_PROBE_BYTES = 512;

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
const TAR_MAGIC = Buffer.from('ustar');
const TAR_MAGIC_OFFSET = 257;

/** What an image's first bytes (up to FORMAT_PROBE_BYTES, fewer only for a smaller image) say it is. */
export function sniffFormat(head: Buffer): 'qcow2' | 'tar' | 'other' {
  if (head.subarray(0, QCOW2_MAGIC.length).equals(QCOW2_MAGIC)) return 'qcow2';
  if (head.subarray(TAR_MAGIC_OFFSET, TAR_MAGIC_OFFSET + TAR_MAGIC.length).equals(TAR_MAGIC)) return 'tar';
  return 'other';
}

/** The format an image whose first bytes are `head` has: qcow2, a tar archive (`docker save`), or else a raw disk. */
export function formatOfHead(head: Buffer): ImageFormat {
  const found = sniffFormat(head);
  return found === 'qcow2' ? 'qcow2' : found === 'tar' ? 'docker-archive' : 'raw';
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
