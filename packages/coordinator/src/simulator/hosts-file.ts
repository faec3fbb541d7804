import { z } from 'zod';
import { HOST_ID, InvalidArgumentError, MAX_HOST_WORKLOADS, MAX_TRUST_LEVEL, WORKLOAD_KINDS, readDocument, type DriverInfo, type WorkloadKind } from '@virtfleet/shared';
import { milliExact } from '../scheduler/milli-cpus.js';
import type { HostSnapshot, ResourceVector } from '../scheduler/scheduler.js';

/** A simulated host: static capacity and attributes, with nothing running. */
export interface SimHost {
  id: string;
  capacity: ResourceVector;
  /** Held back for the host itself. */
  reserved: ResourceVector;
  overcommit: { cpu: number; memory: number };
  labels: Record<string, string>;
  trustLevel: number;
  features: string[];
  /** Kinds the host has a (healthy) driver for. */
  kinds: WorkloadKind[];
}

/** Disk when a host gives none: large enough that disk never decides a placement. */
export const DEFAULT_SIM_DISK_GIB = 1000;
const MAX_COUNT = 10_000;

/** zod's message for a wrong type, telling an absent field from a mistyped one. */
const required = (expected: string) => ({ error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${expected}`) });
const nonNegative = (what: string) => z.number({ error: `must be a number of ${what}` }).min(0, 'must not be negative');

const hostEntrySchema = z
  .object({
    id: z.string(required('a string')).regex(HOST_ID, 'must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric'),
    vcpus: z.number(required('a number')).gt(0, 'must be greater than 0').max(4096, 'must be at most 4096'),
    memory_mib: z.number(required('a number of MiB')).int('must be a whole number of MiB').gt(0, 'must be greater than 0'),
    disk_gib: nonNegative('GiB').default(DEFAULT_SIM_DISK_GIB),
    labels: z.record(z.string().max(63), z.string({ error: 'label values must be strings (quote numbers in YAML)' }).max(253)).default({}),
    trust_level: z.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must not be negative').max(MAX_TRUST_LEVEL, `must be at most ${MAX_TRUST_LEVEL}`).default(0),
    features: z.array(z.string().min(1).max(63)).max(64).default([]),
    overcommit: z
      .object({
        cpu: z.number({ error: 'must be a number' }).min(0.1, 'must be at least 0.1').max(64, 'must be at most 64').default(1),
        memory: z.number({ error: 'must be a number' }).min(0.1, 'must be at least 0.1').max(8, 'must be at most 8').default(1),
      })
      .strict()
      .default({ cpu: 1, memory: 1 }),
    reserved: z
      .object({ vcpus: nonNegative('vcpus').default(0), memory_mib: nonNegative('MiB').default(0), disk_gib: nonNegative('GiB').default(0) })
      .strict()
      .default({ vcpus: 0, memory_mib: 0, disk_gib: 0 }),
    kinds: z
      .array(z.enum(WORKLOAD_KINDS, { error: `must be one of ${WORKLOAD_KINDS.join(', ')}` }))
      .min(1, 'must name at least one kind')
      .default([...WORKLOAD_KINDS]),
    count: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(MAX_COUNT, `must be at most ${MAX_COUNT}`).optional(),
  })
  .strict();

const hostsFileSchema = z.array(hostEntrySchema, { error: 'must be a list of hosts' }).min(1, 'must list at least one host');

/** `[2].overcommit.cpu` */
function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/**
 * Validates a hosts document (YAML or JSON): a list of hosts. `count: N`
 * expands one entry to hosts `<id>-1` .. `<id>-N`. Defaults: disk_gib 1000,
 * overcommit 1/1 (none, unlike a real agent's configuration), nothing
 * reserved, both kinds.
 * @throws InvalidArgumentError with field `<source>` and a reason such as `[2].vcpus: must be greater than 0`.
 */
export function parseHosts(doc: unknown, source: string): SimHost[] {
  const result = hostsFileSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue ? pathOf(issue.path) : '';
    const message = issue?.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : (issue?.message ?? 'invalid');
    throw new InvalidArgumentError(source, path ? `${path}: ${message}` : message, { cause: result.error });
  }
  const hosts: SimHost[] = [];
  const seen = new Set<string>();
  result.data.forEach((entry, index) => {
    const ids = entry.count === undefined ? [entry.id] : Array.from({ length: entry.count }, (_, i) => `${entry.id}-${i + 1}`);
    for (const id of ids) {
      if (!HOST_ID.test(id)) throw new InvalidArgumentError(source, `[${index}].id: ${id} is not a valid host id (at most 63 characters with the count suffix)`);
      if (seen.has(id)) throw new InvalidArgumentError(source, `[${index}].id: duplicate host id ${id}`);
      seen.add(id);
      hosts.push({
        id,
        capacity: { vcpus: entry.vcpus, memoryMiB: entry.memory_mib, diskGiB: entry.disk_gib },
        reserved: { vcpus: entry.reserved.vcpus, memoryMiB: entry.reserved.memory_mib, diskGiB: entry.reserved.disk_gib },
        overcommit: { ...entry.overcommit },
        labels: { ...entry.labels },
        trustLevel: entry.trust_level,
        features: [...entry.features],
        kinds: [...new Set(entry.kinds)],
      });
    }
  });
  return hosts;
}

/** Reads and validates a hosts file; see `parseHosts`. */
export function readHosts(path: string): SimHost[] {
  return parseHosts(readDocument(path), path);
}

const SIM_DRIVERS: Record<WorkloadKind, string> = { vm: 'libvirt', container: 'docker' };

/**
 * A fresh scheduler view of an empty simulated host. Fresh each run, since
 * placements book capacity on it. There is no measured load: CPU utilisation
 * is 0 and available memory is the whole capacity, less bookings.
 */
export function simSnapshot(host: SimHost): HostSnapshot {
  const drivers: DriverInfo[] = host.kinds.map((kind) => ({ name: SIM_DRIVERS[kind], version: 'simulated', kinds: [kind], domain_types: [], healthy: true, detail: 'simulated' }));
  return {
    id: host.id,
    schedulable: true,
    capacity: { ...host.capacity },
    allocatable: {
      vcpus: milliExact(Math.max(0, host.capacity.vcpus - host.reserved.vcpus) * host.overcommit.cpu),
      memoryMiB: Math.max(0, host.capacity.memoryMiB - host.reserved.memoryMiB) * host.overcommit.memory,
      diskGiB: Math.max(0, host.capacity.diskGiB - host.reserved.diskGiB),
    },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    overcommit: { ...host.overcommit },
    drivers,
    kinds: new Set(host.kinds),
    labels: { ...host.labels },
    trustLevel: host.trustLevel,
    features: new Set(host.features),
    cpuUtilisation: 0,
    memoryAvailableMiB: host.capacity.memoryMiB,
    workloadCount: 0,
    maxWorkloads: MAX_HOST_WORKLOADS,
    tenants: new Map(),
    images: new Set(),
    networks: new Set(),
    antiAffinityGroups: new Set(),
    ports: new Set(),
    isolation: undefined,
  };
}
