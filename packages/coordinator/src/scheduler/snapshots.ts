import { MAX_HOST_WORKLOADS, type WorkloadKind } from '@virtfleet/shared';
import type { Host } from '../hosts/host.js';
import type { HostBookings } from './host-bookings.js';
import type { HostSnapshot } from './scheduler.js';
import { milliExact } from './milli-cpus.js';

/**
 * Builds the scheduler's view of every host: capacity and measured load from
 * telemetry, and bookings from the workloads the store places on it (a
 * stopped workload's only as `stoppedReservation` and its spec say).
 */
export function buildSnapshots(hosts: readonly Host[], bookings: HostBookings): HostSnapshot[] {
  return hosts.map((host) => {
    const s = snapshotOf(host);
    // Measured availability already includes running workloads: bookings leave it as measured.
    bookings.applyTo(s);
    return s;
  });
}

const NO_IMAGES: ReadonlySet<string> = new Set();
// Telemetry arrives every second with the same list: reuse the set while the list is the same object.
const digestSets = new WeakMap<object, ReadonlySet<string>>();
function imageDigests(images: readonly { digest: string }[] | undefined): ReadonlySet<string> {
  if (!images || images.length === 0) return NO_IMAGES;
  let set = digestSets.get(images);
  if (!set) digestSets.set(images, (set = new Set(images.map((i) => i.digest))));
  return set;
}

export function snapshotOf(host: Host): HostSnapshot {
  const t = host.telemetry;
  const ratio = t.overcommit;
  const kinds = new Set<WorkloadKind>();
  for (const d of t.drivers) if (d.healthy) for (const k of d.kinds) kinds.add(k);
  return {
    id: host.id,
    schedulable: host.status === 'up' && !host.cordoned,
    ...(host.status !== 'up' ? { unschedulableReason: host.status } : host.cordoned ? { unschedulableReason: 'cordoned' } : {}),
    capacity: { vcpus: t.capacity.vcpus, memoryMiB: t.capacity.memory_mib, diskGiB: t.capacity.disk_gib },
    allocatable: {
      vcpus: milliExact(Math.max(0, t.capacity.vcpus - t.reserved.vcpus) * ratio.cpu),
      memoryMiB: Math.max(0, t.capacity.memory_mib - t.reserved.memory_mib) * ratio.memory,
      diskGiB: Math.max(0, t.capacity.disk_gib - t.reserved.disk_gib),
    },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    overcommit: { cpu: ratio.cpu, memory: ratio.memory },
    drivers: t.drivers,
    kinds,
    labels: t.labels,
    trustLevel: t.trust_level,
    features: new Set(t.features),
    cpuUtilisation: host.cpuUtilisationSmoothed,
    memoryAvailableMiB: t.host.memory_available_mib,
    workloadCount: 0,
    maxWorkloads: t.capacity.workloads ?? MAX_HOST_WORKLOADS,
    tenants: new Map(),
    images: imageDigests(t.images),
    networks: new Set(t.networks ?? []),
    antiAffinityGroups: new Set(),
    ports: new Set(),
    isolation: undefined,
  };
}
