import { spawn, type ChildProcess } from 'node:child_process';
import { Kvm } from '@nats-io/kv';
import { errorMessage, fenceRecordKey, type FenceRecord, type Logger, type NatsConnection } from '@virtfleet/shared';
import type { AgentConfig } from '../config.js';
import type { FencerMessage } from './fencer.js';
import type { Fenceable } from './host-lease.js';

/** What the supervisor needs of the agent's workloads. */
export interface FencedHost extends Fenceable {
  /** Notes that the fencer stopped these workloads, so they report as stopped by self-fencing. */
  markFenced(workloadIds: string[], at: string): Promise<void>;
}

/**
 * The agent's side of the fencer: spawns `virtfleet fencer` (in its own
 * process group, so it outlives the agent), follows its lease state over the
 * IPC channel, and when it dies force-stops every fence-first workload,
 * stores a fence record (the proof the coordinator needs) and starts it again
 * after `restartDelayMs`. Its death therefore stops those workloads, as long
 * as this agent is alive; while the agent is gone the fencer holds the lease.
 */
export class FencerSupervisor {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly bootId: string,
    private readonly host: FencedHost,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    this.host.setLeaseHeld(false);
    this.spawnFencer();
    return Promise.resolve();
  }

  /** Stops the fencer (it hands over: no fencing) and does not restart it. */
  stop(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.child?.kill('SIGTERM');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private spawnFencer(): void {
    const entry = process.argv[1];
    if (!entry) throw new Error('cannot find the virtfleet CLI to start the fencer');
    const child = spawn(process.execPath, [...process.execArgv, entry, 'fencer', '--boot-id', this.bootId], {
      env: { ...process.env, VIRTFLEET_FENCER_CONFIG: JSON.stringify(this.config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    this.child = child;
    this.log.info({ pid: child.pid }, 'fencer started');
    child.on('message', (m: FencerMessage) => {
      if (m.type === 'lease') this.host.setLeaseHeld(m.held);
      else if (m.type === 'fenced')
        this.host.markFenced(m.workloads, m.at).catch((err: unknown) => this.log.error({ err: String(err) }, 'could not record the fencer\'s stops'));
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      void this.onFencerDeath(`the fencer exited (${signal ?? `code ${code}`})`);
    });
  }

  private async onFencerDeath(reason: string): Promise<void> {
    this.host.setLeaseHeld(false);
    this.log.error({ reason }, 'fencer died; stopping fence-first workloads');
    for (;;) {
      const result = await this.host.fence(reason);
      if (result.failed === 0) {
        this.log.warn({ reason, stopped: result.stopped }, 'fenced: fence-first workloads stopped');
        await this.storeRecord({ host_id: this.config.hostId, boot_id: this.bootId, fenced_at: new Date().toISOString(), reason, workloads: result.workloads ?? [] });
        break;
      }
      if (this.stopping) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (!this.stopping) this.restartTimer = setTimeout(() => this.spawnFencer(), this.config.fencing.fencer.restartDelayMs);
  }

  /** Best effort: without NATS the coordinator cannot see it anyway, and the next fencer's lease renewal supersedes it. */
  private async storeRecord(record: FenceRecord): Promise<void> {
    try {
      const kv = await new Kvm(this.nc).open(this.config.fencing.bucket, { allow_direct: true, timeout: 5000 });
      await kv.put(fenceRecordKey(this.config.hostId), JSON.stringify(record));
      this.log.info({ workloads: record.workloads.length }, 'fence record stored');
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'fence record not stored');
    }
  }
}
