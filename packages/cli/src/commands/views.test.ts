import { describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { hostRows, workloadRows } from './views.js';

const host = (fields: Partial<pb.Host__Output> = {}): pb.Host__Output => ({
  id: 'h1',
  hostname: 'box-1',
  status: 'up',
  address: '10.0.0.1:7200',
  last_seen: new Date().toISOString(),
  capacity: { vcpus: 8, memory_mib: 16384, disk_gib: 100 },
  allocated: { vcpus: 3.619999999999966, memory_mib: 2048, disk_gib: 0 },
  allocatable: { vcpus: 8, memory_mib: 16384, disk_gib: 100 },
  usage: null,
  drivers: [],
  labels: { zone: 'a' },
  workload_count: 3,
  agent_version: '0.1.0',
  trust_level: 2,
  features: ['tpm'],
  cpu_utilisation_smoothed: 0.25,
  cordoned: false,
  held_by_stopped: { vcpus: 0.30000000000000004, memory_mib: 64, disk_gib: 0 },
  telemetry_published_at: '',
  telemetry_applied_at: '',
  ...fields,
});

const workload = (fields: Partial<pb.Workload__Output> = {}): pb.Workload__Output =>
  ({
    id: 'w-1',
    spec: { name: 'web', kind: 'container', vcpus: 0.333, memory_mib: 64, disk_gib: 1, tenant: 'acme', priority: 70, image: 'busybox', labels: {} },
    host_id: 'h1',
    desired_state: 'running',
    state: 'running',
    message: '',
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    driver_ref: '',
    addresses: ['10.0.0.9'],
    migration: null,
    ...fields,
  }) as unknown as pb.Workload__Output;

const header = (text: string) => text.split('\n')[0]!.split(/\s{2,}/);

describe('host ls', () => {
  it('rounds vCPU sums for people', () => {
    const out = hostRows([host()]);
    expect(out).toContain(' 3.62/8 ');
    expect(out).toContain('0.3 cpu, 64Mi');
    expect(out).not.toContain('3.6199');
  });

  it('adds columns with -o wide', () => {
    const narrow = header(hostRows([host()]));
    const wide = header(hostRows([host()], true));
    expect(wide.slice(0, narrow.length)).toEqual(narrow);
    expect(wide.slice(narrow.length)).toEqual(['HOSTNAME', 'AGENT', 'CAPACITY', 'LABELS', 'FEATURES', 'TELEMETRY']);
    expect(hostRows([host()], true)).toMatch(/box-1\s+0\.1\.0\s+8 cpu, 16\.0Gi, 100Gi\s+zone=a\s+tpm\s+-$/m);
  });
});

describe('workload ls', () => {
  it('rounds the CPU column and adds columns with -o wide', () => {
    expect(workloadRows([workload()])).toMatch(/running\s+0\.33\s+64Mi/);
    expect(header(workloadRows([workload()], true))).toEqual(['ID', 'NAME', 'KIND', 'HOST', 'STATE', 'DESIRED', 'CPU', 'MEMORY', 'AGE', 'TENANT', 'PRIORITY', 'IMAGE', 'DISK', 'ADDRESSES', 'UPDATED', 'MESSAGE']);
    expect(workloadRows([workload()], true)).toMatch(/acme\s+70\s+busybox\s+1Gi\s+10\.0\.0\.9/);
  });
});
