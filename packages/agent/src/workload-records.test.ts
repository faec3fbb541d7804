import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkloadRecords, type WorkloadRecord } from './workload-records.js';

const record = (id: string, extra: Partial<WorkloadRecord> = {}): WorkloadRecord => ({ workloadId: id, name: id, kind: 'container', driver: 'fake', createdAt: '2026-12-03T00:00:00.000Z', ...extra });

describe('WorkloadRecords', () => {
  const dirs: string[] = [];
  const stateDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'records-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('replays puts and removes after a restart, and the fencer reads the same without taking the file over', async () => {
    const dir = stateDir();
    const records = new WorkloadRecords(dir);
    await Promise.all([records.put(record('a-1')), records.put(record('b-2')), records.put(record('c-3'))]);
    await records.put(record('b-2', { fencedAt: '2026-12-03T01:00:00.000Z' }));
    await records.remove('a-1');
    await records.close();
    const expected = [record('b-2', { fencedAt: '2026-12-03T01:00:00.000Z' }), record('c-3')];
    expect(WorkloadRecords.read(dir)).toEqual(expected);
    expect(new WorkloadRecords(dir).all()).toEqual(expected);
  });

  it('takes over records kept one file each, once, and removes their directory', () => {
    const dir = stateDir();
    mkdirSync(join(dir, 'workloads'));
    writeFileSync(join(dir, 'workloads', 'old-1.json'), JSON.stringify(record('old-1', { failover: 'fence-first' })));
    writeFileSync(join(dir, 'workloads', 'torn-2.json'), '{"workloadId":"to');
    expect(WorkloadRecords.read(dir)).toEqual([record('old-1', { failover: 'fence-first' })]);
    const records = new WorkloadRecords(dir);
    expect(records.all()).toEqual([record('old-1', { failover: 'fence-first' })]);
    expect(existsSync(join(dir, 'workloads'))).toBe(false);
    expect(readFileSync(join(dir, 'workloads.jsonl'), 'utf8')).toBe(`${JSON.stringify({ put: record('old-1', { failover: 'fence-first' }) })}\n`);
  });

  it('refuses an id that is not a workload id, and changes nothing', async () => {
    const dir = stateDir();
    const records = new WorkloadRecords(dir);
    await expect(records.put(record('../escape'))).rejects.toThrow(/unsafe workload id/);
    expect(records.all()).toEqual([]);
    expect(WorkloadRecords.read(dir)).toEqual([]);
  });

  it('compacts to one line per record once the history is long', async () => {
    const dir = stateDir();
    const records = new WorkloadRecords(dir);
    for (let i = 0; i < 1_100; i++) await records.put(record('w-1', { createdAt: new Date(i).toISOString() }));
    const lines = readFileSync(join(dir, 'workloads.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(200);
    expect(WorkloadRecords.read(dir)).toEqual([record('w-1', { createdAt: new Date(1_099).toISOString() })]);
  });
});
