import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseWorkloadSpec, type CatalogImage } from '@virtfleet/shared';
import { imageUsers, pinCatalogImages, type ImageLookup } from './image-pinning.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const image = (name: string, format: CatalogImage['format'], d: string): CatalogImage => ({
  name,
  format,
  kind: format === 'docker-archive' ? 'container' : 'vm',
  size: 1024,
  digest: d,
  createdAt: '2026-12-01T00:00:00Z',
});
const catalog: ImageLookup = {
  get: (name) =>
    Promise.resolve(
      [image('disk', 'qcow2', digest('a')), image('kernel', 'kernel', digest('b')), image('initrd', 'initrd', digest('c')), image('app', 'docker-archive', digest('d'))].find(
        (i) => i.name === name,
      ),
    ),
};
const vm = (extra: Record<string, unknown>) => parseWorkloadSpec({ name: 'v', kind: 'vm', vcpus: 1, memory_mib: 64, ...extra });
const container = (image: string) => parseWorkloadSpec({ name: 'c', kind: 'container', vcpus: 1, memory_mib: 64, image });

describe('pinCatalogImages', () => {
  it('pins a root disk, kernel and initrd to the digests the catalog holds', async () => {
    const spec = vm({ image: 'disk', boot: { kernel: 'kernel', initrd: 'initrd', cmdline: 'console=ttyS0' } });
    const pinned = await pinCatalogImages(spec, catalog);
    expect(pinned.image).toBe(`disk@${digest('a')}`);
    expect(pinned.boot).toEqual({ kernel: `kernel@${digest('b')}`, initrd: `initrd@${digest('c')}`, cmdline: 'console=ttyS0' });
    expect(spec.image, 'the input is left as it was').toBe('disk');
    expect(await pinCatalogImages(pinned, catalog), 'pinning a pinned spec changes nothing').toEqual(pinned);
  });

  it.each([
    { name: 'a vm without images', spec: vm({}) },
    { name: 'a disk by path', spec: vm({ image: '/var/lib/disk.qcow2' }) },
    { name: 'a container image the catalog lacks', spec: container('busybox:latest') },
    { name: 'a container named like a catalog vm image', spec: container('disk') },
  ])('leaves $name as it is', async ({ spec }) => {
    expect(await pinCatalogImages(spec, catalog)).toBe(spec);
  });

  it('pins a container image the catalog holds', async () => {
    expect((await pinCatalogImages(container('app'), catalog)).image).toBe(`app@${digest('d')}`);
  });

  it.each([
    { name: 'an unknown root disk', spec: vm({ image: 'nope' }), field: 'spec.image', reason: /no image named "nope" in the catalog/ },
    { name: 'a kernel as root disk', spec: vm({ image: 'kernel' }), field: 'spec.image', reason: /is kernel; this field takes qcow2 or raw/ },
    { name: 'a disk as kernel', spec: vm({ boot: { kernel: 'disk' } }), field: 'spec.boot.kernel', reason: /is qcow2; this field takes kernel/ },
    { name: 'an unknown initrd', spec: vm({ boot: { kernel: 'kernel', initrd: 'gone' } }), field: 'spec.boot.initrd', reason: /no image named "gone"/ },
    { name: 'a stale pin', spec: vm({ image: `disk@${digest('f')}` }), field: 'spec.image', reason: /holds sha256:a+ now, not the pinned sha256:f+/ },
  ])('refuses $name naming $field', async ({ spec, field, reason }) => {
    const err = await pinCatalogImages(spec, catalog).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    expect((err as InvalidArgumentError).reason).toMatch(reason);
  });
});

describe('imageUsers', () => {
  it('names the workloads, not deleted, whose root disk, kernel, initrd or container image is the image', () => {
    const pinned = `@sha256:${'a'.repeat(64)}`;
    const workloads = [
      { state: 'running', spec: vm({ name: 'v1', image: `disk${pinned}` }) },
      { state: 'stopped', spec: vm({ name: 'v2', boot: { kernel: 'disk' } }) },
      { state: 'deleted', spec: vm({ name: 'v3', image: 'disk' }) },
      { state: 'running', spec: vm({ name: 'v4', image: 'other' }) },
      { state: 'pending', spec: { ...container('disk'), name: 'c1' } },
      { state: 'running', spec: vm({ name: 'v5', image: '/var/lib/disk' }) },
    ];
    expect(imageUsers(workloads, 'disk')).toEqual(['v1', 'v2', 'c1']);
    expect(imageUsers(workloads, 'nothing')).toEqual([]);
  });
});
