import type { Workload } from './workload.js';

/**
 * Where the coordinator keeps workloads. Implementations must return copies
 * or frozen values: callers change a workload only through `put`.
 */
export interface WorkloadStore {
  get(id: string): Workload | undefined;
  /** The workload submitted with this request id, if any. */
  getByRequestId(requestId: string): Workload | undefined;
  /** The live (not deleted) workload with this name, if any. */
  getByName(name: string): Workload | undefined;
  /** All workloads, oldest first. */
  list(): Workload[];
  /** Inserts or replaces. */
  put(workload: Workload): void;
}

/** Process-memory store: state is lost when the coordinator exits. */
export class InMemoryWorkloadStore implements WorkloadStore {
  private readonly byId = new Map<string, Workload>();
  private readonly byRequest = new Map<string, string>();

  get(id: string): Workload | undefined {
    return clone(this.byId.get(id));
  }

  getByRequestId(requestId: string): Workload | undefined {
    const id = this.byRequest.get(requestId);
    return id ? this.get(id) : undefined;
  }

  getByName(name: string): Workload | undefined {
    for (const w of this.byId.values()) if (w.spec.name === name && w.state !== 'deleted') return clone(w);
    return undefined;
  }

  list(): Workload[] {
    return [...this.byId.values()].map((w) => structuredClone(w));
  }

  put(workload: Workload): void {
    this.byId.set(workload.id, structuredClone(workload));
    if (workload.requestId) this.byRequest.set(workload.requestId, workload.id);
  }
}

function clone(w: Workload | undefined): Workload | undefined {
  return w ? structuredClone(w) : undefined;
}
