import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { SCORERS, scorerWeights } from '../catalog.js';
import { createScheduler } from '../create-scheduler.js';
import type { ScorePlugin } from '../plugins.js';
import type { HostSnapshot, ResourceVector } from '../scheduler.js';
import { binpackScorer } from './binpack.js';
import { performanceHeadroomScorer } from './performance-headroom.js';
import { hostSnapshot } from '../host-snapshot.test-support.js';
import { spreadScorer } from './spread.js';
import { tenantAffinityScorer } from './tenant-affinity.js';
import { imageLocalityScorer } from './image-locality.js';


const host = (overrides: Partial<HostSnapshot> = {}): HostSnapshot => hostSnapshot('h1', overrides);

const spec = (overrides: Record<string, unknown> = {}) => parseWorkloadSpec({ name: 'w', kind: 'vm', vcpus: 2, memory_mib: 2048, ...overrides });
const pin = (name: string, c: string) => `${name}@sha256:${c.repeat(64)}`;
const booted = spec({ image: pin('disk', 'a'), boot: { kernel: pin('kernel', 'b'), initrd: pin('initrd', 'c') } });
const used = (vcpus: number, memoryMiB: number): ResourceVector => ({ vcpus, memoryMiB, diskGiB: 0 });

interface Case {
  name: string;
  spec: ReturnType<typeof spec>;
  host: HostSnapshot;
  want: number;
}

const cases: Record<string, { plugin: ScorePlugin; cases: Case[] }> = {
  binpack: {
    plugin: binpackScorer,
    cases: [
      // ((0+2)/8 + (0+2048)/8192) / 2 = 0.25
      { name: 'empty host', spec: spec(), host: host(), want: 25 },
      // ((2+2)/8 + (2048+2048)/8192) / 2 = 0.5
      { name: 'half full after placing', spec: spec(), host: host({ allocated: used(2, 2048) }), want: 50 },
      // ((6+2)/8 + (4096+2048)/8192) / 2 = (1 + 0.75) / 2
      { name: 'cpu full, memory three quarters', spec: spec(), host: host({ allocated: used(6, 4096) }), want: 87.5 },
      // cpu (2+2)/16 = 0.25 against an overcommitted 16; memory (0+2048)/4096 = 0.5
      { name: 'against allocatable, not capacity', spec: spec(), host: host({ allocatable: { vcpus: 16, memoryMiB: 4096, diskGiB: 100 }, allocated: used(2, 0) }), want: 37.5 },
      { name: 'nothing allocatable counts as full', spec: spec(), host: host({ allocatable: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } }), want: 100 },
      { name: 'overfull clamps to 100', spec: spec(), host: host({ allocated: used(8, 8192) }), want: 100 },
    ],
  },
  spread: {
    plugin: spreadScorer,
    cases: [
      { name: 'empty host', spec: spec(), host: host(), want: 75 },
      { name: 'half full after placing', spec: spec(), host: host({ allocated: used(2, 2048) }), want: 50 },
      { name: 'cpu full, memory three quarters', spec: spec(), host: host({ allocated: used(6, 4096) }), want: 12.5 },
      { name: 'nothing allocatable counts as full', spec: spec(), host: host({ allocatable: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } }), want: 0 },
      { name: 'overfull clamps to 0', spec: spec(), host: host({ allocated: used(8, 8192) }), want: 0 },
    ],
  },
  'performance-headroom': {
    plugin: performanceHeadroomScorer,
    cases: [
      // cpu idle 0.8; memory free (8192 - 2048) / 16384 = 0.375 → (0.8 + 0.375) / 2
      {
        name: 'idle cpu and free memory, as measured',
        spec: spec(),
        host: host({ capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 100 }, cpuUtilisation: 0.2, memoryAvailableMiB: 8192 }),
        want: 58.75,
      },
      { name: 'idle empty host', spec: spec({ memory_mib: 6 }), host: host({ memoryAvailableMiB: 8198 }), want: 100 },
      // memory free is negative → 0; cpu idle 0
      { name: 'busy and short of memory', spec: spec(), host: host({ cpuUtilisation: 1, memoryAvailableMiB: 1024 }), want: 0 },
      // cpu idle 0.5, no memory capacity reported → memory term 0
      { name: 'no memory capacity', spec: spec(), host: host({ capacity: { vcpus: 8, memoryMiB: 0, diskGiB: 0 }, cpuUtilisation: 0.5 }), want: 25 },
    ],
  },
  'tenant-affinity': {
    plugin: tenantAffinityScorer,
    cases: [
      { name: 'empty host', spec: spec({ tenant: 'a' }), host: host(), want: 50 },
      { name: 'only its own tenant', spec: spec({ tenant: 'a' }), host: host({ workloadCount: 3, tenants: new Map([['a', 3]]) }), want: 100 },
      { name: 'three of four its own', spec: spec({ tenant: 'a' }), host: host({ workloadCount: 4, tenants: new Map([['a', 3], ['b', 1]]) }), want: 75 },
      { name: 'only other tenants', spec: spec({ tenant: 'a' }), host: host({ workloadCount: 2, tenants: new Map([['b', 2]]) }), want: 0 },
    ],
  },
  'image-locality': {
    plugin: imageLocalityScorer,
    cases: [
      { name: 'no catalog images to hold', spec: spec(), host: host({ images: new Set([`sha256:${'a'.repeat(64)}`]) }), want: 0 },
      { name: 'an unpinned name counts for nothing', spec: spec({ image: 'disk' }), host: host({ images: new Set([`sha256:${'a'.repeat(64)}`]) }), want: 0 },
      { name: 'holds none of three', spec: booted, host: host({ images: new Set([`sha256:${'f'.repeat(64)}`]) }), want: 0 },
      { name: 'holds two of three', spec: booted, host: host({ images: new Set([`sha256:${'a'.repeat(64)}`, `sha256:${'c'.repeat(64)}`]) }), want: (2 / 3) * 100 },
      { name: 'holds all', spec: spec({ image: pin('disk', 'a') }), host: host({ images: new Set([`sha256:${'a'.repeat(64)}`]) }), want: 100 },
    ],
  },
};

describe('scorers', () => {
  for (const [name, { plugin, cases: table }] of Object.entries(cases)) {
    describe(name, () => {
      it('is registered under its name', () => {
        expect(plugin.name).toBe(name);
        expect(SCORERS.get(name)).toBe(plugin);
      });
      it.each(table)('$name', (c) => {
        expect(plugin.score({ workloadId: 'w1', spec: c.spec }, c.host)).toBeCloseTo(c.want, 10);
      });
    });
  }

  it('cover every registered scorer in this file', () => {
    expect(Object.keys(cases).sort()).toEqual(SCORERS.names().sort());
  });

  it('stay within 0-100 on any host, however inconsistent', () => {
    const nonNegative = fc.double({ min: 0, max: 1e6, noNaN: true });
    const arbitraryHost = fc.record({
      allocatable: fc.record({ vcpus: nonNegative, memoryMiB: nonNegative, diskGiB: nonNegative }),
      allocated: fc.record({ vcpus: nonNegative, memoryMiB: nonNegative, diskGiB: nonNegative }),
      capacity: fc.record({ vcpus: nonNegative, memoryMiB: nonNegative, diskGiB: nonNegative }),
      cpuUtilisation: fc.double({ min: 0, max: 1, noNaN: true }),
      memoryAvailableMiB: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      own: fc.nat(20),
      others: fc.nat(20),
    });
    const request = { workloadId: 'w1', spec: spec({ tenant: 'a', vcpus: 4, memory_mib: 4096 }) };
    fc.assert(
      fc.property(arbitraryHost, ({ own, others, ...h }) => {
        const snapshot = host({ ...h, workloadCount: own + others, tenants: new Map([['a', own], ['b', others]]) });
        for (const plugin of SCORERS.names().map((n) => SCORERS.get(n)!)) {
          const score = plugin.score(request, snapshot);
          expect(score, plugin.name).toBeGreaterThanOrEqual(0);
          expect(score, plugin.name).toBeLessThanOrEqual(100);
        }
      }),
      { seed: 4242, numRuns: 300 },
    );
  });

  describe('binpack vs spread', () => {
    const fuller = host({ id: 'full', allocated: used(6, 6144) });
    const emptier = host({ id: 'empty', allocated: used(1, 1024) });
    const request = { workloadId: 'w1', spec: spec({ vcpus: 1, memory_mib: 1024 }) };

    it('binpack prefers the fuller host, spread the emptier one', () => {
      expect(binpackScorer.score(request, fuller)).toBeGreaterThan(binpackScorer.score(request, emptier));
      expect(spreadScorer.score(request, emptier)).toBeGreaterThan(spreadScorer.score(request, fuller));
      // They are mirror images.
      for (const h of [fuller, emptier]) expect(binpackScorer.score(request, h) + spreadScorer.score(request, h)).toBeCloseTo(100, 10);
    });

    it('each policy weights only its own packing scorer', () => {
      expect(scorerWeights('binpack')).toEqual({ binpack: 1, spread: 0, 'performance-headroom': 0.5, 'tenant-affinity': 0.25, 'image-locality': 0.5 });
      expect(scorerWeights('spread')).toEqual({ binpack: 0, spread: 1, 'performance-headroom': 0.5, 'tenant-affinity': 0.25, 'image-locality': 0.5 });
      expect(scorerWeights('spread', { 'tenant-affinity': 0 })).toEqual({ binpack: 0, spread: 1, 'performance-headroom': 0.5, 'tenant-affinity': 0, 'image-locality': 0.5 });
    });

    it('the full pipeline picks the fuller host under binpack and the emptier under spread', () => {
      const hosts = () => [host({ ...fuller, tenants: new Map() }), host({ ...emptier, tenants: new Map() })];
      expect(createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 }).place(request, hosts()).hostId).toBe('full');
      expect(createScheduler({ placement: 'spread', weights: {}, candidateLimit: 0 }).place(request, hosts()).hostId).toBe('empty');
    });
  });
});
