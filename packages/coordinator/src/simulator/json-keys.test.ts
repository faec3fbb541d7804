import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PLACEMENT_POLICIES, QUEUE_POLICIES } from '../scheduler/catalog.js';
import { readHosts } from './hosts-file.js';
import { simulate } from './simulator.js';
import { readTrace } from './trace.js';

const sample = (file: string) => fileURLToPath(new URL(`../../../../deploy/examples/simulation/${file}`, import.meta.url));

/** Every object key anywhere in `value`, with the path it was found at. */
function keysOf(value: unknown, path = '$', out: { key: string; path: string }[] = []): { key: string; path: string }[] {
  if (Array.isArray(value)) value.forEach((v, i) => keysOf(v, `${path}[${i}]`, out));
  else if (typeof value === 'object' && value !== null)
    for (const [key, v] of Object.entries(value)) {
      out.push({ key, path: `${path}.${key}` });
      keysOf(v, `${path}.${key}`, out);
    }
  return out;
}

describe('simulator JSON output', () => {
  it('has snake_case keys only, as the API and the specs do, in every run (each queue and placement policy, strict and backfill)', () => {
    const arrivals = readTrace(sample('trace.jsonl'));
    const hosts = readHosts(sample('hosts.yaml'));
    const results = PLACEMENT_POLICIES.flatMap((placement) =>
      QUEUE_POLICIES.flatMap((queuePolicy) => [true, false].map((backfill) => simulate({ arrivals, hosts, queuePolicy, placement, backfill }))),
    );
    // What -o json prints: the results as JSON.
    const keys = keysOf(JSON.parse(JSON.stringify(results)));
    const bad = keys.filter((k) => !/^[a-z0-9_]+$/.test(k.key));
    expect(bad.map((k) => k.path), 'keys that are not snake_case').toEqual([]);
    // The walk saw the nested and the optional fields, not only the top level.
    const seen = new Set(keys.map((k) => k.key));
    for (const k of ['queue_policy', 'aging_per_minute', 'job_results', 'series', 'p95', 'host', 'line', 'reason', 'samples', 'count']) expect(seen, k).toContain(k);
    expect(results.some((r) => r.rejected > 0) && results.some((r) => r.placed > 0), 'runs with placed and rejected jobs').toBe(true);
  });
});
