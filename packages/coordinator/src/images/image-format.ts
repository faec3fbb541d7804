import type { ImageFormat, SniffedContent } from '@virtfleet/shared';

const SECTOR_BYTES = 512;

/** Why content whose start sniffs as `found` cannot be a `format` image; undefined when it can. */
export function formatMismatch(format: ImageFormat, found: SniffedContent): string | undefined {
  if (format === 'qcow2' && found !== 'qcow2') return 'is not a qcow2 image (no QFI\\xfb magic at its start)';
  if (format === 'docker-archive' && found !== 'tar') return 'is not a docker save archive (not a tar archive)';
  if (format === 'raw' && found === 'qcow2') return 'is a qcow2 image, not raw: import it as qcow2';
  if (format === 'raw' && found === 'tar') return 'is a tar archive, not a raw disk image';
  if (format === 'raw' && found === 'kernel') return 'is a Linux kernel, not a raw disk image: import it as kernel';
  if (format === 'kernel' && found !== 'kernel') return 'is not a Linux kernel (no bzImage "HdrS" header at 0x202)';
  if (format === 'initrd' && found !== 'initramfs') return 'is not an initramfs (neither a cpio archive nor gzip, zstd, xz, lz4 or bzip2 compressed)';
  return undefined;
}

/** Why an image of `size` bytes cannot be a `format` image; undefined when it can. */
export function sizeMismatch(format: ImageFormat, size: number): string | undefined {
  if (format === 'raw' && size % SECTOR_BYTES !== 0) return `a raw disk image is whole ${SECTOR_BYTES}-byte sectors; ${size} bytes is not`;
  return undefined;
}
