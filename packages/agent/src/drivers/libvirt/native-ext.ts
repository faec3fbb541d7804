import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '@virtfleet/shared';
import { z } from 'zod';

/**
 * Our own N-API addon (packages/agent/native/libvirt-ext) for the libvirt calls
 * that @unraid/libvirt lacks. Each call opens and closes its own connection
 * (read-only unless it changes something) on the libuv thread pool and rejects
 * with an Error carrying libvirt's message, `code` (virErrorNumber) and
 * `libvirtDomain` (virErrorDomain). Wrong argument types throw a TypeError
 * synchronously.
 */
export interface LibvirtExt {
  /** libvirt's version on the far end, such as "9.0.0". */
  getLibVersion(uri: string): Promise<string>;
  /** The hypervisor's version, such as "7.2.22" for QEMU; "" when the driver does not know. */
  getHypervisorVersion(uri: string): Promise<string>;
  /** The capabilities XML (virConnectGetCapabilities). */
  getCapabilities(uri: string): Promise<string>;
  /** Defines the network from `xml` unless `name` exists, starts it and marks it autostart: "defined" or "existing". */
  ensureNetwork(uri: string, name: string, xml: string): Promise<string>;
  /** The domain's interfaces and their addresses from DHCP leases, as JSON (see DomainInterface). */
  domainAddresses(uri: string, domainName: string): Promise<string>;
  /**
   * Migrates the domain from `uri` to `destUri` (virDomainMigrateToURI3 on a
   * read-write connection), after virDomainMigrateSetMaxDowntime when
   * `options.maxDowntimeMs` is given. Resolves "" once libvirt reports the
   * migration complete, which takes as long as the migration does; it holds a
   * libuv pool thread that long.
   *
   * With MIGRATE_FLAGS.PEER2PEER the source libvirtd connects to `destUri`
   * itself, so `destUri` must be reachable from the source host, not from
   * here; without it libvirt's QEMU driver refuses ("direct migration is not
   * supported"). QEMU's stream goes to `options.migrateUri`, which defaults to
   * the destination's hostname as the destination resolves it: pass it
   * whenever that name does not lead back to the destination (or tunnel the
   * stream with TUNNELLED, which refuses a migrateUri).
   *
   * Not idempotent. Rejects on any failure, including abortDomainJob; for a
   * failure before the switch-over libvirt leaves the domain running on the
   * source and nothing on the destination. Closing this client's connection does not stop a
   * peer-to-peer migration already under way (the source libvirtd carries
   * it on): use abortDomainJob. Throws TypeError synchronously naming an
   * option of the wrong type, and for an option it does not know.
   */
  migrateDomain(uri: string, domainName: string, destUri: string, options: MigrateDomainOptions): Promise<string>;
  /**
   * The domain's current job (virDomainGetJobStats), as JSON: see
   * parseDomainJobStats. "none" when no job is active, which is the case again
   * once the call that ran the job (migrateDomain) has answered; "failed" or
   * "cancelled" show only while libvirt unwinds such a job. Read-only.
   * Rejects with VIR_ERR_NO_SUPPORT (3) on drivers without jobs (test:///),
   * and when the domain is not running on this host, which includes the last
   * moments of an outgoing migration.
   */
  domainJobStats(uri: string, domainName: string): Promise<string>;
  /**
   * Aborts the domain's current job (virDomainAbortJob), such as a migration,
   * whose own call then rejects. Resolves "" once libvirt has asked for the
   * abort. Rejects with VIR_ERR_OPERATION_INVALID (55) when no job is
   * active, so it is not idempotent.
   */
  abortDomainJob(uri: string, domainName: string): Promise<string>;
  /**
   * The last finished job of the domain (virDomainGetJobStats with
   * VIR_DOMAIN_JOB_STATS_COMPLETED), as domainJobStats answers: its type says
   * how it ended ("completed", "failed" or "cancelled"); "none" when libvirt
   * keeps none.
   */
  completedJobStats(uri: string, domainName: string): Promise<string>;
  /**
   * Starts a push-mode backup (virDomainBackupBegin): libvirt writes every
   * disk the `<domainbackup>` XML names, as it is at this instant, to the
   * target file given there, while the domain runs. Resolves "" once the job
   * has begun; follow it with domainJobStats and completedJobStats.
   */
  backupBegin(uri: string, domainName: string, backupXml: string): Promise<string>;
}

/** libvirt's virDomainMigrateFlags that virtfleet uses (libvirt-domain.h). */
export const MIGRATE_FLAGS = {
  /** Keep the domain running while its memory is copied. */
  LIVE: 1,
  /** The source libvirtd drives the migration and connects to the destination itself. */
  PEER2PEER: 2,
  /** The stream goes through the libvirtd connection (needs PEER2PEER). */
  TUNNELLED: 4,
  /** Define the domain persistently on the destination. */
  PERSIST_DEST: 8,
  /** Undefine the domain on the source once it has moved. */
  UNDEFINE_SOURCE: 16,
  /** Leave the domain paused on the destination. */
  PAUSED: 32,
  /** Copy every non-shared disk in full (NBD to MigrateDomainOptions.disksUri). */
  NON_SHARED_DISK: 64,
  /** Copy non-shared disks incrementally (the destination has the backing images). */
  NON_SHARED_INC: 128,
  /** Keep the domain from being changed on the source while it migrates. */
  CHANGE_PROTECTION: 256,
  /** Migrate even when libvirt considers it unsafe (disk caches, no shared storage). */
  UNSAFE: 512,
  /** Move the definition only; the domain must not be running. */
  OFFLINE: 1024,
  /** Compress the stream. */
  COMPRESSED: 2048,
  /** Cancel the migration if a disk reports an I/O error. */
  ABORT_ON_ERROR: 4096,
  /** Throttle the guest's vCPUs when its memory is dirtied faster than it is copied. */
  AUTO_CONVERGE: 8192,
} as const;

/** migrateDomain's options; each optional one is left out of the call when absent. */
export interface MigrateDomainOptions {
  /** VIR_MIGRATE_* bits (see MIGRATE_FLAGS), an integer from 0 to 2^32 - 1. */
  flags: number;
  /** VIR_MIGRATE_PARAM_URI: where QEMU sends the migration stream, e.g. tcp://10.251.0.3 */
  migrateUri?: string;
  /** VIR_MIGRATE_PARAM_DISKS_URI: the NBD server for storage copy, e.g. tcp://10.251.0.3 */
  disksUri?: string;
  /** VIR_MIGRATE_PARAM_DEST_XML */
  destXml?: string;
  /** VIR_MIGRATE_PARAM_PERSIST_XML */
  persistXml?: string;
  /** VIR_MIGRATE_PARAM_DEST_NAME */
  destName?: string;
  /** VIR_MIGRATE_PARAM_MIGRATE_DISKS, one entry per target dev (vda, vdb); an empty list is the same as none. */
  migrateDisks?: string[];
  /** VIR_MIGRATE_PARAM_BANDWIDTH, MiB/s, an integer. @default the domain's migration speed in libvirt, unlimited unless set */
  bandwidthMiBs?: number;
  /** virDomainMigrateSetMaxDowntime before the migration, ms, an integer; the domain must be running. @default QEMU's 300 ms */
  maxDowntimeMs?: number;
}

/** The job types of virDomainGetJobStats, by name. */
export const DOMAIN_JOB_TYPES = ['none', 'bounded', 'unbounded', 'completed', 'failed', 'cancelled'] as const;

/**
 * The fields of domainJobStats' answer that virtfleet reads (libvirt's
 * VIR_DOMAIN_JOB_* names); the others are dropped. Byte counts and times as
 * numbers, exact up to 2^53.
 */
export interface DomainJobStats {
  /** "unbounded" while a migration runs, "none" without a job; "failed" or "cancelled" while one is unwound. */
  type: (typeof DOMAIN_JOB_TYPES)[number];
  /** ms since the job started. */
  time_elapsed?: number;
  /** Bytes to transfer in all (memory and disks); for an unbounded job it may grow. */
  data_total?: number;
  data_processed?: number;
  data_remaining?: number;
  memory_total?: number;
  memory_processed?: number;
  memory_remaining?: number;
  /** Memory transfer rate, bytes/s. */
  memory_bps?: number;
  disk_total?: number;
  disk_processed?: number;
  disk_remaining?: number;
  /** Disk transfer rate, bytes/s. */
  disk_bps?: number;
  /** ms the guest is paused at the switch-over: expected while running, actual once completed. */
  downtime?: number;
}

const count = z.number().nonnegative().optional();
const domainJobStatsSchema = z.object({
  type: z.enum(DOMAIN_JOB_TYPES),
  time_elapsed: count,
  data_total: count,
  data_processed: count,
  data_remaining: count,
  memory_total: count,
  memory_processed: count,
  memory_remaining: count,
  memory_bps: count,
  disk_total: count,
  disk_processed: count,
  disk_remaining: count,
  disk_bps: count,
  downtime: count,
}) satisfies z.ZodType<DomainJobStats>;

/** Parses domainJobStats' answer; throws on anything that is not such a document. */
export function parseDomainJobStats(json: string): DomainJobStats {
  const parsed = domainJobStatsSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`domainJobStats answered an unexpected document: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** One interface in domainAddresses' answer. */
export interface DomainInterface {
  name: string;
  hwaddr: string;
  addrs: { type: 'ipv4' | 'ipv6'; addr: string; prefix: number }[];
}

/** Where `npm run build:native -w @virtfleet/agent` puts the addon; the same from src/ and dist/. */
export const LIBVIRT_EXT_PATH = fileURLToPath(new URL('../../../native/libvirt-ext/build/Release/virtfleet_libvirt_ext.node', import.meta.url));

export type LibvirtExtLoad = { ok: true; ext: LibvirtExt } | { ok: false; reason: string };

let loaded: LibvirtExtLoad | undefined;

/** Loads the addon once per process. Never throws: a missing or broken build is reported as the reason. */
export function loadLibvirtExt(): LibvirtExtLoad {
  if (loaded) return loaded;
  try {
    const ext = createRequire(import.meta.url)(LIBVIRT_EXT_PATH) as Partial<LibvirtExt>;
    const missing = (['getLibVersion', 'getHypervisorVersion', 'getCapabilities', 'ensureNetwork', 'domainAddresses', 'migrateDomain', 'domainJobStats', 'abortDomainJob', 'completedJobStats', 'backupBegin'] as const).filter((f) => typeof ext[f] !== 'function');
    loaded = missing.length === 0 ? { ok: true, ext: ext as LibvirtExt } : { ok: false, reason: `${LIBVIRT_EXT_PATH} lacks ${missing.join(', ')}` };
  } catch (err) {
    loaded = { ok: false, reason: `cannot load ${LIBVIRT_EXT_PATH}: ${errorMessage(err)}` };
  }
  return loaded;
}
