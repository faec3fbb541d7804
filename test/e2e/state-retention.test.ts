import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { waitUntil } from '../support/wait.js';

const COUNT = 10_000;
const CLIENTS = 16;
const PAGE_SIZE = 5000;
const STATE_STREAM = 'KV_virtfleet_state';

/** Runs `op` for 0..count-1, `clients` at a time. */
async function inParallel(count: number, clients: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) await op(next++);
    }),
  );
}

/** Every workload the API lists with `filter`, page by page, checking each page's bound. */
async function listAll(cluster: TestCluster, filter: pb.ListWorkloadsRequest = {}): Promise<{ workloads: pb.Workload__Output[]; pages: number }> {
  const workloads: pb.Workload__Output[] = [];
  let pages = 0;
  let page_token = '';
  do {
    const page = await cluster.api.list({ ...filter, page_size: PAGE_SIZE, page_token });
    expect(page.workloads.length).toBeLessThanOrEqual(PAGE_SIZE);
    workloads.push(...page.workloads);
    page_token = page.next_page_token;
    pages++;
  } while (page_token !== '');
  return { workloads, pages };
}

describe(`${COUNT.toLocaleString('en-US')} submissions, then ${COUNT.toLocaleString('en-US')} deletes, on a fake-driver host with short retention`, () => {
  let cluster: TestCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    cluster = await startCluster({
      agents: [{ drivers: { fake: { enabled: true, vcpus: 1_000_000, memoryMiB: 1_000_000_000, concurrency: 256 } }, telemetryIntervalMs: 1000 }],
      // One second of retention for deleted workloads, request ids and removed keys' markers.
      coordinatorExtra: { retention: { deletedWorkloadsHours: 1 / 3600, requestHours: 1 / 3600, removedKeyMarkerSeconds: 1 } },
      coordinatorLogLevel: 'info',
    });
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
    jsm = await jetstreamManager(nc);
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  }, 60_000);

  it('lists them in bounded pages, and leaves the state bucket as small as before once their retention has passed', async () => {
    const stateSize = async () => {
      const { state } = await jsm.streams.info(STATE_STREAM, { subjects_filter: '>' });
      return { messages: state.messages, bytes: state.bytes, keys: Object.keys(state.subjects ?? {}).sort() };
    };
    // Host leases and the leader lease are rewritten all the time; let their keys settle first.
    await new Promise((r) => setTimeout(r, 1500));
    const before = await stateSize();

    const ids: string[] = [];
    await inParallel(COUNT, CLIENTS, async (i) => {
      const w = await cluster.api.submit({ request_id: `ret-${i}`, spec: { name: `ret-${i}`, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.01, memory_mib: 8, failover: 'reschedule' } });
      ids.push(w.id);
    });
    expect(new Set(ids).size).toBe(COUNT);
    await waitUntil(`all ${COUNT} running`, async () => (await listAll(cluster, { state: 'running' })).workloads.length === COUNT, { timeoutMs: 300_000, intervalMs: 2000 });

    // Paged: each workload exactly once, in pages no larger than asked for.
    const listed = await listAll(cluster);
    expect(listed.pages).toBe(Math.ceil(COUNT / PAGE_SIZE));
    expect(listed.workloads.map((w) => w.id).sort()).toEqual([...ids].sort());
    const during = await stateSize();
    expect(during.messages, 'the bucket holds the workloads while they live').toBeGreaterThan(before.messages + COUNT);

    await inParallel(COUNT, CLIENTS, (i) => cluster.api.act('DeleteWorkload', { id: ids[i]!, request_id: `ret-del-${i}` }));
    await waitUntil('every workload deleted', async () => (await listAll(cluster)).workloads.length === 0, { timeoutMs: 300_000, intervalMs: 2000 });

    // Past retention: the deleted workloads, their decisions, the delete requests' ids and their markers are gone.
    await waitUntil(
      'the state bucket to shrink back to its size before',
      async () => {
        const now = await stateSize();
        return now.messages <= before.messages;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    const after = await stateSize();
    expect(after.keys, 'the same keys as before: nothing of the 10,000 left').toEqual(before.keys);
    expect(after.bytes).toBeLessThanOrEqual(before.bytes + 1024);
    expect((await listAll(cluster, { state: 'deleted' })).workloads, 'the deleted ones are forgotten too').toEqual([]);
    // A forgotten request id is free again: the same id now submits anew.
    const again = await cluster.api.submit({ request_id: 'ret-0', spec: { name: 'ret-0', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.01, memory_mib: 8 } });
    expect(ids).not.toContain(again.id);
  }, 900_000);
});
