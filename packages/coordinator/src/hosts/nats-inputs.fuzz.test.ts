import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fenceRecordSchema, hostLeaseSchema, HOST_ID, type Logger } from '@virtfleet/shared';
import type { Host } from './host.js';
import { HostLeaseMonitor, type HostLeaseMonitorOptions } from './host-lease-monitor.js';
import { HostRegistry } from './host-registry.js';
import { testTelemetry } from './telemetry.test-support.js';

/*
 * Fuzzing what the coordinator takes from NATS (issue 12, "Hardening the
 * inputs"): telemetry and heartbeats into the real HostRegistry, host lease
 * and fence records into the real HostLeaseMonitor's watch loop. A message
 * that fails validation changes nothing anyone can see, is counted (the
 * registry's `rejected`) and logged as a warning; nothing throws.
 */

const RUNS = 10_000;

const HOSTILE = [
  '<', '>', '&', "'", '"', '`', '$(id)', ';', '|', '\\', '../', '/etc/passwd', '\0', '\n', '\t', ' ', '.', '*', '>', '\u0430', '\u0435', '\u200b', '\u200d', '\u200f', '\u202e', '\ufeff', '\u212a', '😀', '-', '_',
];
const hostileString = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HOSTILE) }, { weight: 2, arbitrary: fc.string({ maxLength: 6 }) }), { maxLength: 6 })
  .map((parts) => parts.join(''));
const hostIdLike = fc.stringMatching(HOST_ID);
const LOOKALIKE: Record<string, string> = { a: '\u0430', e: '\u0435', o: '\u043e', c: '\u0441', k: '\u212a', '1': 'l', '-': '\u2010' };
const hostIdCandidate = fc.oneof(
  hostIdLike,
  fc.tuple(hostIdLike, fc.nat(), fc.boolean(), fc.constantFrom('\u200b', '\u200d', '\u200f', '\u202e', '.', '*', '>', ' ', '\0')).map(([id, at, swap, mark]) => {
    const i = at % id.length;
    return swap ? id.slice(0, i) + (LOOKALIKE[id[i]!] ?? '\u0430') + id.slice(i + 1) : id.slice(0, i) + mark + id.slice(i);
  }),
  hostileString,
  fc.constantFrom('', 'a'.repeat(63), 'a'.repeat(64), 'x'.repeat(70_000)),
);
function deepObject(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}
const DEEP = deepObject(10_000);
const wrongType = fc.oneof(fc.constantFrom<unknown>(null, undefined, true, 0, -1, 1.5, NaN, Infinity, 2 ** 53, '', '1', [], {}, DEEP), fc.double(), fc.integer(), fc.jsonValue({ maxDepth: 2 }));
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: wrongType },
  { weight: 8, arbitrary: hostileString },
  { weight: 2, arbitrary: hostIdCandidate },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('x'.repeat(70_000), Array.from({ length: 10_001 }, () => 'w'), Array.from({ length: 70 }, (_, i) => `f${i}`)) },
);

type Path = (string | number)[];
function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return [prefix, ...entries.flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
}
function mutate<T>(base: T, op: 'set' | 'delete', path: Path, value?: unknown): T {
  const copy = structuredClone(base);
  let parent: unknown = copy;
  for (const key of path.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[key];
  const last = path[path.length - 1];
  if (typeof parent !== 'object' || parent === null || last === undefined) return copy;
  if (op === 'delete') delete (parent as Record<string | number, unknown>)[last];
  else (parent as Record<string | number, unknown>)[last] = value;
  return copy;
}
/** A known-good message with one thing changed: a value replaced, a field removed, or one added. */
function mutated<T>(base: T): fc.Arbitrary<unknown> {
  const paths = pathsOf(base).filter((p) => p.length > 0);
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...paths), valueArb).map(([p, v]) => mutate(base, 'set', p, v)) },
    { weight: 2, arbitrary: fc.constantFrom(...paths).map((p) => mutate(base, 'delete', p)) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom<Path>([], ...paths), fc.oneof(hostileString, fc.constantFrom('__proto__', 'constructor', 'extra')), valueArb).map(([p, k, v]) => mutate(base, 'set', [...p, k], v)) },
    { weight: 1, arbitrary: fc.constant<unknown>(base) },
    { weight: 1, arbitrary: valueArb },
  );
}

/** A logger that keeps its warnings. */
function recordingLog(): { log: Logger; warnings: { fields: unknown; message: string }[] } {
  const warnings: { fields: unknown; message: string }[] = [];
  const ignore = () => undefined;
  const log = { warn: (fields: unknown, message: string) => warnings.push({ fields, message }), info: ignore, debug: ignore, error: ignore, trace: ignore, fatal: ignore } as unknown as Logger;
  return { log, warnings };
}

// ---- telemetry and heartbeats into HostRegistry -------------------------------

function workload(id: string) {
  return { workload_id: id, name: id, kind: 'container', state: 'running', driver: 'docker', driver_ref: `ref-${id}`, cpu_percent: 1.5, memory_used_mib: 64, addresses: ['10.253.0.2'] };
}
const GOOD_TELEMETRY = {
  ...testTelemetry('h1', { seq: 5, time: '2026-12-04T10:00:00.000Z', published_at: '2026-12-04T10:00:00.100Z' }),
  labels: { zone: 'a' },
  drivers: [{ name: 'docker', version: '27', kinds: ['container'], domain_types: [], healthy: true, detail: '', queue_depth: 0, in_flight: 0, concurrency: 4 }],
  features: ['secure-boot'],
  images: [{ name: 'debian', digest: `sha256:${'a'.repeat(64)}`, size: 1 }],
  networks: ['default'],
  workloads: [workload('w1'), workload('w2')],
};
const GOOD_DELTA = { ...GOOD_TELEMETRY, seq: 6, workloads: [workload('w3')], workloads_base_seq: 5, workloads_removed: ['w1'] };
const GOOD_HEARTBEAT = { version: 1, host_id: 'h1', boot_id: 'b', seq: 7, time: '2026-12-04T10:00:01.000Z', address: '127.0.0.1:1' };

/** What anyone can read of the registry: every host as list() and get() give it, with its workloads. */
function visible(r: HostRegistry): string {
  return JSON.stringify(
    r.list().map((h: Host) => ({ ...h, workloads: { complete: h.workloads.complete, all: [...h.workloads.values()] } })),
    (_key, v: unknown) => (v === undefined ? '<undefined>' : v),
  );
}

function fixture() {
  let now = 1_000_000;
  const events: string[] = [];
  const { log, warnings } = recordingLog();
  const registry = new HostRegistry(10_000, { onStatusChange: (h, p) => events.push(`${h.id} ${p}->${h.status}`), onTelemetry: (h) => events.push(`telemetry ${h.id}`), onDriverHealthChange: (h, d) => events.push(`driver ${h.id} ${d.name}`) }, log, () => now);
  registry.ingest('virtfleet.telemetry.h1', GOOD_TELEMETRY);
  registry.ingest('virtfleet.telemetry.h2', { ...GOOD_TELEMETRY, host_id: 'h2' });
  return { registry, events, warnings, tick: () => (now += 100) };
}

const telemetryInput = fc.oneof({ weight: 3, arbitrary: mutated(GOOD_TELEMETRY) }, { weight: 1, arbitrary: mutated(GOOD_DELTA) });
const subjectFor = fc.oneof(
  { weight: 8, arbitrary: fc.constant('virtfleet.telemetry.h1') },
  { weight: 1, arbitrary: fc.constantFrom('virtfleet.telemetry.h2', 'virtfleet.telemetry.', 'virtfleet.telemetry.xh1', 'virtfleet.telemetry.h1.x') },
  { weight: 1, arbitrary: hostIdCandidate.map((id) => `virtfleet.telemetry.${id}`) },
);

describe('HostRegistry, fuzzed', () => {
  it(`applies valid telemetry and drops the rest unchanged, counted and logged, for ${RUNS} messages`, () => {
    const f = fixture();
    fc.assert(
      fc.property(telemetryInput, subjectFor, (body, subject) => {
        f.tick();
        const before = visible(f.registry);
        const rejected = f.registry.rejected;
        const warned = f.warnings.length;
        const eventsBefore = f.events.length;
        let thrown: unknown;
        let applied = false;
        try {
          applied = f.registry.ingest(subject, body);
        } catch (err) {
          thrown = err;
        }
        expect(thrown, 'ingest never throws').toBeUndefined();
        const hostId = (body as { host_id?: unknown } | null)?.host_id;
        // Dropped: nothing visible moved, one more rejection, one warning naming the subject, no events.
        expect(applied || visible(f.registry) === before, 'a dropped message changes nothing').toBe(true);
        expect({ rejected: f.registry.rejected - rejected, warnings: f.warnings.slice(warned).map((w) => w.message), events: f.events.length > eventsBefore }).toEqual(
          applied ? { rejected: 0, warnings: [], events: true } : { rejected: 1, warnings: ['dropped invalid telemetry'], events: false },
        );
        // Applied: only for a host id that is valid and is the subject's last token.
        expect(!applied || (typeof hostId === 'string' && HOST_ID.test(hostId) && subject === `virtfleet.telemetry.${hostId}`), `applied ${typeof hostId === 'string' ? JSON.stringify(hostId) : `a ${typeof hostId} host_id`} on ${subject}`).toBe(true);
        expect(!applied || f.registry.get(hostId as string)?.telemetry.seq === (body as { seq: number }).seq, 'the host shows the applied message').toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);

  it(`keeps hosts up on valid heartbeats and drops the rest unchanged, for ${RUNS} heartbeats`, () => {
    const f = fixture();
    fc.assert(
      fc.property(mutated(GOOD_HEARTBEAT), fc.oneof(fc.constant('virtfleet.heartbeat.h1'), hostIdCandidate.map((id) => `virtfleet.heartbeat.${id}`)), (body, subject) => {
        f.tick();
        const before = visible(f.registry);
        const rejected = f.registry.rejected;
        let accepted = false;
        let thrown: unknown;
        try {
          accepted = f.registry.ingestHeartbeat(subject, body);
        } catch (err) {
          thrown = err;
        }
        expect(thrown, 'ingestHeartbeat never throws').toBeUndefined();
        expect(accepted || visible(f.registry) === before, 'a dropped heartbeat changes nothing').toBe(true);
        expect(f.registry.rejected - rejected).toBe(accepted ? 0 : 1);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);

  it('drops 10,000-level nesting, 10,001 workloads and a NaN load without a trace', () => {
    const f = fixture();
    const before = visible(f.registry);
    const bad: unknown[] = [DEEP, { ...GOOD_TELEMETRY, workloads: Array.from({ length: 10_001 }, (_, i) => workload(`w${i}`)) }, { ...GOOD_TELEMETRY, host: { ...GOOD_TELEMETRY.host, load1: NaN } }, { ...GOOD_TELEMETRY, host_id: 'h\u0430' }];
    expect(bad.map((b) => f.registry.ingest('virtfleet.telemetry.h1', b))).toEqual([false, false, false, false]);
    expect(visible(f.registry)).toBe(before);
    expect(f.registry.rejected).toBe(4);
  });
});

// ---- host lease and fence records into HostLeaseMonitor ---------------------------

interface KvEntry {
  key: string;
  operation: 'PUT' | 'DEL' | 'PURGE';
  revision: number;
  string(): string;
}

/** The monitor's KV bucket: a watch this test feeds one entry at a time, knowing when the monitor is done with each. */
class FakeKv {
  private pending: ((e: IteratorResult<KvEntry>) => void) | undefined;
  private pulled: (() => void) | undefined;
  private revision = 0;
  watch() {
    return Promise.resolve({
      stop: () => this.pending?.({ done: true, value: undefined }),
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise<IteratorResult<KvEntry>>((resolve) => {
            this.pending = resolve;
            this.pulled?.();
          }),
      }),
    });
  }
  put(): Promise<number> {
    return Promise.resolve(++this.revision);
  }
  /** Hands the monitor one entry and resolves once it asks for the next (so it has handled this one). */
  async deliver(key: string, text: string, operation: KvEntry['operation'] = 'PUT'): Promise<void> {
    while (!this.pending) await new Promise((r) => setImmediate(r));
    const resolve = this.pending;
    this.pending = undefined;
    const handled = new Promise<void>((r) => (this.pulled = r));
    resolve({ done: false, value: { key, operation, revision: ++this.revision, string: () => text } });
    await handled;
  }
}

/**
 * The real monitor on a fake bucket: its constructor is private (open() creates the bucket in NATS),
 * so the test builds it the way open() does and starts its watch loop, without the probe timer.
 */
function monitorOn(kv: FakeKv, log: Logger): { monitor: HostLeaseMonitor; seen: () => string } {
  const Ctor = HostLeaseMonitor as unknown as new (kv: FakeKv, id: string, options: HostLeaseMonitorOptions, log: Logger, now: () => number) => HostLeaseMonitor;
  const monitor = new Ctor(kv, 'c1', { bucket: 'b', replicas: 1, fenceMarginMs: 100 }, log, () => 0);
  (monitor as unknown as { startWatching(): void }).startWatching();
  const inner = monitor as unknown as { seen: Map<string, unknown>; fenceRecords: Map<string, unknown> };
  return { monitor, seen: () => JSON.stringify([[...inner.seen], [...inner.fenceRecords], ['h1', 'h2', 'h\u0430'].map((h) => monitor.verdict(h))]) };
}

const GOOD_LEASE = { host_id: 'h1', boot_id: 'b1', fence_timeout_ms: 6000, renewed_at: '2026-12-04T10:00:00.000+01:00' };
const GOOD_FENCE = { host_id: 'h1', boot_id: 'b1', fenced_at: '2026-12-04T10:00:05Z', reason: 'lease lapsed', workloads: ['w1'] };
const jsonText = (v: unknown): string => {
  try {
    return JSON.stringify(v) ?? 'undefined';
  } catch {
    return '{"deep":';
  }
};
const DEEP_JSON = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
const recordText = (good: object) =>
  fc.oneof(
    { weight: 8, arbitrary: mutated(good).map(jsonText) },
    { weight: 1, arbitrary: fc.tuple(mutated(good).map(jsonText), fc.nat(), hostileString).map(([t, at, junk]) => t.slice(0, at % (t.length + 1)) + junk) },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '"x"', DEEP_JSON, '['.repeat(10_000), 'x'.repeat(70_000)) },
  );
const leaseEntry = fc.oneof(
  fc.record({ key: fc.oneof({ weight: 4, arbitrary: fc.constant('lease.h1') }, { weight: 1, arbitrary: hostIdCandidate.map((id) => `lease.${id}`) }), text: recordText(GOOD_LEASE), schema: fc.constant('lease' as const) }),
  fc.record({ key: fc.oneof({ weight: 4, arbitrary: fc.constant('fence.h1') }, { weight: 1, arbitrary: hostIdCandidate.map((id) => `fence.${id}`) }), text: recordText(GOOD_FENCE), schema: fc.constant('fence' as const) }),
);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

describe('HostLeaseMonitor, fuzzed', () => {
  it(`takes valid host lease and fence records and ignores the rest unchanged, with a warning, for ${RUNS} records`, async () => {
    const kv = new FakeKv();
    const { log, warnings } = recordingLog();
    const { monitor, seen } = monitorOn(kv, log);
    await kv.deliver('lease.h2', JSON.stringify({ ...GOOD_LEASE, host_id: 'h2' }));
    await kv.deliver('fence.h2', JSON.stringify({ ...GOOD_FENCE, host_id: 'h2' }));
    try {
      await fc.assert(
        fc.asyncProperty(leaseEntry, async ({ key, text, schema }) => {
          const before = seen();
          const warned = warnings.length;
          await kv.deliver(key, text);
          // The oracle: the record's schema, and the key naming the same valid host.
          const parsed = (schema === 'lease' ? hostLeaseSchema : fenceRecordSchema).safeParse(parseJson(text));
          const valid = parsed.success && key === `${schema}.${parsed.data.host_id}` && HOST_ID.test(parsed.data.host_id);
          const logged = warnings.slice(warned).map((w) => w.message);
          expect(logged).toEqual(valid ? [] : [schema === 'lease' ? 'invalid host lease record; ignored' : 'invalid fence record; ignored']);
          expect(valid || seen() === before, `ignored ${key} ${text.slice(0, 200)} changes nothing`).toBe(true);
          expect(!valid || seen() !== before, 'a valid record is taken').toBe(true);
        }),
        { numRuns: RUNS },
      );
    } finally {
      monitor.stop();
    }
  }, 60_000);

  it('ignores a record that is not PUT, and a watch of junk, without stopping', async () => {
    const kv = new FakeKv();
    const { log, warnings } = recordingLog();
    const { monitor, seen } = monitorOn(kv, log);
    const before = seen();
    await kv.deliver('lease.h1', JSON.stringify(GOOD_LEASE), 'DEL');
    await kv.deliver('probe.c1', DEEP_JSON);
    await kv.deliver('other', 'x');
    expect(seen()).toBe(before);
    await kv.deliver('lease.h1', JSON.stringify(GOOD_LEASE));
    expect(monitor.verdict('h1').detail).toMatch(/not lapsed/);
    expect(warnings).toEqual([]);
    monitor.stop();
  });
});
