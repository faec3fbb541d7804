import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectNats, defaultFailoverMode, natsInboxPrefix, errorMessage, type Logger } from '@virtfleet/shared';
import type { AgentConfig } from '../config.js';
import { createDriver, DRIVER_NAMES, type DriverName } from '../drivers/catalog.js';
import type { Driver } from '../drivers/driver.js';
import { WorkloadRecords } from '../workload-records.js';
import { HostLease, type Fenceable } from './host-lease.js';

/** Messages from the fencer to the agent that spawned it (over the IPC channel). */
export type FencerMessage = { type: 'lease'; held: boolean } | { type: 'fenced'; workloads: string[]; at: string };

/** The fencer's pid, so a restarted agent's fencer can retire one left behind by the previous agent. */
export const fencerPidFile = (stateDir: string): string => join(stateDir, 'fencer.pid');

/**
 * Stops the host's fence-first workloads through the fencer's own driver
 * connections, reading the agent's workload records afresh each time (the
 * agent writes them; the fencer only reads).
 */
class DriverFencer implements Fenceable {
  constructor(
    private readonly stateDir: string,
    private readonly drivers: Driver[],
    private readonly send: (m: FencerMessage) => void,
    private readonly log: Logger,
  ) {}

  async fence(reason: string): Promise<{ stopped: number; failed: number; workloads: string[] }> {
    const workloads: string[] = [];
    let failed = 0;
    const records = WorkloadRecords.read(this.stateDir).filter((r) => (r.failover ?? defaultFailoverMode(r.kind)) === 'fence-first');
    await Promise.all(
      records.map(async (r) => {
        const driver = this.drivers.find((d) => d.name === r.driver);
        try {
          if (!driver) throw new Error(`driver ${r.driver} is not open`);
          const current = await driver.inspect(r.workloadId);
          if (current && (current.state === 'running' || current.state === 'paused' || current.state === 'creating')) {
            await driver.stop(r.workloadId, { timeoutSeconds: 0, force: true });
            workloads.push(r.workloadId);
          }
        } catch (err) {
          failed++;
          this.log.error({ workload: r.workloadId, reason, err: errorMessage(err) }, 'could not stop a fence-first workload');
        }
      }),
    );
    if (workloads.length > 0) this.send({ type: 'fenced', workloads, at: new Date().toISOString() });
    return { stopped: workloads.length, failed, workloads };
  }

  setLeaseHeld(held: boolean): void {
    this.send({ type: 'lease', held });
  }
}

/** A fencer left running by the previous agent: asked to hand over (SIGTERM), killed if it does not. */
async function retirePrevious(stateDir: string, log: Logger): Promise<void> {
  const file = fencerPidFile(stateDir);
  const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return;
  const cmdline = (() => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  })();
  if (!cmdline.includes('fencer')) return;
  log.info({ pid }, "retiring the previous agent's fencer");
  const alive = () => existsSync(`/proc/${pid}`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
}

/**
 * The fencer: a small process apart from the agent that holds the host lease
 * and stops fence-first workloads itself when it cannot renew it. The agent
 * spawns it with an IPC channel and force-stops fence-first workloads if it
 * dies. While the agent is gone the fencer keeps the lease, so nothing is
 * moved; after `agentLossFenceMs` without its agent it fences, stores the
 * fence record and exits, so the coordinator may move them with proof.
 * SIGTERM hands over: it stops renewing and exits without fencing.
 */
export async function runFencer(config: AgentConfig, bootId: string, log: Logger): Promise<{ stop(): Promise<void> }> {
  await retirePrevious(config.stateDir, log);
  writeFileSync(fencerPidFile(config.stateDir), String(process.pid));
  const drivers: Driver[] = [];
  for (const name of DRIVER_NAMES) {
    const section = config.drivers[name];
    if (!section?.enabled) continue;
    const { concurrency: _c, readTimeoutMs: _r, changeTimeoutMs: _w, ...rest } = section;
    drivers.push(await createDriver(name as DriverName, { ...rest, stopTimeoutSeconds: config.stopTimeoutSeconds } as never, { hostId: config.hostId, log: log.child({ driver: name }), stateDir: config.stateDir }));
  }
  const send = (m: FencerMessage) => {
    if (process.connected) process.send?.(m);
  };
  const nc = await connectNats(config.nats, `virtfleet-fencer-${config.hostId}`, log, { inboxPrefix: natsInboxPrefix('agent', config.hostId) });
  const lease = new HostLease(
    nc,
    config.hostId,
    bootId,
    { bucket: config.fencing.bucket, fenceTimeoutMs: config.fencing.timeoutMs, renewIntervalMs: config.fencing.renewIntervalMs ?? Math.min(120_000, Math.floor(config.fencing.timeoutMs / 4)) },
    new DriverFencer(config.stateDir, drivers, send, log),
    log.child({ component: 'host-lease' }),
  );
  await lease.start();
  log.info({ pid: process.pid, agentLossFenceMs: config.fencing.fencer.agentLossFenceMs }, 'fencer holding the host lease');

  let agentLoss: NodeJS.Timeout | undefined;
  const close = async () => {
    clearTimeout(agentLoss);
    lease.stop();
    await nc.drain().catch(() => undefined);
    await Promise.all(drivers.map((d) => d.close().catch(() => undefined)));
  };
  process.once('disconnect', () => {
    const afterMs = config.fencing.fencer.agentLossFenceMs;
    log.warn({ afterMs }, afterMs > 0 ? 'agent gone; keeping the host lease, fencing if it does not return in time' : 'agent gone; keeping the host lease');
    if (afterMs <= 0) return;
    agentLoss = setTimeout(() => {
      void (async () => {
        const stored = await lease.release(`no agent for ${afterMs} ms`, 10 * config.fencing.timeoutMs);
        if (stored) log.warn('agent gone: fence-first workloads stopped and recorded; host lease released');
        else log.error('agent gone: could not stop and record every fence-first workload; exiting without proof');
        await close();
        process.exit(stored ? 0 : 1);
      })();
    }, afterMs);
  });
  return { stop: close };
}
