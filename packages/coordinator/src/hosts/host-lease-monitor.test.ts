import { describe, expect, it } from 'vitest';
import { judgeFence, type FenceEvidence } from './host-lease-monitor.js';

const live = { revision: 10, lapsed: false, fenceTimeoutMs: 2000 };
const lapsed = { revision: 10, lapsed: true, fenceTimeoutMs: 2000 };
const recordAt = (revision: number) => ({ revision, fencedAt: '2026-12-02T16:00:00.000Z', workloads: 1 });

describe('judgeFence', () => {
  const cases: { name: string; evidence: FenceEvidence; fenced: boolean; detail: RegExp }[] = [
    { name: 'no lease: cannot fence itself', evidence: {}, fenced: false, detail: /no host lease.*confirm-dead/ },
    { name: 'no lease, even with a fence record', evidence: { record: recordAt(20) }, fenced: false, detail: /no host lease/ },
    { name: 'live lease', evidence: { lease: live }, fenced: false, detail: /not lapsed.*2000 ms.*confirm-dead/ },
    { name: 'live lease with a record after it: renewing again wins until it lapses', evidence: { lease: live, record: recordAt(11) }, fenced: false, detail: /not lapsed/ },
    { name: 'lapsed lease, no record: a dead agent is no proof', evidence: { lease: lapsed }, fenced: false, detail: /lapsed but it has recorded no fencing.*confirm-dead/ },
    { name: 'lapsed lease, record from before the last renewal', evidence: { lease: lapsed, record: recordAt(9) }, fenced: false, detail: /recorded no fencing since its last renewal/ },
    { name: 'lapsed lease, record after the last renewal', evidence: { lease: lapsed, record: recordAt(11) }, fenced: true, detail: /recorded stopping its fence-first workloads at 2026-12-02T16:00:00.000Z \(1 stopped\)/ },
  ];
  it.each(cases)('$name', ({ evidence, fenced, detail }) => {
    const verdict = judgeFence(evidence);
    expect(verdict.fenced).toBe(fenced);
    expect(verdict.detail).toMatch(detail);
  });
});
