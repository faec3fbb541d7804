import type { ImageFormat } from '@virtfleet/shared';

/** Bytes of an image's start that decide its format: a tar header is 512 bytes. */
export const FORMAT_PROBE_BYTES = 512;

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
const TAR_MAGIC = Buffer.from('ustar');
const TAR_MAGIC_OFFSET = 257;
const SECTOR_BYTES = 512;

/** What an image's first bytes (up to FORMAT_PROBE_BYTES, fewer only for a smaller image) say it is. */
export function sniffFormat(head: Buffer): 'qcow2' | 'tar' | 'other' {
  if (head.subarray(0, QCOW2_MAGIC.length).equals(QCOW2_MAGIC)) return 'qcow2';
  if (head.subarray(TAR_MAGIC_OFFSET, TAR_MAGIC_OFFSET + TAR_MAGIC.length).equals(TAR_MAGIC)) return 'tar';
  return 'other';
}

/** Why content whose start sniffs as `found` cannot be a `format` image; undefined when it can. */
export function formatMismatch(format: ImageFormat, found: ReturnType<typeof sniffFormat>): string | undefined {
  if (format === 'qcow2' && found !== 'qcow2') return 'is not a qcow2 image (no QFI\\xfb magic at its start)';
  if (format === 'docker-archive' && found !== 'tar') return 'is not a docker save archive (not a tar archive)';
  if (format === 'raw' && found === 'qcow2') return 'is a qcow2 image, not raw: import it as qcow2';
  if (format === 'raw' && found === 'tar') return 'is a tar archive, not a raw disk image';
  return undefined;
}

/** Why an image of `size` bytes cannot be a `format` image; undefined when it can. */
export function sizeMismatch(format: ImageFormat, size: number): string | undefined {
  if (format === 'raw' && size % SECTOR_BYTES !== 0) return `a raw disk image is whole ${SECTOR_BYTES}-byte sectors; ${size} bytes is not`;
  return undefined;
}
