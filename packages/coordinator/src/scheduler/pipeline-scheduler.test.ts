import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseWorkloadSpec } from '@virtfleet/shared';
import { FILTERS, SCORERS } from './catalog.js';
import { createScheduler } from './create-scheduler.js';
import { PipelineScheduler } from './pipeline-scheduler.js';
import type { FilterPlugin, FilterResult, ScorePlugin } from './plugins.js';
import { hostSnapshot } from './host-snapshot.test-support.js';
import type { FilterVerdict, PlacementRequest } from './scheduler.js';

const host = hostSnapshot;

const hostsNamed = (...ids: string[]) => ids.map((id) => host(id));
const request = (overrides: Record<string, unknown> = {}): PlacementRequest => ({
  workloadId: 'w1',
  spec: parseWorkloadSpec({ name: 'w', kind: 'vm', vcpus: 1, memory_mib: 1024, ...overrides }),
});

/** A filter that answers a chosen verdict per host (ok by default) and counts its calls per host. */
function fakeFilter(name: string, verdicts: Record<string, FilterResult> = {}) {
  const calls = new Map<string, number>();
  const plugin: FilterPlugin = {
    name,
    filter(_request, h) {
      calls.set(h.id, (calls.get(h.id) ?? 0) + 1);
      return verdicts[h.id] ?? { status: 'ok' };
    },
  };
  return { plugin, calls, total: () => [...calls.values()].reduce((a, b) => a + b, 0) };
}

/** A scorer that gives each host a chosen score (0 by default) and counts its calls. */
function fakeScorer(name: string, scores: Record<string, number> = {}) {
  let calls = 0;
  const plugin: ScorePlugin = {
    name,
    score(_request, h) {
      calls++;
      return scores[h.id] ?? 0;
    },
  };
  return { plugin, calls: () => calls };
}

describe('PipelineScheduler', () => {
  describe('the decision record', () => {
    it('names the winner, the runner-up and the margin', () => {
      const a = fakeScorer('a', { h1: 50, h2: 80, h3: 70 });
      const b = fakeScorer('b', { h1: 50, h2: 80, h3: 40 });
      const s = new PipelineScheduler({ filters: [fakeFilter('f').plugin], scorers: [{ plugin: a.plugin, weight: 3 }, { plugin: b.plugin, weight: 1 }], candidateLimit: 0 });
      const r = s.place(request(), hostsNamed('h1', 'h2', 'h3'));
      // totals: h1 50, h2 80, h3 (70*3 + 40) / 4 = 62.5
      expect(r.hostId).toBe('h2');
      expect(r.runnerUp).toBe('h3');
      expect(r.margin).toBeCloseTo(17.5, 10);
      expect(r.summary).toBe('placed on h2: score 80.0, 17.5 ahead of h3');
      expect(r.candidates.map((c) => [c.hostId, c.total])).toEqual([
        ['h1', 50],
        ['h2', 80],
        ['h3', 62.5],
      ]);
      expect(r.candidates[2]!.scores).toEqual([
        { plugin: 'a', score: 70, weight: 3 },
        { plugin: 'b', score: 40, weight: 1 },
      ]);
      expect(r).toMatchObject({ workloadId: 'w1', hostsTotal: 3, hostsEvaluated: 3, rejections: {}, unresolvable: false });
      expect(Number.isNaN(Date.parse(r.decidedAt))).toBe(false);
    });

    it('says when the winner is the only feasible host', () => {
      const f = fakeFilter('f', { h1: { status: 'unschedulable', reason: 'busy' } });
      const r = new PipelineScheduler({ filters: [f.plugin], scorers: [{ plugin: fakeScorer('a', { h2: 42 }).plugin, weight: 1 }], candidateLimit: 0 }).place(
        request(),
        hostsNamed('h1', 'h2'),
      );
      expect(r.summary).toBe('placed on h2: score 42.0, the only feasible host');
      expect(r.runnerUp).toBeUndefined();
      expect(r.margin).toBeUndefined();
      expect(r.rejections).toEqual({ busy: 1 });
    });

    it('breaks a tie by the lower host id', () => {
      const s = new PipelineScheduler({ filters: [], scorers: [{ plugin: fakeScorer('a', { h1: 60, h2: 60, h3: 60 }).plugin, weight: 1 }], candidateLimit: 0 });
      const r = s.place(request(), hostsNamed('h3', 'h1', 'h2'));
      expect([r.hostId, r.runnerUp, r.margin]).toEqual(['h1', 'h2', 0]);
    });

    it('scores 0 when no scorer has weight', () => {
      const r = new PipelineScheduler({ filters: [], scorers: [], candidateLimit: 0 }).place(request(), hostsNamed('h1', 'h2'));
      expect(r.hostId).toBe('h1');
      expect(r.summary).toBe('placed on h1: score 0.0, 0.0 ahead of h2');
    });
  });

  describe('when nothing fits', () => {
    it('counts every host under the reason that rejected it, the most common first', () => {
      // The catalog's real filters: trust level runs before resources.
      const s = createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 16 });
      const hosts = [
        ...['h1', 'h2', 'h3'].map((id) => host(id, { trustLevel: 2, allocatable: { vcpus: 8, memoryMiB: 2048, diskGiB: 100 } })),
        ...['h4', 'h5'].map((id) => host(id, { trustLevel: 1 })),
      ];
      const r = s.place(request({ memory_mib: 4096, security: { min_trust_level: 2 } }), hosts);
      expect(r.hostId).toBeUndefined();
      expect(r.summary).toBe('5 hosts: 3 insufficient memory, 2 trust level below 2');
      expect(r.rejections).toEqual({ 'insufficient memory': 3, 'trust level below 2': 2 });
      expect(r.hostsEvaluated).toBe(5);
      expect(r.unresolvable).toBe(true);
    });

    it('counts a host failing two filters once, under the first (cheapest), and the record shows both', () => {
      const s = createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 16 });
      const small = { allocatable: { vcpus: 8, memoryMiB: 2048, diskGiB: 100 } };
      const hosts = [...['h1', 'h2', 'h3'].map((id) => host(id, { trustLevel: 2, ...small })), ...['h4', 'h5'].map((id) => host(id, { trustLevel: 1, ...small }))];
      const r = s.place(request({ memory_mib: 4096, security: { min_trust_level: 2 } }), hosts);
      expect(r.summary).toBe('5 hosts: 3 insufficient memory, 2 trust level below 2');
      expect(r.rejections).toEqual({ 'insufficient memory': 3, 'trust level below 2': 2 });
      const h4 = r.candidates.find((c) => c.hostId === 'h4')!;
      expect(h4.filters.filter((f) => f.status !== 'ok')).toEqual([
        { plugin: 'trust-level', status: 'unresolvable', reason: 'trust level below 2' },
        { plugin: 'resources', status: 'unresolvable', reason: 'insufficient memory' },
      ]);
      expect(h4.filters).toHaveLength(FILTERS.names().length);
    });

    it('is not unresolvable when one host could take the workload later', () => {
      const s = createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 });
      const hosts = [host('h1', { trustLevel: 1 }), host('h2', { trustLevel: 2, allocated: { vcpus: 0, memoryMiB: 6144, diskGiB: 0 } })];
      const r = s.place(request({ memory_mib: 4096, security: { min_trust_level: 2 } }), hosts);
      expect(r.summary).toBe('2 hosts: 1 insufficient memory, 1 trust level below 2');
      expect(r.unresolvable).toBe(false);
    });

    it('a down host may come back, so it never makes a request unresolvable', () => {
      const s = createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 });
      const r = s.place(request(), [host('h1', { schedulable: false, unschedulableReason: 'down' }), host('h2', { kinds: new Set(), drivers: [] })]);
      expect(r.summary).toBe('2 hosts: 1 down, 1 no vm driver');
      expect(r.unresolvable).toBe(false);
    });

    it('counts a reasonless rejection under the filter name, and reads "1 host"', () => {
      const f = fakeFilter('picky', { h1: { status: 'unresolvable' } });
      const r = new PipelineScheduler({ filters: [f.plugin], scorers: [], candidateLimit: 0 }).place(request(), hostsNamed('h1'));
      expect(r.summary).toBe('1 host: 1 picky');
      expect(r.unresolvable).toBe(true);
    });

    it('with no hosts, says so and is not unresolvable', () => {
      const r = createScheduler({ placement: 'spread', weights: {}, candidateLimit: 16 }).place(request(), []);
      expect(r).toMatchObject({ summary: 'no hosts are registered', hostsTotal: 0, hostsEvaluated: 0, unresolvable: false });
      expect(r.hostId).toBeUndefined();
    });
  });

  describe('filters', () => {
    it('stop at the first rejection on a host the record does not list', () => {
      const first = fakeFilter('first', { h1: { status: 'unresolvable', reason: 'nope' } });
      const second = fakeFilter('second', { h2: { status: 'unschedulable', reason: 'later' } });
      const third = fakeFilter('third');
      const r = new PipelineScheduler({ filters: [first.plugin, second.plugin, third.plugin], scorers: [], candidateLimit: 0, maxRejectedInRecord: 0 }).place(
        request(),
        hostsNamed('h1', 'h2', 'h3'),
      );
      expect([first.calls.get('h1'), second.calls.get('h1'), third.calls.get('h1')]).toEqual([1, undefined, undefined]);
      expect([first.calls.get('h2'), second.calls.get('h2'), third.calls.get('h2')]).toEqual([1, 1, undefined]);
      expect([first.calls.get('h3'), second.calls.get('h3'), third.calls.get('h3')]).toEqual([1, 1, 1]);
      expect(r.candidates.map((c) => c.hostId)).toEqual(['h3']);
      expect(r.rejections).toEqual({ nope: 1, later: 1 });
    });

    it('run every filter on a rejected host the record lists, and only on those', () => {
      // Five hosts rejected by the first filter, two of them listed; one feasible host in the middle.
      const first = fakeFilter('first', Object.fromEntries(['h1', 'h2', 'h4', 'h5', 'h6'].map((id) => [id, { status: 'unschedulable', reason: 'busy' } as FilterResult])));
      const second = fakeFilter('second', { h2: { status: 'unresolvable', reason: 'never' } });
      const s = new PipelineScheduler({ filters: [first.plugin, second.plugin], scorers: [], candidateLimit: 0, maxRejectedInRecord: 2 });
      const r = s.place(request(), hostsNamed('h1', 'h2', 'h3', 'h4', 'h5', 'h6'));
      expect(Object.fromEntries(second.calls), 'the second filter runs on the listed rejected hosts and the feasible one, not on h4-h6').toEqual({ h1: 1, h2: 1, h3: 1 });
      expect(first.total()).toBe(6);
      expect(r.candidates.map((c) => [c.hostId, c.filters.map((f) => f.status)])).toEqual([
        ['h1', ['unschedulable', 'ok']],
        ['h2', ['unschedulable', 'unresolvable']],
        ['h3', ['ok', 'ok']],
      ]);
      expect(r.rejections).toEqual({ busy: 5 });
    });

    describe('a listed rejected host shows every verdict; only the first rejection is counted', () => {
      const ok: FilterResult = { status: 'ok' };
      const cases: {
        name: string;
        verdicts: [FilterResult, FilterResult, FilterResult];
        want: { filters: FilterVerdict[]; rejections: Record<string, number>; unresolvable: boolean };
      }[] = [
        {
          name: 'failing two filters: both verdicts, in run order, the first counted',
          verdicts: [{ status: 'unresolvable', reason: 'no driver' }, ok, { status: 'unschedulable', reason: 'too busy' }],
          want: {
            filters: [
              { plugin: 'a', status: 'unresolvable', reason: 'no driver' },
              { plugin: 'b', status: 'ok' },
              { plugin: 'c', status: 'unschedulable', reason: 'too busy' },
            ],
            rejections: { 'no driver': 1 },
            unresolvable: true,
          },
        },
        {
          name: 'failing one filter: the rest ok',
          verdicts: [ok, { status: 'unschedulable', reason: 'insufficient memory' }, ok],
          want: {
            filters: [
              { plugin: 'a', status: 'ok' },
              { plugin: 'b', status: 'unschedulable', reason: 'insufficient memory' },
              { plugin: 'c', status: 'ok' },
            ],
            rejections: { 'insufficient memory': 1 },
            unresolvable: false,
          },
        },
        {
          name: 'failing only the last filter',
          verdicts: [ok, ok, { status: 'unschedulable', reason: 'too busy' }],
          want: {
            filters: [
              { plugin: 'a', status: 'ok' },
              { plugin: 'b', status: 'ok' },
              { plugin: 'c', status: 'unschedulable', reason: 'too busy' },
            ],
            rejections: { 'too busy': 1 },
            unresolvable: false,
          },
        },
        {
          name: 'failing every filter, the reasonless one shown without a reason',
          verdicts: [{ status: 'unschedulable', reason: 'down' }, { status: 'unresolvable' }, { status: 'unresolvable', reason: 'label zone≠a' }],
          want: {
            filters: [
              { plugin: 'a', status: 'unschedulable', reason: 'down' },
              { plugin: 'b', status: 'unresolvable' },
              { plugin: 'c', status: 'unresolvable', reason: 'label zone≠a' },
            ],
            rejections: { down: 1 },
            // The first rejection decides: a down host may come back, whatever the later filters say.
            unresolvable: false,
          },
        },
      ];
      it.each(cases)('$name', ({ verdicts, want }) => {
        const [a, b, c] = verdicts.map((v, i) => fakeFilter('abc'[i]!, { h1: v }).plugin) as [FilterPlugin, FilterPlugin, FilterPlugin];
        const r = new PipelineScheduler({ filters: [a, b, c], scorers: [], candidateLimit: 0 }).place(request(), hostsNamed('h1'));
        expect(r.candidates).toHaveLength(1);
        expect(r.candidates[0]).toMatchObject({ hostId: 'h1', feasible: false, scores: [], total: 0 });
        expect(r.candidates[0]!.filters).toEqual(want.filters);
        expect(r.rejections).toEqual(want.rejections);
        expect(r.summary).toBe(`1 host: 1 ${Object.keys(want.rejections).join()}`);
        expect(r.unresolvable).toBe(want.unresolvable);
      });
    });

    it('record the same rejections, summary and choice as a scheduler that lists no rejected host', () => {
      // The catalog's real filters on hosts that fail one, two or several of them.
      const catalog = FILTERS.names().map((n) => FILTERS.get(n)!);
      const scorers = [{ plugin: SCORERS.get('binpack')!, weight: 1 }];
      const hosts = [
        host('down-low-trust', { schedulable: false, unschedulableReason: 'down', trustLevel: 0 }),
        host('small-low-trust', { trustLevel: 0, allocatable: { vcpus: 8, memoryMiB: 2048, diskGiB: 100 } }),
        host('small', { trustLevel: 2, allocatable: { vcpus: 8, memoryMiB: 2048, diskGiB: 100 } }),
        host('busy', { trustLevel: 2, cpuUtilisation: 0.95 }),
        host('container-only-full', { trustLevel: 2, kinds: new Set(['container']), allocated: { vcpus: 8, memoryMiB: 8192, diskGiB: 0 } }),
        host('fits', { trustLevel: 3 }),
      ];
      const requests = [
        request({ memory_mib: 4096, security: { min_trust_level: 2 } }),
        request({ memory_mib: 4096, security: { min_trust_level: 2 }, performance: { latency_class: 'low' } }),
        request({ memory_mib: 16384 }),
        request({ security: { min_trust_level: 4 } }),
      ];
      for (const req of requests) {
        const full = new PipelineScheduler({ filters: catalog, scorers, candidateLimit: 0 }).place(req, hosts);
        const first = new PipelineScheduler({ filters: catalog, scorers, candidateLimit: 0, maxRejectedInRecord: 0 }).place(req, hosts);
        const { candidates: _c, decidedAt: _d, ...rest } = full;
        const { candidates: _c2, decidedAt: _d2, ...restFirst } = first;
        expect(rest, JSON.stringify(req.spec.security)).toEqual(restFirst);
        for (const c of full.candidates.filter((x) => !x.feasible)) {
          expect(c.filters.map((f) => f.plugin), `${c.hostId} has every filter's verdict`).toEqual(FILTERS.names());
        }
      }
    });

    it('rejected hosts are not scored', () => {
      const scorer = fakeScorer('a');
      const f = fakeFilter('f', { h1: { status: 'unschedulable', reason: 'x' } });
      const r = new PipelineScheduler({ filters: [f.plugin], scorers: [{ plugin: scorer.plugin, weight: 1 }], candidateLimit: 0 }).place(request(), hostsNamed('h1', 'h2'));
      expect(scorer.calls()).toBe(1);
      expect(r.candidates[0]!.scores).toEqual([]);
    });
  });

  describe('scorer weights', () => {
    it('0 disables a scorer: it is not called, not recorded and not in the mean', () => {
      const on = fakeScorer('on', { h1: 30, h2: 70 });
      const off = fakeScorer('off', { h1: 100, h2: 0 });
      const r = new PipelineScheduler({
        filters: [],
        scorers: [
          { plugin: on.plugin, weight: 2 },
          { plugin: off.plugin, weight: 0 },
        ],
        candidateLimit: 0,
      }).place(request(), hostsNamed('h1', 'h2'));
      expect(off.calls()).toBe(0);
      expect(r.candidates.map((c) => c.scores.map((s) => s.plugin))).toEqual([['on'], ['on']]);
      expect(r.candidates.map((c) => c.total)).toEqual([30, 70]);
      expect(r.hostId).toBe('h2');
    });

    it('createScheduler applies weight overrides over the placement policy', () => {
      const r = createScheduler({ placement: 'binpack', weights: { 'tenant-affinity': 0, 'performance-headroom': 2 }, candidateLimit: 0 }).place(request(), hostsNamed('h1'));
      expect(r.candidates[0]!.scores.map((s) => [s.plugin, s.weight])).toEqual([
        ['binpack', 1],
        ['performance-headroom', 2],
        ['image-locality', 0.5],
      ]);
    });

    it('createScheduler rejects an unknown scorer name', () => {
      let error: unknown;
      try {
        createScheduler({ placement: 'binpack', weights: { spread: 1, binpak: 1 }, candidateLimit: 0 });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ field: 'scheduler.weights.binpak', reason: 'unknown scorer; known: binpack, spread, performance-headroom, tenant-affinity, image-locality' });
    });
  });

  describe('candidateLimit', () => {
    it('stops once enough feasible hosts are found and says how many were evaluated', () => {
      const f = fakeFilter('f');
      const s = new PipelineScheduler({ filters: [f.plugin], scorers: [{ plugin: fakeScorer('a', { h2: 10 }).plugin, weight: 1 }], candidateLimit: 3 });
      const r = s.place(request(), hostsNamed('h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9'));
      expect(r.candidates.map((c) => c.hostId)).toEqual(['h0', 'h1', 'h2']);
      expect(f.total()).toBe(3);
      expect(r.hostsEvaluated).toBe(3);
      expect(r.summary).toBe('placed on h2: score 10.0, 10.0 ahead of h0 (evaluated 3 of 10 hosts)');
    });

    it('counts infeasible hosts as evaluated but not towards the limit', () => {
      const f = fakeFilter('f', { h0: { status: 'unschedulable', reason: 'x' }, h2: { status: 'unschedulable', reason: 'x' } });
      const r = new PipelineScheduler({ filters: [f.plugin], scorers: [], candidateLimit: 2 }).place(request(), hostsNamed('h0', 'h1', 'h2', 'h3', 'h4'));
      expect(r.candidates.map((c) => c.hostId)).toEqual(['h0', 'h1', 'h2', 'h3']);
      expect(r.hostsEvaluated).toBe(4);
      expect(r.rejections).toEqual({ x: 2 });
    });

    it('rotates its start so every host is evaluated over successive placements', () => {
      const ids = Array.from({ length: 10 }, (_, i) => `h${i}`);
      const f = fakeFilter('f');
      const s = new PipelineScheduler({ filters: [f.plugin], scorers: [], candidateLimit: 3 });
      const seen: string[][] = [];
      for (let i = 0; i < 4; i++) seen.push(s.place(request(), hostsNamed(...ids)).candidates.map((c) => c.hostId));
      expect(seen).toEqual([
        ['h0', 'h1', 'h2'],
        ['h3', 'h4', 'h5'],
        ['h6', 'h7', 'h8'],
        ['h9', 'h0', 'h1'],
      ]);
      expect(new Set(seen.flat())).toEqual(new Set(ids));
      expect([...f.calls.values()].every((n) => n >= 1)).toBe(true);
    });

    it('evaluates every host when nothing fits, and the next placement starts after that full turn', () => {
      const ids = ['h0', 'h1', 'h2', 'h3', 'h4'];
      const verdicts: Record<string, FilterResult> = {};
      const s = new PipelineScheduler({ filters: [fakeFilter('f', verdicts).plugin], scorers: [], candidateLimit: 2 });
      expect(s.place(request(), hostsNamed(...ids)).candidates.map((c) => c.hostId)).toEqual(['h0', 'h1']);
      for (const id of ids) verdicts[id] = { status: 'unschedulable', reason: 'full' };
      const miss = s.place(request(), hostsNamed(...ids));
      expect(miss.candidates.map((c) => c.hostId)).toEqual(['h2', 'h3', 'h4', 'h0', 'h1']);
      expect(miss.summary).toBe('5 hosts: 5 full');
      for (const id of ids) delete verdicts[id];
      expect(s.place(request(), hostsNamed(...ids)).candidates.map((c) => c.hostId)).toEqual(['h2', 'h3']);
    });

    it('0 evaluates every host every time', () => {
      const f = fakeFilter('f');
      const s = new PipelineScheduler({ filters: [f.plugin], scorers: [], candidateLimit: 0 });
      for (let i = 0; i < 3; i++) {
        const r = s.place(request(), hostsNamed('h0', 'h1', 'h2', 'h3'));
        expect(r.hostsEvaluated).toBe(4);
        expect(r.summary).not.toContain('evaluated');
      }
      expect(f.total()).toBe(12);
    });

    it('copes with a host list that shrinks between placements', () => {
      const s = new PipelineScheduler({ filters: [], scorers: [], candidateLimit: 3 });
      s.place(request(), hostsNamed('h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7'));
      const r = s.place(request(), hostsNamed('h0', 'h1'));
      expect(r.candidates.map((c) => c.hostId).sort()).toEqual(['h0', 'h1']);
    });
  });
});
