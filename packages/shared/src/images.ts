import type { WorkloadKind } from './spec.js';

/** qcow2 and raw are disk images; kernel and initrd boot a VM directly; docker-archive is what `docker save` writes. */
export const IMAGE_FORMATS = ['qcow2', 'raw', 'kernel', 'initrd', 'docker-archive'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const KIND_OF_FORMAT: Record<ImageFormat, WorkloadKind> = { qcow2: 'vm', raw: 'vm', kernel: 'vm', initrd: 'vm', 'docker-archive': 'container' };

/** The JetStream object store bucket of the image catalog, on the coordinator and on agents. */
export const DEFAULT_IMAGE_BUCKET = 'virtfleet_images';

/** Formats a VM's root disk may have. */
export const DISK_FORMATS: readonly ImageFormat[] = ['qcow2', 'raw'];

/** A catalog image's name: what `image import --name` takes and specs refer to. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const IMAGE_NAME_RULE = 'must be a lowercase letter or digit, then up to 62 of lowercase letters, digits, ".", "_" and "-"';
const CATALOG_REF = /^([a-z0-9][a-z0-9._-]{0,62})(?:@(sha256:[0-9a-f]{64}))?$/;

/** A spec's reference to a catalog image: a name, pinned to one content when `digest` is set. */
export interface CatalogRef {
  name: string;
  digest?: string;
}

/** Reads `NAME` or `NAME@sha256:HEX`; undefined for anything else. */
export function parseCatalogRef(ref: string): CatalogRef | undefined {
  const m = CATALOG_REF.exec(ref);
  if (!m) return undefined;
  return m[2] ? { name: m[1]!, digest: m[2] } : { name: m[1]! };
}

export function formatCatalogRef(ref: CatalogRef): string {
  return ref.digest ? `${ref.name}@${ref.digest}` : ref.name;
}

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

/** Bytes of an image's start that decide its format: a tar header is 512 bytes, a bzImage's header ends past that. */
export const FORMAT_PROBE_BYTES = 1024;

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
const TAR_MAGIC = Buffer.from('ustar');
const TAR_MAGIC_OFFSET = 257;
// The x86 boot protocol's header signature (Documentation/arch/x86/boot.rst).
const BZIMAGE_MAGIC = Buffer.from('HdrS');
const BZIMAGE_MAGIC_OFFSET = 0x202;
// What an initramfs starts with: a newc cpio archive, or one compressed as the kernel can unpack it.
const INITRD_MAGICS = [
  Buffer.from('070701'),
  Buffer.from('070702'),
  Buffer.from([0x1f, 0x8b]), // gzip
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), // zstd
  Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), // xz
  Buffer.from([0x02, 0x21, 0x4c, 0x18]), // lz4 legacy
  Buffer.from('BZh'),
];

export type SniffedContent = 'qcow2' | 'tar' | 'kernel' | 'initramfs' | 'other';

/** What an image's first bytes (up to FORMAT_PROBE_BYTES, fewer only for a smaller image) say it is. */
export function sniffFormat(head: Buffer): SniffedContent {
  const at = (magic: Buffer, offset = 0) => head.subarray(offset, offset + magic.length).equals(magic);
  if (at(QCOW2_MAGIC)) return 'qcow2';
  if (at(TAR_MAGIC, TAR_MAGIC_OFFSET)) return 'tar';
  if (at(BZIMAGE_MAGIC, BZIMAGE_MAGIC_OFFSET)) return 'kernel';
  if (INITRD_MAGICS.some((magic) => at(magic))) return 'initramfs';
  return 'other';
}

const FORMAT_OF_CONTENT: Record<SniffedContent, ImageFormat> = { qcow2: 'qcow2', tar: 'docker-archive', kernel: 'kernel', initramfs: 'initrd', other: 'raw' };

/** The format an image whose first bytes are `head` has: qcow2, a tar archive (`docker save`), a kernel, an initramfs, or else a raw disk. */
export function formatOfHead(head: Buffer): ImageFormat {
  return FORMAT_OF_CONTENT[sniffFormat(head)];
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
