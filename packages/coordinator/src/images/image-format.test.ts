import { describe, expect, it } from 'vitest';
import { formatOfHead, sniffFormat, type ImageFormat } from '@virtfleet/shared';
import { formatMismatch, sizeMismatch } from './image-format.js';

const qcow2Head = () => Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(504)]);
const kernelHead = () => {
  const b = Buffer.alloc(1024);
  b.write('HdrS', 0x202, 'latin1');
  return b;
};
const gzipHead = () => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(508)]);
const tarHead = () => {
  const b = Buffer.alloc(512);
  b.write('manifest.json', 0);
  b.write('ustar', 257, 'latin1');
  return b;
};

describe('image formats', () => {
  it.each([
    { head: qcow2Head(), found: 'qcow2' },
    { head: tarHead(), found: 'tar' },
    { head: kernelHead(), found: 'kernel' },
    { head: gzipHead(), found: 'initramfs' },
    { head: Buffer.from('070701000000'), found: 'initramfs' },
    { head: Buffer.alloc(512), found: 'other' },
    { head: Buffer.from('QF'), found: 'other' },
  ])('sniffs $found', ({ head, found }) => {
    expect(sniffFormat(head)).toBe(found);
    expect(formatOfHead(head)).toBe({ qcow2: 'qcow2', tar: 'docker-archive', kernel: 'kernel', initramfs: 'initrd', other: 'raw' }[found]);
  });

  const cases: { format: ImageFormat; head: Buffer; ok: boolean }[] = [
    { format: 'qcow2', head: qcow2Head(), ok: true },
    { format: 'qcow2', head: Buffer.alloc(512), ok: false },
    { format: 'raw', head: Buffer.alloc(512), ok: true },
    { format: 'raw', head: qcow2Head(), ok: false },
    { format: 'raw', head: tarHead(), ok: false },
    { format: 'docker-archive', head: tarHead(), ok: true },
    { format: 'docker-archive', head: qcow2Head(), ok: false },
    { format: 'kernel', head: kernelHead(), ok: true },
    { format: 'kernel', head: gzipHead(), ok: false },
    { format: 'raw', head: kernelHead(), ok: false },
    { format: 'initrd', head: gzipHead(), ok: true },
    { format: 'initrd', head: Buffer.alloc(512), ok: false },
  ];
  it.each(cases)('content for $format: accepted $ok', ({ format, head, ok }) => {
    expect(formatMismatch(format, sniffFormat(head)) === undefined).toBe(ok);
  });

  it.each([
    { format: 'raw' as const, size: 1024, ok: true },
    { format: 'raw' as const, size: 1000, ok: false },
    { format: 'qcow2' as const, size: 1000, ok: true },
  ])('$size bytes of $format: accepted $ok', ({ format, size, ok }) => {
    expect(sizeMismatch(format, size) === undefined).toBe(ok);
  });
});
