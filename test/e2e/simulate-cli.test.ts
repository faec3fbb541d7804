import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from '../support/processes.js';

// The built CLI (npx tsc -b) on the sample files; no coordinator is involved.
const TRACE = 'deploy/examples/simulation/trace.jsonl';
const HOSTS = 'deploy/examples/simulation/hosts.yaml';
/** Arrivals in the trace, counted by the format's own rule (docs/simulator.md): every line but blank ones and # comments. */
const ARRIVALS = readFileSync(join(REPO_ROOT, TRACE), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.trim().startsWith('#')).length;

interface ResultJson {
  queue_policy: string;
  jobs: number;
  placed: number;
  rejected: number;
  waiting: { mean: number; p50: number; p95: number };
  response: { mean: number; p50: number; p95: number };
  makespan: number;
  utilisation: { cpu: number; memory: number; series: { cpu: number; memory: number }[] };
  fragmentation: { mean: number };
}

describe('virtfleet simulate', () => {
  let dir: string;
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-simulate-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the queue policies side by side, however --queue is given', async () => {
    const commas = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs,sjf,priority']);
    expect(commas.code, commas.stderr).toBe(0);
    expect(commas.stdout).toMatch(/^METRIC\s+FCFS\s+SJF\s+PRIORITY$/m);
    for (const row of ['avg wait', 'p95 wait', 'avg response', 'mean cpu util', 'fragmentation', 'rejected', 'makespan']) expect(commas.stdout).toMatch(new RegExp(`^${row}\\s`, 'm'));
    expect(commas.stdout).toMatch(/^rejected giant-vm \(line \d+\): /m);

    const repeated = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs', '--queue', 'sjf', '--queue', 'priority']);
    expect(repeated.code, repeated.stderr).toBe(0);
    expect(repeated.stdout).toBe(commas.stdout);
  });

  it('runs FCFS with binpack when no policy is given', async () => {
    const r = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^METRIC\s+FCFS$/m);
    expect(r.stdout).toContain('placement binpack');
  });

  it('prints the result objects with -o json', async () => {
    const r = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs,sjf,priority', '--placement', 'spread', '--buckets', '4', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as ResultJson[];
    expect(results.map((x) => x.queue_policy)).toEqual(['fcfs', 'sjf', 'priority']);
    expect(ARRIVALS, 'the sample trace has arrivals').toBeGreaterThan(0);
    for (const x of results) {
      expect(x.jobs).toBe(ARRIVALS);
      expect(x.placed + x.rejected).toBe(ARRIVALS);
      for (const n of [x.waiting.mean, x.waiting.p50, x.waiting.p95, x.response.mean, x.response.p95, x.makespan, x.utilisation.cpu, x.utilisation.memory, x.fragmentation.mean]) {
        expect(typeof n).toBe('number');
        expect(Number.isFinite(n)).toBe(true);
      }
      expect(x.response.mean).toBeGreaterThan(x.waiting.mean);
      expect(x.utilisation.series).toHaveLength(4);
    }
  });

  it('exits 2 naming an unknown --queue', async () => {
    const r = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs,lifo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--queue: must be one of fcfs, sjf, priority');
    expect(r.stderr).toContain('lifo');
    expect(r.stdout).toBe('');
  });

  it('exits 2 on an unknown --placement', async () => {
    const r = await runCli(['simulate', '--trace', TRACE, '--hosts', HOSTS, '--placement', 'random']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('random');
  });

  it('exits 2 with the line number of a malformed trace line', async () => {
    const trace = file('bad.jsonl', ['# comment', '{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 64}', '{"time": 1, "runtime": 10, "vcpus": 1, "memory_mib": 64', ''].join('\n'));
    const r = await runCli(['simulate', '--trace', trace, '--hosts', HOSTS]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${trace}:3: malformed JSON`);
  });

  it('exits 2 naming the line and field of a bad trace value, and the entry and field of a bad host', async () => {
    const trace = file('field.jsonl', '{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 2}\n');
    const badTrace = await runCli(['simulate', '--trace', trace, '--hosts', HOSTS]);
    expect(badTrace.code).toBe(2);
    expect(badTrace.stderr).toContain(`${trace}:1: memory_mib: must be at least 6`);

    const hosts = file('hosts.yaml', '- { id: a, vcpus: 4, memory_mib: 4096 }\n- { id: b, vcpus: 0, memory_mib: 4096 }\n');
    const badHosts = await runCli(['simulate', '--trace', TRACE, '--hosts', hosts]);
    expect(badHosts.code).toBe(2);
    expect(badHosts.stderr).toContain(`${hosts}: [1].vcpus: must be greater than 0`);
  });
});
