import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { httpsRequest } from '../support/https.js';
import { waitUntil } from '../support/wait.js';

describe('a burst through the REST gateway while /metrics is scraped and the agent is SIGKILLed', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true, vcpus: 64, memoryMiB: 65536 } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => cluster?.stop());
  it('accepts all 300 submits, runs every one, and the metrics agree', async () => {
    const token = (await cluster.api.createToken({ role: 'admin', tenant: '', ttl_seconds: '0', description: '', request_id: '' })).bearer;
    const post = (m: string, b: unknown) => httpsRequest(cluster.coordinatorHttpPort, `/v1/${m}`, { ca: cluster.pki.ca, method: 'POST', body: JSON.stringify(b), headers: { authorization: `Bearer ${token}` } });
    let scrapes = 0; let stop = false;
    const scraper = (async () => { while (!stop) { const r = await httpsRequest(cluster.coordinatorHttpPort, '/metrics', { ca: cluster.pki.ca, headers: { authorization: `Bearer ${token}` } }); expect(r.status).toBe(200); scrapes++; } })();
    const started = Date.now();
    const statuses: number[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => { while (next < 300) { const i = next++; if (i === 150) void cluster.agents[0]!.restart('SIGKILL'); statuses.push((await post('SubmitWorkload', { request_id: `b${i}`, spec: { name: `b${i}`, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 16 } })).status); } }));
    const accepted = Date.now() - started;
    await waitUntil('all running', async () => (await cluster.api.list({})).workloads.filter((w) => w.state === 'running').length === 300, { timeoutMs: 120_000, intervalMs: 500 });
    stop = true; await scraper;
    const m = await httpsRequest(cluster.coordinatorHttpPort, '/metrics', { ca: cluster.pki.ca, headers: { authorization: `Bearer ${token}` } });
    const running = m.body.split('\n').filter((l) => l.startsWith('virtfleet_workloads{state="running"')).map((l) => Number(l.split(' ').at(-1))).reduce((a, b) => a + b, 0);
    console.log(`300 REST submits accepted in ${accepted} ms (${Math.round(300000 / accepted)}/s), statuses ${[...new Set(statuses)].join(',')}, ${scrapes} scrapes meanwhile, metrics running=${running}, coordinator alive ${cluster.coordinator.running}`);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(running).toBe(300);
  });
});
