import type { pb } from '@virtfleet/shared';
import { expect } from 'vitest';
import { startCluster, type TestCluster } from './cluster.js';
import { freePort } from './processes.js';
import { startSimulatedHost, type SimulatedHost } from './simulated-host.js';
import { testGuest, type TestGuest } from './test-guest.js';
import { GiveUp, waitFor, waitUntil } from './wait.js';

/** How long the test guest may take to boot under TCG on a busy machine. */
export const GUEST_BOOT_MS = 180_000;

/** The test guest as a spec: its catalog images (imported under `<tag>-disk|kernel|initrd`), under TCG. */
export function testGuestSpec(tag: string, name: string, extra: Partial<pb.WorkloadSpec> = {}): pb.WorkloadSpec {
  return {
    name,
    kind: 'vm',
    vcpus: 1,
    memory_mib: 128,
    image: `${tag}-disk`,
    disk_gib: 1,
    boot: { kernel: `${tag}-kernel`, initrd: `${tag}-initrd`, cmdline: 'console=ttyS0 quiet' },
    domain_type: 'qemu',
    ...extra,
  };
}

/** A cluster with two simulated hosts (`<tag>a`, `<tag>b`) and the test guest's images in its catalog. */
export interface Playground {
  cluster: TestCluster;
  hosts: [SimulatedHost, SimulatedHost];
  guest: TestGuest;
  cli(...args: string[]): ReturnType<TestCluster['cli']>;
  /** Waits until the workload runs; gives up at once if it fails. */
  runningOn(id: string): Promise<pb.Workload__Output>;
  stop(): Promise<void>;
}

export async function startPlayground(tag: string): Promise<Playground> {
  const guest = await testGuest();
  const cluster = await startCluster({ agents: [] });
  const cli = (...args: string[]) => cluster.cli(...args);
  const hosts: [SimulatedHost, SimulatedHost] = [await startSimulatedHost(`${tag}a`, cluster.nats, await freePort(), cluster.pki.dir), await startSimulatedHost(`${tag}b`, cluster.nats, await freePort(), cluster.pki.dir)];
  for (const [file, name] of [
    [guest.kernel, 'kernel'],
    [guest.initrd, 'initrd'],
    [guest.disk, 'disk'],
  ] as const) {
    const imported = await cli('image', 'import', file, '--name', `${tag}-${name}`);
    expect(imported.code, imported.stderr).toBe(0);
  }
  await waitUntil('both simulated hosts up', async () => (await cluster.api.hosts()).hosts.filter((h) => h.status === 'up').length === 2, { timeoutMs: 60_000 });
  return {
    cluster,
    hosts,
    guest,
    cli,
    runningOn: (id) =>
      waitFor(
        `${id} running`,
        async () => {
          const w = await cluster.api.get(id);
          if (w.state === 'failed') throw new GiveUp(`${id} failed: ${w.message}`);
          return w.state === 'running' ? w : undefined;
        },
        { timeoutMs: GUEST_BOOT_MS },
      ),
    async stop() {
      for (const h of hosts) await h.down().catch(() => undefined);
      await cluster.stop();
    },
  };
}
