import { errorMessage, FailedPreconditionError, NotFoundError, type Logger } from '@virtfleet/shared';
import type { Host } from '../hosts/host.js';
import type { StateStore } from './workload-store.js';
import type { Workload } from './workload.js';

/** A workload's files that a migration left on a host it could not reach (down), to remove once the host is back. */
export interface Leftover {
  hostId: string;
  workloadId: string;
  /** The migration that left them. */
  migrationId: string;
  since: string;
}

/** What the leftovers need of the rest of the coordinator. */
export interface LeftoverContext {
  store: Pick<StateStore, 'operations' | 'putOperation'>;
  isLeader(): boolean;
  workload(workloadId: string): Workload | undefined;
  host(hostId: string): Host | undefined;
  /**
   * Removes the workload's files from the host, which does not hold it.
   * @throws FailedPreconditionError when the host runs a copy (the files are that copy's)
   */
  removeFiles(host: Host, workloadId: string): Promise<void>;
}

/**
 * The files migrations left on hosts that were down when they ended (a
 * target's prepared files, a source's after the move), kept as durable
 * records so that whichever coordinator leads removes them once the host
 * reports again. Copies (domains, containers) are reconciliation's to
 * remove; these are the files no copy owns, which no host lists.
 */
export class MigrationLeftovers {
  private sweeping = false;

  constructor(
    private readonly context: LeftoverContext,
    private readonly log: Logger,
  ) {}

  /** Records that the workload's files stay on the host for now. */
  async note(hostId: string, workloadId: string, migrationId: string): Promise<void> {
    const leftover: Leftover = { hostId, workloadId, migrationId, since: new Date().toISOString() };
    await this.context.store.putOperation('leftover', keyOf(hostId, workloadId), leftover);
    this.log.warn({ workload: workloadId, host: hostId, migration: migrationId }, 'files of a migration left on a host that is down; removed once it is back');
  }

  /** The leftovers recorded now, by host. */
  list(): Leftover[] {
    return [...this.context.store.operations<Leftover>('leftover').values()];
  }

  /**
   * On the leader: removes the leftovers on hosts that are up. A record
   * goes once its files are gone, its host forgotten, or its workload lives
   * on that host again; one on a host a migration under way involves waits.
   */
  async sweep(): Promise<void> {
    if (!this.context.isLeader() || this.sweeping) return;
    this.sweeping = true;
    try {
      for (const leftover of this.list()) await this.sweepOne(leftover);
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepOne(l: Leftover): Promise<void> {
    const host = this.context.host(l.hostId);
    if (!host) return this.drop(l, 'its host was forgotten');
    if (host.status !== 'up') return;
    const w = this.context.workload(l.workloadId);
    if (w && w.state !== 'deleted' && w.hostId === l.hostId) return this.drop(l, 'the workload lives on that host again; the files are its own');
    if (w?.migration && (w.migration.targetHostId === l.hostId || w.migration.sourceHostId === l.hostId)) return;
    try {
      await this.context.removeFiles(host, l.workloadId);
      return this.drop(l, 'removed');
    } catch (err) {
      if (err instanceof NotFoundError) return this.drop(l, 'already gone');
      if (err instanceof FailedPreconditionError) return this.drop(l, `a copy runs there, which reconciliation removes: ${errorMessage(err)}`);
      this.log.warn({ workload: l.workloadId, host: l.hostId, err: errorMessage(err) }, 'files a migration left not removed yet; trying again');
    }
  }

  private async drop(l: Leftover, why: string): Promise<void> {
    await this.context.store.putOperation('leftover', keyOf(l.hostId, l.workloadId), undefined);
    this.log.info({ workload: l.workloadId, host: l.hostId, migration: l.migrationId, why }, 'files a migration left: done');
  }
}

const keyOf = (hostId: string, workloadId: string): string => `${workloadId}.${hostId}`;
