import { AbortedError, FailedPreconditionError, InternalError, NotFoundError, UnavailableError, WORKLOAD_ID, errorMessage, type Logger, type WorkloadSpec } from '@virtfleet/shared';
import { backendName, WORKLOAD_RESOURCE, type IncomingMigration, type LiveMigration, type MigrationOptions, type MigrationProgressReport } from '../driver.js';
import { migrationFilesOf, retargetDomainXml, writableDiskTargets } from './domain-xml.js';
import { MIGRATE_FLAGS, parseDomainJobStats, type LibvirtExtLoad } from './native-ext.js';
import type { VmFiles, VmStorage } from './vm-storage.js';
import { OpQueue } from '../op-queue.js';

/** libvirt's XML of a domain as it may be sent to another host (VIR_DOMAIN_XML_MIGRATABLE). */
const XML_MIGRATABLE = 8;
/** How often the source reports a migration's progress. */
const PROGRESS_INTERVAL_MS = 1000;

/** What the migration needs of the libvirt driver that owns it. */
export interface MigratingDriver {
  readonly hostId: string;
  /** The driver's own libvirt URI. */
  readonly uri: string;
  /** How other hosts reach this one, if they may. */
  readonly migration: { uri: string; address: string } | undefined;
  /** Live migrations that leave this host at once; more wait their turn. */
  readonly maxOutgoing: number;
  readonly ext: LibvirtExtLoad;
  readonly storage: VmStorage;
  readonly log: Logger;
  /** The migratable XML of the workload's domain on this host. @throws NotFoundError when this host does not own it */
  domainXml(workloadId: string, flags: number): Promise<string>;
  /** True when this host owns a domain of the workload. */
  holds(workloadId: string): Promise<boolean>;
  /** The state of the workload's domain here, or undefined when this host owns none. */
  stateOf(workloadId: string): Promise<string | undefined>;
  /** Drops what the driver remembers of a domain that left this host. */
  forget(workloadId: string): void;
}

/**
 * Live migration between two libvirt hosts, peer to peer: the source's
 * libvirtd talks to the target's, QEMU sends memory (and, for disks that are
 * not shared, their top layer over NBD) straight to the target. The target
 * makes the VM's files first, on its own cached images; the source rewrites
 * the domain's paths to the target's, and libvirt defines the domain there
 * and undefines it here only once it runs there. Until that switch-over the
 * source's copy runs; after it only the target's.
 */
export class LibvirtLiveMigration implements LiveMigration {
  /** Workloads migrating away now or waiting their turn, and whether an abort was asked for. */
  private readonly outgoing = new Map<string, { aborted: boolean; started: boolean }>();
  /**
   * Each migration holds a thread of libuv's pool for as long as it runs (the
   * addon's call blocks), and the NIC and disks it uses are shared: as
   * libvirt's and Nova's defaults do, few at once, the rest queued.
   */
  private readonly slots: OpQueue;

  constructor(private readonly driver: MigratingDriver) {
    this.slots = new OpQueue(driver.maxOutgoing);
  }

  async prepareIncoming(workloadId: string, spec: WorkloadSpec): Promise<IncomingMigration> {
    const { migration, hostId } = this.driver;
    if (!migration) throw new FailedPreconditionError(`host ${hostId} receives no live migrations: drivers.libvirt.migration is not configured`);
    if (await this.driver.holds(workloadId)) throw new FailedPreconditionError(`host ${hostId} already runs workload ${workloadId}`);
    const files = await this.driver.storage.prepare(workloadId, spec);
    return { hostId, hypervisorUri: migration.uri, transferUri: `tcp://${migration.address}`, files: migrationFilesOf(files), backendName: backendName(hostId, workloadId) };
  }

  async migrateOut(workloadId: string, target: IncomingMigration, options: MigrationOptions, onProgress: (p: MigrationProgressReport) => void): Promise<void> {
    const ext = this.requireExt();
    const name = backendName(this.driver.hostId, workloadId);
    const running = await ext.domainJobStats(this.driver.uri, name).then(
      (json) => ['unbounded', 'bounded'].includes(parseDomainJobStats(json).type),
      () => false,
    );
    if (this.outgoing.has(workloadId) || running) throw new FailedPreconditionError(`workload ${workloadId} is already migrating`);
    const files = await this.driver.storage.files(workloadId);
    if (!files) throw new FailedPreconditionError(`workload ${workloadId} has no files made by virtfleet on this host, so it cannot be migrated live`);
    const state = { aborted: false, started: false };
    this.outgoing.set(workloadId, state);
    const startedAt = Date.now();
    try {
      await this.slots.run(() => this.carryOut(workloadId, name, files, target, options, state, onProgress));
    } catch (err) {
      if (state.aborted) throw new AbortedError(`the migration of workload ${workloadId} was cancelled; it still runs on ${this.driver.hostId}`, { cause: err });
      throw new UnavailableError(`migrating workload ${workloadId} to ${target.hostId} failed; it still runs on ${this.driver.hostId}: ${errorMessage(err)}`, { cause: err });
    } finally {
      this.outgoing.delete(workloadId);
    }
    // It runs on the target now, and libvirt undefined it here: only the files are left.
    this.driver.forget(workloadId);
    await this.driver.storage.remove(workloadId).catch((err: unknown) => this.driver.log.warn({ workload: workloadId, err: errorMessage(err) }, 'migrated away, but its files here were not removed'));
    onProgress({ phase: 'completed', dataTotalBytes: 0, dataProcessedBytes: 0, dataRemainingBytes: 0, bytesPerSecond: 0, downtimeMs: 0, elapsedMs: Date.now() - startedAt });
  }

  /** The migration itself, once its turn came; aborted before it started, it never starts. */
  private async carryOut(
    workloadId: string,
    name: string,
    files: VmFiles,
    target: IncomingMigration,
    options: MigrationOptions,
    state: { aborted: boolean; started: boolean },
    onProgress: (p: MigrationProgressReport) => void,
  ): Promise<void> {
    if (state.aborted) throw new AbortedError(`the migration of workload ${workloadId} was cancelled before it started`);
    const ext = this.requireExt();
    const xml = await this.driver.domainXml(workloadId, XML_MIGRATABLE);
    const destXml = retargetDomainXml(xml, { hostId: this.driver.hostId, files: migrationFilesOf(files) }, { hostId: target.hostId, files: target.files });
    state.started = true;
    const startedAt = Date.now();
    const migrating = ext.migrateDomain(this.driver.uri, name, target.hypervisorUri, {
      // Persistent on the target and gone from here once it runs there; disks copied unless shared
      // (only their top layer: the target has the same catalog images beneath).
      flags: MIGRATE_FLAGS.LIVE | MIGRATE_FLAGS.PEER2PEER | MIGRATE_FLAGS.PERSIST_DEST | MIGRATE_FLAGS.UNDEFINE_SOURCE | MIGRATE_FLAGS.NON_SHARED_INC | MIGRATE_FLAGS.ABORT_ON_ERROR,
      migrateUri: target.transferUri,
      disksUri: target.transferUri,
      destXml,
      persistXml: destXml,
      destName: target.backendName,
      migrateDisks: writableDiskTargets(files),
      ...(options.bandwidthMiBs ? { bandwidthMiBs: options.bandwidthMiBs } : {}),
      ...(options.maxDowntimeMs ? { maxDowntimeMs: options.maxDowntimeMs } : {}),
    });
    const progress = setInterval(() => {
      ext.domainJobStats(this.driver.uri, name).then(
        (json) => {
          const stats = parseDomainJobStats(json);
          if (stats.type !== 'unbounded' && stats.type !== 'bounded') return;
          const remaining = stats.data_remaining ?? 0;
          onProgress({
            phase: remaining === 0 && (stats.data_total ?? 0) > 0 ? 'switching' : 'transferring',
            dataTotalBytes: stats.data_total ?? 0,
            dataProcessedBytes: stats.data_processed ?? 0,
            dataRemainingBytes: remaining,
            bytesPerSecond: stats.memory_bps ?? 0,
            downtimeMs: stats.downtime ?? 0,
            elapsedMs: stats.time_elapsed ?? Date.now() - startedAt,
          });
        },
        () => undefined, // the job may have ended between two polls
      );
    }, PROGRESS_INTERVAL_MS);
    try {
      await migrating;
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * Asks libvirt, not this process's memory, whether a migration runs: one
   * started before an agent restart goes on (libvirt keeps peer-to-peer jobs
   * when their caller goes) and must be abortable all the same.
   */
  async abortMigration(workloadId: string): Promise<void> {
    const waiting = this.outgoing.get(workloadId);
    if (waiting && !waiting.started) {
      // Still waiting for its turn: it will not start.
      waiting.aborted = true;
      return;
    }
    const ext = this.requireExt();
    const name = backendName(this.driver.hostId, workloadId);
    let active: boolean;
    try {
      const { type } = parseDomainJobStats(await ext.domainJobStats(this.driver.uri, name));
      active = type === 'unbounded' || type === 'bounded';
    } catch (err) {
      // libvirt keeps no job for a domain that is not running: nothing can be migrating then.
      const state = await this.driver.stateOf(workloadId);
      if (state === undefined) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
      if (state !== 'running' && state !== 'paused') throw new FailedPreconditionError(`workload ${workloadId} is ${state} on host ${this.driver.hostId}, so it is not migrating`);
      throw new UnavailableError(`cannot read the migration job of workload ${workloadId}: ${errorMessage(err)}`, { cause: err });
    }
    if (!active) throw new FailedPreconditionError(`workload ${workloadId} is not migrating from host ${this.driver.hostId}`);
    const state = this.outgoing.get(workloadId);
    if (state) state.aborted = true;
    try {
      await ext.abortDomainJob(this.driver.uri, name);
    } catch (err) {
      throw new UnavailableError(`cannot abort the migration of workload ${workloadId}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async discardIncoming(workloadId: string): Promise<void> {
    if (!WORKLOAD_ID.test(workloadId)) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    if (await this.driver.holds(workloadId)) throw new FailedPreconditionError(`workload ${workloadId} runs on host ${this.driver.hostId}: its migration finished, so its files stay`);
    await this.driver.storage.remove(workloadId);
  }

  private requireExt() {
    if (!this.driver.ext.ok) throw new InternalError(`live migration needs the libvirt-ext addon: ${this.driver.ext.reason}`);
    return this.driver.ext.ext;
  }
}
