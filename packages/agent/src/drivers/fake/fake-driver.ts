import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type WorkloadKind, type WorkloadSpec } from '@virtfleet/shared';
import {
  WORKLOAD_RESOURCE,
  type Driver,
  type DriverContext,
  type DriverFactory,
  type DriverFingerprint,
  type DriverWorkload,
  type ExportedState,
  type StateOptions,
  type StopOptions,
  type WorkloadStateTransfer,
  type WorkloadUsage,
} from '../driver.js';

export const FAKE_DRIVER_NAME = 'fake';

export interface FakeDriverConfig {
  /** Kinds the simulated host claims to run. @default ['vm', 'container'] */
  kinds: WorkloadKind[];
  /** Capacity the simulated host reports. @default { vcpus: 64, memoryMiB: 262144 } */
  vcpus: number;
  memoryMiB: number;
}

interface FakeWorkload extends DriverWorkload {
  spec: WorkloadSpec;
  startedAt: number;
  /** How many times its state was carried to another host: what a move must bring along. */
  moves: number;
}

/** What a simulated workload's state file holds. */
interface FakeState {
  workloadId: string;
  moves: number;
}

/**
 * An in-memory backend for fleet-scale simulation and unit tests of the agent.
 * It keeps state only in this process: workloads vanish when the agent exits.
 */
class FakeDriver implements Driver {
  readonly name = FAKE_DRIVER_NAME;
  readonly kinds: readonly WorkloadKind[];
  private readonly workloads = new Map<string, FakeWorkload>();

  constructor(
    private readonly config: FakeDriverConfig,
    private readonly context: DriverContext,
  ) {
    this.kinds = config.kinds;
  }

  fingerprint(): Promise<DriverFingerprint> {
    return Promise.resolve({
      name: this.name,
      version: '1',
      kinds: [...this.kinds],
      domain_types: [],
      healthy: true,
      detail: `simulated host ${this.context.hostId}`,
      capacity: { vcpus: this.config.vcpus, memoryMiB: this.config.memoryMiB },
    });
  }

  create(workloadId: string, spec: WorkloadSpec): Promise<DriverWorkload> {
    let w = this.workloads.get(workloadId);
    if (!w) {
      w = { workloadId, name: spec.name, kind: spec.kind, state: 'running', ref: `fake-${workloadId}`, spec, startedAt: Date.now(), moves: 0 };
      this.workloads.set(workloadId, w);
    }
    return Promise.resolve(snapshot(w));
  }

  start(workloadId: string): Promise<DriverWorkload> {
    return this.transition(workloadId, (w) => {
      if (w.state === 'stopped' || w.state === 'failed') {
        w.state = 'running';
        w.startedAt = Date.now();
      }
    });
  }

  stop(workloadId: string, _options: StopOptions): Promise<DriverWorkload> {
    return this.transition(workloadId, (w) => {
      w.state = 'stopped';
    });
  }

  pause(workloadId: string): Promise<DriverWorkload> {
    return this.transition(workloadId, (w) => {
      if (w.state === 'stopped' || w.state === 'failed') throw new FailedPreconditionError(`workload ${workloadId} is ${w.state}; only a running workload can be paused`);
      w.state = 'paused';
    });
  }

  resume(workloadId: string): Promise<DriverWorkload> {
    return this.transition(workloadId, (w) => {
      if (w.state === 'stopped' || w.state === 'failed') throw new FailedPreconditionError(`workload ${workloadId} is ${w.state}; only a paused workload can be resumed`);
      w.state = 'running';
    });
  }

  delete(workloadId: string): Promise<void> {
    this.workloads.delete(workloadId);
    return Promise.resolve();
  }

  inspect(workloadId: string): Promise<DriverWorkload | undefined> {
    const w = this.workloads.get(workloadId);
    return Promise.resolve(w ? snapshot(w) : undefined);
  }

  list(): Promise<DriverWorkload[]> {
    return Promise.resolve([...this.workloads.values()].map(snapshot));
  }

  usage(workloadId: string): Promise<WorkloadUsage | undefined> {
    const w = this.workloads.get(workloadId);
    if (!w || w.state !== 'running') return Promise.resolve(undefined);
    // A simulated workload uses a tenth of a CPU and half its memory.
    return Promise.resolve({ cpuTimeNs: (Date.now() - w.startedAt) * 1e5, memoryUsedMiB: w.spec.memory_mib / 2 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * A simulated workload's state is one small file (its role that of the
   * real backends: a VM's root disk, a container's image) that counts its
   * moves, so a fleet simulation exercises cold migration, drain and backup
   * end to end through the coordinator.
   */
  readonly stateTransfer: WorkloadStateTransfer = {
    // exportState with memory stops a running VM as a save would; start resumes it.
    exportState: async (workloadId, dir, options) => {
      const w = this.require(workloadId);
      if (w.state === 'running' || w.state === 'paused') {
        if (!options?.memory || w.kind !== 'vm') throw new FailedPreconditionError(`workload ${workloadId} is ${w.state}; its state is exported once it is stopped`);
        w.state = 'stopped';
      }
      return this.writeState(w, dir, options);
    },
    snapshotState: (workloadId, dir, options) => {
      const w = this.require(workloadId);
      if (options?.memory && (w.kind !== 'vm' || w.state === 'stopped')) return Promise.reject(new FailedPreconditionError(`workload ${workloadId} has no memory to carry`));
      return this.writeState(w, dir, options);
    },
    importState: async (workloadId, spec, files) => {
      const existing = this.workloads.get(workloadId);
      if (existing) return snapshot(existing);
      const role = roleOf(spec.kind);
      const unknown = Object.keys(files).filter((r) => r !== role && r !== 'memory');
      if (unknown.length > 0 || !files[role]) throw new InvalidArgumentError('files', `a simulated ${spec.kind}'s state is one file (role ${role}), not ${JSON.stringify(Object.keys(files))}`);
      const state = JSON.parse(await readFile(files[role], 'utf8')) as FakeState;
      const w: FakeWorkload = { workloadId, name: spec.name, kind: spec.kind, state: 'stopped', ref: `fake-${workloadId}`, spec, startedAt: Date.now(), moves: state.moves + 1 };
      this.workloads.set(workloadId, w);
      return snapshot(w);
    },
  };

  private require(workloadId: string): FakeWorkload {
    const w = this.workloads.get(workloadId);
    if (!w) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    return w;
  }

  private async writeState(w: FakeWorkload, dir: string, options: StateOptions | undefined): Promise<ExportedState> {
    const files: Record<string, string> = { [roleOf(w.kind)]: join(dir, 'state.json') };
    const state: FakeState = { workloadId: w.workloadId, moves: w.moves };
    await writeFile(files[roleOf(w.kind)]!, JSON.stringify(state));
    if (options?.memory && w.kind === 'vm') {
      files.memory = join(dir, 'memory');
      await writeFile(files.memory, String(w.startedAt));
    }
    return { files, release: () => Promise.resolve() };
  }

  private transition(workloadId: string, change: (w: FakeWorkload) => void): Promise<DriverWorkload> {
    const w = this.workloads.get(workloadId);
    if (!w) return Promise.reject(new NotFoundError(WORKLOAD_RESOURCE, workloadId));
    try {
      change(w);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return Promise.resolve(snapshot(w));
  }
}

function snapshot(w: FakeWorkload): DriverWorkload {
  return { workloadId: w.workloadId, name: w.name, kind: w.kind, state: w.state, ref: w.ref };
}

const roleOf = (kind: WorkloadKind): string => (kind === 'vm' ? 'disk:root' : 'image');

export const createFakeDriver: DriverFactory<FakeDriverConfig> = (config, context) => Promise.resolve(new FakeDriver(config, context));
