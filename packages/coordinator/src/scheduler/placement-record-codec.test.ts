import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { createScheduler } from './create-scheduler.js';
import { hostSnapshot } from './host-snapshot.test-support.js';
import { decodePlacementRecord, encodePlacementRecord } from './placement-record-codec.js';
import type { CandidateRecord, PlacementRecord } from './scheduler.js';

const spec = (overrides: Record<string, unknown> = {}) => parseWorkloadSpec({ name: 'w', kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 1024, ...overrides });

/** A record the real scheduler makes: some hosts rejected (with reasons), some scored. */
function realRecord(candidateLimit: number): PlacementRecord & { queuePolicy: string; waitedMs: number } {
  const scheduler = createScheduler({ placement: 'binpack', weights: {}, candidateLimit });
  const hosts = Array.from({ length: 40 }, (_, i) =>
    hostSnapshot(`host-${i}`, i % 3 === 0 ? { allocated: { vcpus: 8, memoryMiB: 8192, diskGiB: 0 } } : i % 5 === 0 ? { trustLevel: 0, schedulable: false } : {}),
  );
  return { ...scheduler.place({ workloadId: 'w-1', spec: spec() }, hosts), queuePolicy: 'fcfs', waitedMs: 12 };
}

const candidate = (overrides: Partial<CandidateRecord>): CandidateRecord => ({
  hostId: 'h1',
  feasible: true,
  filters: [
    { plugin: 'a', status: 'ok' },
    { plugin: 'b', status: 'ok' },
  ],
  scores: [
    { plugin: 's', score: 1.5, weight: 1 },
    { plugin: 't', score: 0.1 + 0.2, weight: 0.5 },
  ],
  total: 1.1,
  ...overrides,
});

const record = (candidates: CandidateRecord[]): PlacementRecord => ({
  workloadId: 'w',
  hostId: candidates.find((c) => c.feasible)?.hostId,
  summary: 's',
  candidates,
  hostsTotal: candidates.length,
  hostsEvaluated: candidates.length,
  rejections: {},
  unresolvable: false,
  decidedAt: '2026-12-03T00:00:00.000Z',
});

/** Through JSON, as the state store keeps it. */
const roundTrip = <T extends PlacementRecord>(r: T): T => decodePlacementRecord<T>(JSON.parse(JSON.stringify(encodePlacementRecord(r))));

describe('placement record codec', () => {
  it.each([
    ['no candidates', record([])],
    ['one feasible candidate', record([candidate({})])],
    ['a rejected candidate with reasons and no scores', record([candidate({ feasible: false, filters: [{ plugin: 'a', status: 'ok' }, { plugin: 'b', status: 'unschedulable', reason: 'insufficient memory' }], scores: [], total: 0 })])],
    ['an unresolvable verdict', record([candidate({ feasible: false, filters: [{ plugin: 'a', status: 'unresolvable', reason: 'no driver' }, { plugin: 'b', status: 'ok' }], scores: [], total: 0 })])],
    ['a candidate whose filters differ from the first one', record([candidate({}), candidate({ hostId: 'h2', filters: [{ plugin: 'b', status: 'ok' }] })])],
    ['a candidate whose scorer weights differ', record([candidate({}), candidate({ hostId: 'h2', scores: [{ plugin: 's', score: 2, weight: 3 }, { plugin: 't', score: 0, weight: 0.5 }] })])],
    ['a first candidate without scores, a later one with them', record([candidate({ feasible: false, scores: [], filters: [{ plugin: 'a', status: 'unschedulable' }, { plugin: 'b', status: 'ok' }] }), candidate({ hostId: 'h2' })])],
    ['a real record of 16 candidates among 40 hosts', realRecord(16)],
    ['a real record of every host', realRecord(0)],
  ])('gives back exactly what it stored: %s', (_name, r) => {
    expect(roundTrip(r)).toEqual(r);
  });

  it('keeps the fields stored beside the record', () => {
    const r = realRecord(16);
    const back = roundTrip(r);
    expect([back.queuePolicy, back.waitedMs, back.summary, back.rejections]).toEqual([r.queuePolicy, r.waitedMs, r.summary, r.rejections]);
  });

  it('stores a real record in under a sixth of its full size', () => {
    const r = realRecord(16);
    const full = JSON.stringify(r).length;
    const stored = JSON.stringify(encodePlacementRecord(r)).length;
    expect(r.candidates.length).toBeGreaterThanOrEqual(16);
    expect(stored * 6).toBeLessThan(full);
  });

  it('returns a record stored in full by an older coordinator as it is', () => {
    const r = realRecord(4);
    expect(decodePlacementRecord(JSON.parse(JSON.stringify(r)))).toEqual(r);
  });

  it.each([
    ['not an object', 'x', /neither/],
    ['an object without candidates', { summary: 's' }, /neither/],
    ['a wrong version', { v: 3, filterPlugins: [], scorers: [], candidates: [] }, /v:/],
    ['a verdict letter that means nothing', { v: 2, filterPlugins: ['a'], scorers: [], candidates: [{ h: 'h', t: 0, f: 'q', s: [] }] }, /candidates\.0\.f/],
    ['more verdicts than filters', { v: 2, filterPlugins: ['a'], scorers: [], candidates: [{ h: 'h', t: 0, f: 'oo', s: [] }] }, /candidates\.0\.f: 2 verdicts for 1 filters/],
    ['more scores than scorers', { v: 2, filterPlugins: [], scorers: [['s', 1]], candidates: [{ h: 'h', t: 0, f: '', s: [1, 2] }] }, /candidates\.0\.s: 2 scores for 1 scorers/],
    ['a host id that is not a string', { v: 2, filterPlugins: [], scorers: [], candidates: [{ h: 7, t: 0, f: '', s: [] }] }, /candidates\.0\.h/],
  ])('refuses a malformed stored record, naming the field: %s', (_name, stored, message) => {
    expect(() => decodePlacementRecord(stored)).toThrow(message);
  });
});
