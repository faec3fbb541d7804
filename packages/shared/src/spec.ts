import { posix } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { parseCatalogRef } from './images.js';
import { SPEC_NETWORK_NONE } from './network.js';
import { DNS_LABEL, parseOrThrow } from './validation.js';
import { MAX_YAML_DEPTH, yamlNestedDeeperThan } from './yaml-depth.js';

export const WORKLOAD_KINDS = ['vm', 'container'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** Upper bounds that no real host reaches; anything above is a typo, not a request. */
export const SPEC_LIMITS = {
  maxVcpus: 1024,
  // The kernel's smallest CFS quota is 1 ms per 100 ms period; Docker fails the start below it.
  minContainerVcpus: 0.01,
  minMemoryMiB: 6, // Docker's own minimum
  maxMemoryMiB: 16 * 1024 * 1024,
  maxDiskGiB: 1024 * 1024,
  maxCommandArgs: 256,
  maxArgLength: 4096,
  maxEnv: 256,
  maxLabels: 64,
  maxDataDisks: 16,
  maxKernelCmdline: 2048,
  maxUserDataBytes: 64 * 1024,
  maxMetaDataBytes: 16 * 1024,
  maxSshKeys: 32,
  maxPorts: 32,
} as const;

// Docker reference: [registry[:port]/]path[:tag][@digest], lower-case path components.
const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const DISK_PATH = /^\/[A-Za-z0-9._+/-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$/;
// eslint-disable-next-line no-control-regex
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;

const FEATURE = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

/** SJF's run time for a workload that gives none. */
export const DEFAULT_EXPECTED_RUNTIME_SECONDS = 3600;
export const DEFAULT_PRIORITY = 50;
export const DEFAULT_TENANT = 'default';
export const MAX_TRUST_LEVEL = 10;
/** The host CPU utilisation a `low` latency workload tolerates at most. */
export const LOW_LATENCY_MAX_CPU_UTILISATION = 0.6;

export const ISOLATION_LEVELS = ['shared', 'tenant', 'dedicated'] as const;
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];
export const LATENCY_CLASSES = ['standard', 'low', 'batch'] as const;
export type LatencyClass = (typeof LATENCY_CLASSES)[number];

export const RESTART_POLICIES = ['always', 'on-failure', 'never'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];
export const FAILOVER_MODES = ['reschedule', 'fence-first'] as const;
/** Whether a stopped workload keeps its booking on its host. */
export const STOPPED_RESERVATIONS = ['keep', 'release'] as const;
export type StoppedReservation = (typeof STOPPED_RESERVATIONS)[number];
export type FailoverMode = (typeof FAILOVER_MODES)[number];

/** VMs fence first: their disks must never have two writers. Containers are rescheduled. */
export function defaultFailoverMode(kind: WorkloadKind): FailoverMode {
  return kind === 'vm' ? 'fence-first' : 'reschedule';
}

/** proto3 sends '' for an unset string; treat it like an absent field so defaults apply. */
const unsetIfEmpty = (v: unknown) => (v === '' || v === null ? undefined : v);
/** proto3 sends [] for an unset repeated field; optional lists stay out of records that do not use them. */
const unsetIfEmptyList = (v: unknown) => (v === null || (Array.isArray(v) && v.length === 0) ? undefined : v);

const performanceSchema = z
  .object({
    max_host_cpu_utilisation: z.number({ error: 'must be a number' }).gt(0, 'must be greater than 0').max(1, 'must be at most 1 (100%)').optional(),
    memory_headroom_mib: z.number({ error: 'must be a number' }).int('must be a whole number of MiB').min(0, 'must not be negative').max(16 * 1024 * 1024).default(0),
    latency_class: z.preprocess(unsetIfEmpty, z.enum(LATENCY_CLASSES, { error: `must be one of ${LATENCY_CLASSES.join(', ')}` }).default('standard')),
  })
  .strict();

const securitySchema = z
  .object({
    isolation: z.preprocess(unsetIfEmpty, z.enum(ISOLATION_LEVELS, { error: `must be one of ${ISOLATION_LEVELS.join(', ')}` }).default('shared')),
    min_trust_level: z.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must not be negative').max(MAX_TRUST_LEVEL, `must be at most ${MAX_TRUST_LEVEL}`).default(0),
    required_features: z.array(z.string().regex(FEATURE, 'features are 1-63 characters of a-z, 0-9, "-" and "."')).max(32).default([]),
    anti_affinity_group: z.preprocess(unsetIfEmpty, z.string().regex(DNS_LABEL, 'must be a DNS label').optional()),
  })
  .strict();

const DOMAIN_TYPES = ['kvm', 'qemu'] as const;
export type SpecDomainType = (typeof DOMAIN_TYPES)[number];
const CATALOG_REF_RULE = 'must name a catalog image: NAME or NAME@sha256:<64 hex digits> (see virtfleet image ls)';
const catalogRef = z.string().refine((s) => parseCatalogRef(s) !== undefined, CATALOG_REF_RULE);
const noNul = (max: number, what: string) =>
  z
    .string()
    .refine((s) => Buffer.byteLength(s) <= max, `must be at most ${max} bytes of ${what}`)
    .refine((s) => !s.includes('\0'), 'must not contain NUL');

// What cloud-init accepts at the start of user-data (its "user data formats").
const USER_DATA_HEADERS = ['#cloud-config', '#!', '#include', '#cloud-boothook', '#part-handler', '#cloud-config-archive', '## template: jinja', 'Content-Type:'];

/** Why `text` is not a YAML mapping (or empty); undefined when it is. */
function yamlMappingProblem(text: string): string | undefined {
  if (yamlNestedDeeperThan(text)) return `is nested deeper than ${MAX_YAML_DEPTH} levels`;
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) return `is not valid YAML: ${error.message.split('\n')[0]}`;
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // toJS throws on too many aliases (a "billion laughs" document); that is bad input, not a fault.
    return `is not valid YAML: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) return 'must be a YAML mapping';
  return undefined;
}

const cloudInitSchema = z
  .object({
    /** cloud-init user-data: #cloud-config YAML, a script, or another format cloud-init knows by its first line. */
    user_data: noNul(SPEC_LIMITS.maxUserDataBytes, 'user-data')
      .default('')
      .superRefine((text, ctx) => {
        if (text === '') return;
        if (!USER_DATA_HEADERS.some((h) => text.startsWith(h))) {
          ctx.addIssue({ code: 'custom', message: `must start with a cloud-init header such as #cloud-config or #! (one of ${USER_DATA_HEADERS.join(', ')})` });
          return;
        }
        if (text.startsWith('#cloud-config') && !text.startsWith('#cloud-config-archive')) {
          const problem = yamlMappingProblem(text);
          if (problem) ctx.addIssue({ code: 'custom', message: `#cloud-config ${problem}` });
        }
      }),
    /** NoCloud meta-data, YAML; instance-id and local-hostname are filled in when absent. */
    meta_data: noNul(SPEC_LIMITS.maxMetaDataBytes, 'meta-data')
      .default('')
      .superRefine((text, ctx) => {
        const problem = text === '' ? undefined : yamlMappingProblem(text);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    /** Network config, version 1 or 2 YAML. */
    network_config: noNul(SPEC_LIMITS.maxMetaDataBytes, 'network config')
      .default('')
      .superRefine((text, ctx) => {
        const problem = text === '' ? undefined : yamlMappingProblem(text);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    /** Shorthand: keys for the default user, added to user-data's #cloud-config. */
    ssh_authorized_keys: z
      .array(
        z
          .string()
          .max(SPEC_LIMITS.maxArgLength)
          .regex(/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/, 'must be one OpenSSH public key line, such as "ssh-ed25519 AAAA... user@host"')
          .regex(NO_CONTROL, 'must not contain control characters'),
      )
      .max(SPEC_LIMITS.maxSshKeys)
      .default([]),
    /** Shorthand: the guest's hostname (meta-data local-hostname). */
    hostname: z.preprocess(unsetIfEmpty, z.string().regex(DNS_LABEL, 'must be a DNS label').optional()),
  })
  .strict()
  .superRefine((c, ctx) => {
    const shorthands = c.ssh_authorized_keys.length > 0;
    if (shorthands && c.user_data !== '' && !c.user_data.startsWith('#cloud-config'))
      ctx.addIssue({ code: 'custom', path: ['ssh_authorized_keys'], message: 'can only be merged into #cloud-config user-data; put the keys in the script instead' });
  });

export type CloudInit = z.output<typeof cloudInitSchema>;

const dataDiskSchema = z
  .object({
    name: z.string().regex(DNS_LABEL, 'must be a DNS label').max(32, 'must be at most 32 characters'),
    size_gib: z.number({ error: 'must be a number' }).int('must be a whole number of GiB').min(1, 'must be at least 1').max(SPEC_LIMITS.maxDiskGiB, `must be at most ${SPEC_LIMITS.maxDiskGiB}`),
  })
  .strict();

const kernelBootSchema = z
  .object({
    /** A catalog image of format kernel. */
    kernel: catalogRef,
    /** A catalog image of format initrd; '' for none. */
    initrd: z.string().default('').refine((s) => s === '' || parseCatalogRef(s) !== undefined, CATALOG_REF_RULE),
    cmdline: z
      .string()
      .max(SPEC_LIMITS.maxKernelCmdline, `must be at most ${SPEC_LIMITS.maxKernelCmdline} characters`)
      // eslint-disable-next-line no-control-regex
      .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
      .default(''),
  })
  .strict();

export const PORT_PROTOCOLS = ['tcp', 'udp'] as const;
const portNumber = z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(65535, 'must be at most 65535');
const publishedPortSchema = z
  .object({
    /** The port on the host's addresses. */
    host_port: portNumber,
    /** The port inside the workload. */
    port: portNumber,
    protocol: z.preprocess(unsetIfEmpty, z.enum(PORT_PROTOCOLS, { error: `must be one of ${PORT_PROTOCOLS.join(', ')}` }).default('tcp')),
  })
  .strict();
export type PublishedPort = z.output<typeof publishedPortSchema>;

/** How a published port is booked on its host: one workload per host port and protocol. */
export const hostPortKey = (p: Pick<PublishedPort, 'host_port' | 'protocol'>): string => `${p.protocol}/${p.host_port}`;

/** Bounds of a spec's backup policy. */
export const BACKUP_POLICY_LIMITS = {
  /** The shortest `every`: 5 minutes. */
  minEveryMs: 5 * 60_000,
  /** The longest `every`: a year. */
  maxEveryMs: 366 * 86_400_000,
  /** The largest keep_* count. */
  maxKeep: 1000,
} as const;
const DURATION_UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration such as 30m, 1h, 1d or 1h30m in milliseconds; undefined when it is not one. */
export function parseDurationMs(text: string): number | undefined {
  if (!/^(\d{1,6}[smhd])+$/.test(text)) return undefined;
  return [...text.matchAll(/(\d+)([smhd])/g)].reduce((sum, m) => sum + Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? 's'] ?? 0), 0);
}

/** A keep_* count of a retention rule: 0 (rule off) to 1000. */
export const keepCountSchema = z
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must not be negative')
  .max(BACKUP_POLICY_LIMITS.maxKeep, `must be at most ${BACKUP_POLICY_LIMITS.maxKeep}`);

const backupPolicySchema = z
  .object({
    /** How often a backup is taken: 30m, 1h, 1d, 1h30m...; at least 5m. */
    every: z.preprocess(
      unsetIfEmpty,
      z.string({ error: 'must be a duration such as 30m, 1h or 1d' }).superRefine((text, ctx) => {
        const ms = parseDurationMs(text);
        if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'must be a duration such as 30m, 1h, 1d or 1h30m' });
        else if (ms < BACKUP_POLICY_LIMITS.minEveryMs) ctx.addIssue({ code: 'custom', message: 'must be at least 5m' });
        else if (ms > BACKUP_POLICY_LIMITS.maxEveryMs) ctx.addIssue({ code: 'custom', message: 'must be at most 366d' });
      }),
    ),
    /** Keep the N newest backups. @default 0 */
    keep_last: keepCountSchema.default(0),
    /** Keep the newest backup of each of the last N UTC days that have backups. @default 0 */
    keep_daily: keepCountSchema.default(0),
    /** Keep the newest backup of each of the last N ISO weeks that have backups. @default 0 */
    keep_weekly: keepCountSchema.default(0),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.keep_last + p.keep_daily + p.keep_weekly === 0)
      ctx.addIssue({ code: 'custom', message: 'needs one of keep_last, keep_daily, keep_weekly above 0, or every backup would be pruned' });
  });

export type BackupPolicy = z.output<typeof backupPolicySchema>;

const printable = (max: number) => z.string().max(max, `must be at most ${max} characters`).regex(NO_CONTROL, 'must not contain control characters');

const workloadSpecShape = z
  .object({
    name: z.string().regex(DNS_LABEL, 'must be a DNS label: 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit'),
    kind: z.enum(WORKLOAD_KINDS, { error: `must be one of ${WORKLOAD_KINDS.join(', ')}` }),
    image: z.string().default(''),
    vcpus: z
      .number({ error: 'must be a number' })
      .gt(0, 'must be greater than 0')
      .max(SPEC_LIMITS.maxVcpus, `must be at most ${SPEC_LIMITS.maxVcpus}`),
    memory_mib: z
      .number({ error: 'must be a number' })
      .int('must be a whole number of MiB')
      .min(SPEC_LIMITS.minMemoryMiB, `must be at least ${SPEC_LIMITS.minMemoryMiB}`)
      .max(SPEC_LIMITS.maxMemoryMiB, `must be at most ${SPEC_LIMITS.maxMemoryMiB}`),
    disk_gib: z
      .number({ error: 'must be a number' })
      .int('must be a whole number of GiB')
      .min(0, 'must not be negative')
      .max(SPEC_LIMITS.maxDiskGiB, `must be at most ${SPEC_LIMITS.maxDiskGiB}`)
      .default(0),
    command: z.array(z.string().max(SPEC_LIMITS.maxArgLength).refine((s) => !s.includes('\0'), 'must not contain NUL')).max(SPEC_LIMITS.maxCommandArgs).default([]),
    env: z
      .record(z.string().regex(ENV_NAME, 'environment names must match [A-Za-z_][A-Za-z0-9_]*'), z.string().max(SPEC_LIMITS.maxArgLength).refine((s) => !s.includes('\0'), 'must not contain NUL'))
      .default({})
      .refine((e) => Object.keys(e).length <= SPEC_LIMITS.maxEnv, `at most ${SPEC_LIMITS.maxEnv} variables`),
    labels: z
      .record(z.string().regex(LABEL_KEY, 'label keys must be 1-63 characters of letters, digits, "-", "_", "." or "/"'), printable(253))
      .default({})
      .refine((l) => Object.keys(l).length <= SPEC_LIMITS.maxLabels, `at most ${SPEC_LIMITS.maxLabels} labels`),
    priority: z.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be at least 0').max(100, 'must be at most 100').default(DEFAULT_PRIORITY),
    expected_runtime_seconds: z.number({ error: 'must be a number' }).min(0, 'must not be negative').max(10 * 365 * 86400, 'must be at most ten years').default(0),
    tenant: z.preprocess(unsetIfEmpty, z.string().regex(DNS_LABEL, 'must be a DNS label').default(DEFAULT_TENANT)),
    performance: z.preprocess(unsetIfEmpty, performanceSchema.default({ memory_headroom_mib: 0, latency_class: 'standard' })),
    security: z.preprocess(unsetIfEmpty, securitySchema.default({ isolation: 'shared', min_trust_level: 0, required_features: [] })),
    host_selector: z
      .record(z.string().regex(LABEL_KEY, 'label keys must be 1-63 characters of letters, digits, "-", "_", "." or "/"'), printable(253))
      .default({})
      .refine((l) => Object.keys(l).length <= SPEC_LIMITS.maxLabels, `at most ${SPEC_LIMITS.maxLabels} labels`),
    restart_policy: z.preprocess(unsetIfEmpty, z.enum(RESTART_POLICIES, { error: `must be one of ${RESTART_POLICIES.join(', ')}` }).default('always')),
    failover: z.preprocess(unsetIfEmpty, z.enum(FAILOVER_MODES, { error: `must be one of ${FAILOVER_MODES.join(', ')}` }).optional()),
    stopped_reservation: z.preprocess(unsetIfEmpty, z.enum(STOPPED_RESERVATIONS, { error: `must be one of ${STOPPED_RESERVATIONS.join(', ')}` }).optional()),
    disks: z.preprocess(unsetIfEmptyList, z.array(dataDiskSchema).max(SPEC_LIMITS.maxDataDisks, `at most ${SPEC_LIMITS.maxDataDisks} data disks`).optional()),
    boot: z.preprocess(unsetIfEmpty, kernelBootSchema.optional()),
    cloud_init: z.preprocess(unsetIfEmpty, cloudInitSchema.optional()),
    domain_type: z.preprocess(unsetIfEmpty, z.enum(DOMAIN_TYPES, { error: `must be one of ${DOMAIN_TYPES.join(', ')}` }).optional()),
    network: z.preprocess(unsetIfEmpty, z.string().regex(DNS_LABEL, 'must be "none" or the name of a host network (a DNS label)').optional()),
    ports: z.preprocess(unsetIfEmptyList, z.array(publishedPortSchema).max(SPEC_LIMITS.maxPorts, `at most ${SPEC_LIMITS.maxPorts} ports`).optional()),
    backup: z.preprocess(unsetIfEmpty, backupPolicySchema.optional()),
  })
  .strict();

export const workloadSpecSchema = workloadSpecShape.superRefine((spec, ctx) => {
  if (spec.kind === 'container') {
    if (spec.vcpus < SPEC_LIMITS.minContainerVcpus)
      ctx.addIssue({ code: 'custom', path: ['vcpus'], message: `must be at least ${SPEC_LIMITS.minContainerVcpus} for a container (the kernel's smallest CPU quota)` });
    if (!spec.image) ctx.addIssue({ code: 'custom', path: ['image'], message: 'is required for a container' });
    else if (!IMAGE_REFERENCE.test(spec.image) || spec.image.length > 255)
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'must be a Docker image reference such as busybox:latest' });
  } else {
    if (!Number.isInteger(spec.vcpus)) ctx.addIssue({ code: 'custom', path: ['vcpus'], message: 'must be a whole number for a vm' });
    if (spec.image.startsWith('/')) {
      if (!DISK_PATH.test(spec.image) || posix.normalize(spec.image) !== spec.image || spec.image.split('/').includes('..'))
        ctx.addIssue({ code: 'custom', path: ['image'], message: 'must be an absolute, normalised disk image path of letters, digits and ._+-/' });
    } else if (spec.image && !parseCatalogRef(spec.image)) {
      ctx.addIssue({ code: 'custom', path: ['image'], message: `${CATALOG_REF_RULE}, or an absolute path of a disk image on every host` });
    }
    if (spec.command.length > 0) ctx.addIssue({ code: 'custom', path: ['command'], message: 'applies to containers only' });
    if (Object.keys(spec.env).length > 0) ctx.addIssue({ code: 'custom', path: ['env'], message: 'applies to containers only' });
    const names = new Set<string>();
    (spec.disks ?? []).forEach((d, i) => {
      if (d.name === 'root' || names.has(d.name)) ctx.addIssue({ code: 'custom', path: ['disks', i, 'name'], message: d.name === 'root' ? '"root" is the image\'s disk' : 'must be unique' });
      names.add(d.name);
    });
  }
  const taken = new Set<string>();
  (spec.ports ?? []).forEach((p, i) => {
    if (taken.has(hostPortKey(p))) ctx.addIssue({ code: 'custom', path: ['ports', i, 'host_port'], message: `${p.protocol} port ${p.host_port} is published twice` });
    taken.add(hostPortKey(p));
  });
  if (spec.ports && spec.kind === 'vm' && spec.network === undefined) ctx.addIssue({ code: 'custom', path: ['ports'], message: "need the VM on a host network: set network (a VM without one has no NIC)" });
  if (spec.ports && spec.network === SPEC_NETWORK_NONE) ctx.addIssue({ code: 'custom', path: ['ports'], message: 'need a network; this spec has network none' });
  if (spec.kind === 'container') {
    for (const field of ['disks', 'boot', 'cloud_init', 'domain_type'] as const) {
      if (spec[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'applies to vms only' });
    }
  }
}).transform((spec) => ({ ...spec, failover: spec.failover ?? defaultFailoverMode(spec.kind) }));

export type WorkloadSpec = z.output<typeof workloadSpecSchema>;

/**
 * Validates a workload spec from any source (API, spec file, agent request).
 * @throws InvalidArgumentError naming the first bad field, e.g. `spec.memory_mib`.
 */
export function parseWorkloadSpec(input: unknown, fieldPrefix = 'spec'): WorkloadSpec {
  return parseOrThrow(workloadSpecSchema, withoutSyntheticOneofs(input), fieldPrefix);
}

export const WORKLOAD_STATES = ['pending', 'creating', 'running', 'paused', 'stopped', 'failed', 'deleting', 'deleted', 'unknown'] as const;
export type WorkloadState = (typeof WORKLOAD_STATES)[number];

/**
 * proto-loader marks each proto3 `optional` field that is set with a key
 * `_<field>: "<field>"`; those are wire artefacts, not spec fields.
 */
function withoutSyntheticOneofs(input: unknown, nested = ['performance', 'security']): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (key.startsWith('_') && value === key.slice(1)) continue;
    // Only message fields can hold optionals; maps such as labels are user data and pass untouched.
    out[key] = nested.includes(key) ? withoutSyntheticOneofs(value, []) : value;
  }
  return out;
}

/** The spec's failover mode; records stored before the field existed get their kind's default. */
export function failoverModeOf(spec: Pick<WorkloadSpec, 'kind'> & { failover?: FailoverMode }): FailoverMode {
  return spec.failover ?? defaultFailoverMode(spec.kind);
}

/** The spec's restart policy; `always` for records stored before the field existed. */
export function restartPolicyOf(spec: { restart_policy?: RestartPolicy }): RestartPolicy {
  return spec.restart_policy ?? 'always';
}

/** GiB of host disk the workload takes: its root disk and every data disk. */
export function diskDemandGiB(spec: Pick<WorkloadSpec, 'disk_gib'> & { disks?: readonly { size_gib: number }[] }): number {
  let total = spec.disk_gib;
  for (const d of spec.disks ?? []) total += d.size_gib;
  return total;
}

/**
 * The catalog images a spec refers to, by the field that names each: a VM's
 * root disk, kernel and initrd; a container's image when it has the form of
 * a catalog reference (the coordinator decides whether the catalog holds it).
 */
export function catalogRefsOf(spec: Pick<WorkloadSpec, 'kind' | 'image' | 'boot'>): { field: 'image' | 'boot.kernel' | 'boot.initrd'; ref: string }[] {
  const refs: { field: 'image' | 'boot.kernel' | 'boot.initrd'; ref: string }[] = [];
  if (spec.image && !spec.image.startsWith('/') && parseCatalogRef(spec.image)) refs.push({ field: 'image', ref: spec.image });
  if (spec.boot?.kernel) refs.push({ field: 'boot.kernel', ref: spec.boot.kernel });
  if (spec.boot?.initrd) refs.push({ field: 'boot.initrd', ref: spec.boot.initrd });
  return refs;
}

/** The run time SJF orders by. */
export function expectedRuntimeSeconds(spec: WorkloadSpec): number {
  return spec.expected_runtime_seconds > 0 ? spec.expected_runtime_seconds : DEFAULT_EXPECTED_RUNTIME_SECONDS;
}
