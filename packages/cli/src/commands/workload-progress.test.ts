import { describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { ProgressLine } from '../progress.js';
import { followMigration, waitForWorkload, type WorkloadReader } from './workload-progress.js';

const MiB = 2 ** 20;

function workload(fields: Partial<pb.Workload__Output>): pb.Workload__Output {
  return { id: 'w-1', spec: { name: 'web' }, host_id: 'h1', desired_state: 'running', state: 'running', message: '', created_at: '', updated_at: '', driver_ref: '', addresses: [], migration: null, ...fields } as unknown as pb.Workload__Output;
}

const migrating = (phase: string, processedMiB: number, totalMiB: number, rateMiB = 0) =>
  workload({
    migration: { id: 'm1', source_host_id: 'h1', target_host_id: 'h2', mode: 'live', phase, started_at: '', data_total_bytes: totalMiB * MiB, data_processed_bytes: processedMiB * MiB, bytes_per_second: rateMiB * MiB, expected_downtime_ms: 0 } as unknown as pb.WorkloadMigration__Output,
  });

/** A coordinator whose workload reads as each of `states` in turn (the last one repeats). */
function reader(states: pb.Workload__Output[]): WorkloadReader {
  let i = 0;
  return { get: () => Promise.resolve(states[Math.min(i++, states.length - 1)]!) };
}

const record = () => {
  const writes: string[] = [];
  return { writes, out: (t: string) => void writes.push(t) };
};

describe('workload migrate --watch', () => {
  const first = migrating('preparing', 0, 0);
  const reads = [
    migrating('preparing', 0, 0),
    migrating('transferring', 256, 1024, 100),
    migrating('transferring', 256, 1024, 100),
    migrating('transferring', 512, 1024, 100),
    migrating('switching', 1024, 1024),
    workload({ host_id: 'h2', message: 'moved' }),
  ];

  it('into a pipe, prints exactly the lines it always has: the first, then each change', async () => {
    const { writes, out } = record();
    const w = await followMigration(reader(reads), first, { what: 'migrating', untilMs: Date.now() + 60_000, out, pollMs: 1 });
    expect(w.host_id).toBe('h2');
    expect(writes.join('')).toBe(
      [
        'migrating w-1: live h1 -> h2, preparing',
        'live h1 -> h2, preparing',
        'live h1 -> h2, transferring 25% of 1024Mi, 100Mi/s',
        'live h1 -> h2, transferring 50% of 1024Mi, 100Mi/s',
        'live h1 -> h2, switching 100% of 1024Mi',
        'running on h2: moved',
        '',
      ].join('\n'),
    );
  });

  it('on a terminal, redraws a bar of the bytes moved in place, then leaves the line it ended with', async () => {
    const { writes, out } = record();
    await followMigration(reader(reads), first, { what: 'migrating', untilMs: Date.now() + 60_000, out, pollMs: 1, progress: new ProgressLine(out) });
    expect(writes[0]).toBe('migrating w-1: live h1 -> h2, preparing\n');
    const bars = writes.slice(1, -2).map((w) => w.replace('\r\x1b[K', ''));
    expect(bars).toEqual([
      '[------------------------] 0% live h1 -> h2, preparing',
      '[------------------------] 0% live h1 -> h2, preparing',
      '[######------------------] 25% live h1 -> h2, transferring 25% of 1024Mi, 100Mi/s',
      '[######------------------] 25% live h1 -> h2, transferring 25% of 1024Mi, 100Mi/s',
      '[############------------] 50% live h1 -> h2, transferring 50% of 1024Mi, 100Mi/s',
      '[########################] 100% live h1 -> h2, switching 100% of 1024Mi',
    ]);
    expect(writes.slice(-2)).toEqual(['\r\x1b[K', 'running on h2: moved\n']);
  });

  it('on a terminal, keeps the bar on its line when the deadline comes first', async () => {
    const { writes, out } = record();
    const w = await followMigration(reader([migrating('transferring', 256, 1024)]), migrating('transferring', 0, 1024), { what: 'migrating', untilMs: Date.now() + 30, out, pollMs: 5, progress: new ProgressLine(out) });
    expect(w.migration).not.toBeNull();
    expect(writes.at(-1)).toBe('\n');
    expect(writes.at(-2)!.startsWith('\r\x1b[K')).toBe(true);
    expect(writes.at(-2)!.slice('\r\x1b[K'.length)).toMatch(/^\[#+-+\] 25% live h1 -> h2, transferring 25% of 1024Mi$/);
  });
});

describe('workload create --wait', () => {
  const reads = [workload({ state: 'pending', host_id: '', message: '1 host: 1 insufficient memory' }), workload({ state: 'creating' }), workload({ state: 'running' })];

  it('into a pipe, prints nothing while it waits', async () => {
    const w = await waitForWorkload(reader(reads), workload({ state: 'pending', host_id: '' }), { untilMs: Date.now() + 60_000, pollMs: 1 });
    expect(w.state).toBe('running');
  });

  it('on a terminal, shows how far it is, then removes the line before the workload is printed', async () => {
    const { writes, out } = record();
    const w = await waitForWorkload(reader(reads), workload({ state: 'pending', host_id: '' }), { untilMs: Date.now() + 60_000, pollMs: 1, progress: new ProgressLine(out) });
    expect(w.state).toBe('running');
    const lines = writes.slice(0, -1).map((x) => x.replace('\r\x1b[K', ''));
    expect(lines).toEqual([
      expect.stringMatching(/^\[-{24}\] 0% \| web pending, 0s$/),
      expect.stringMatching(/^\[-{24}\] 0% \/ web pending, 0s: 1 host: 1 insufficient memory$/),
      expect.stringMatching(/^\[#{12}-{12}\] 50% - web creating on h1, 0s$/),
      expect.stringMatching(/^\[#{24}\] 100% \\ web running on h1, 0s$/),
    ]);
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });
});
