import { FailedPreconditionError, NotFoundError, type WorkloadKind, type WorkloadSpec } from '@virtfleet/shared';
import { WORKLOAD_RESOURCE, type Driver, type DriverContext, type DriverFactory, type DriverFingerprint, type DriverWorkload, type StopOptions, type WorkloadUsage } from '../driver.js';

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
      w = { workloadId, name: spec.name, kind: spec.kind, state: 'running', ref: `fake-${workloadId}`, spec, startedAt: Date.now() };
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

export const createFakeDriver: DriverFactory<FakeDriverConfig> = (config, context) => Promise.resolve(new FakeDriver(config, context));
