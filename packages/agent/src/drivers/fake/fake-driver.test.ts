import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, parseWorkloadSpec, type WorkloadKind } from '@virtfleet/shared';
import type { Driver, WorkloadStateTransfer } from '../driver.js';
import { createFakeDriver } from './fake-driver.js';

const log = createLogger('test', 'silent');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'fake-state-'));
  dirs.push(d);
  return d;
};
const host = async (hostId: string) => (await createFakeDriver({ kinds: ['vm', 'container'], vcpus: 8, memoryMiB: 8192 }, { hostId, log })) as Driver & { stateTransfer: WorkloadStateTransfer };
const specOf = (kind: WorkloadKind) => parseWorkloadSpec({ name: 'w', kind, vcpus: 1, memory_mib: 64, image: 'busybox' });

describe('the fake driver carries state', () => {
  it.each([
    ['a stopped container', 'container', false, ['image']],
    ['a running VM with its memory', 'vm', true, ['disk:root', 'memory']],
  ] as const)('moves %s from host to host, counting its moves in its state', async (_name, kind, memory, roles) => {
    const [a, b, c] = [await host('a'), await host('b'), await host('c')];
    await a.create('w1', specOf(kind));
    if (!memory) await a.stop('w1', { timeoutSeconds: 0, force: false });
    const first = await a.stateTransfer.exportState('w1', scratch(), { memory });
    expect(Object.keys(first.files).sort()).toEqual([...roles]);
    expect((await a.inspect('w1'))?.state).toBe('stopped');
    expect((await b.stateTransfer.importState('w1', specOf(kind), first.files)).state).toBe('stopped');
    await b.start('w1');
    await b.stop('w1', { timeoutSeconds: 0, force: false });
    const second = await b.stateTransfer.exportState('w1', scratch(), {});
    await c.stateTransfer.importState('w1', specOf(kind), second.files);
    const third = await c.stateTransfer.exportState('w1', scratch(), {});
    expect(JSON.parse(readFileSync(Object.values(third.files)[0]!, 'utf8'))).toEqual({ workloadId: 'w1', moves: 2 });
  });

  it.each([
    ['a running container', 'container', { memory: false }, /is running; its state is exported once it is stopped/],
    ["a running container's memory", 'container', { memory: true }, /is running; its state is exported once it is stopped/],
    ['a running VM without its memory', 'vm', { memory: false }, /is running; its state is exported once it is stopped/],
  ] as const)('refuses to export %s, and it goes on running', async (_name, kind, options, message) => {
    const a = await host('a');
    await a.create('w1', specOf(kind));
    await expect(a.stateTransfer.exportState('w1', scratch(), options)).rejects.toThrow(message);
    expect((await a.inspect('w1'))?.state).toBe('running');
  });

  it('refuses files in roles a simulated workload does not have, and makes nothing', async () => {
    const b = await host('b');
    await expect(b.stateTransfer.importState('w1', specOf('container'), { 'disk:root': '/nowhere' })).rejects.toThrow(/files: a simulated container's state is one file \(role image\)/);
    expect(await b.inspect('w1')).toBeUndefined();
  });
});
