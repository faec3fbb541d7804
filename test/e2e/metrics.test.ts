import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MutualTlsFiles } from '@virtfleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeContainersOf } from '../support/cleanup.js';
import { httpsRequest } from '../support/https.js';
import { startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { createTestPki } from '../support/pki.js';
import { freePort, spawnProcess, type ManagedProcess } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { sleeperContainer } from '../support/workloads.js';

/** Debian's prometheus package (scripts/lib.sh installs it). */
const PROMETHEUS = '/usr/bin/prometheus';

const simulated = (name: string) => ({ name, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 16, host_selector: { engine: 'fake' } });

/** GET over HTTPS, trusting `ca`, presenting a client certificate when given, with headers. */
const httpsGet = (port: number, path: string, options: { ca: string; client?: MutualTlsFiles; headers?: Record<string, string> }) =>
  httpsRequest(port, path, options).then(({ status, body }) => ({ status, body }));

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('Prometheus (Debian’s, real) scrapes the coordinator and the agents over HTTPS; PromQL sees the cluster', () => {
  let cluster: TestCluster;
  let simulatedAgent: TestAgent;
  let dockerAgent: TestAgent;
  let prometheus: ManagedProcess;
  let prometheusPort: number;
  let dir: string;
  let scraper: MutualTlsFiles;
  let viewerToken: string;
  const submitted: string[] = [];
  let realContainer = '';

  /** An instant PromQL query through Prometheus's HTTP API. */
  const query = async (promql: string): Promise<Sample[]> => {
    const res = await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`${promql}: ${body.error ?? res.status}`);
    return body.data?.result ?? [];
  };
  /** Waits until `promql` gives one sample whose value passes `ok`, and returns the value. */
  const scalar = (promql: string, ok: (v: number) => boolean, timeoutMs = 20_000) =>
    waitFor(
      `${promql} to be as expected`,
      async () => {
        const result = await query(promql);
        const v = result.length === 1 ? Number(result[0]!.value[1]) : undefined;
        return v !== undefined && ok(v) ? { v } : undefined;
      },
      { timeoutMs },
    ).then((r) => r.v);

  beforeAll(async () => {
    cluster = await startCluster({
      agents: [
        { drivers: { fake: { enabled: true } }, labels: { engine: 'fake' } },
        { drivers: { docker: { enabled: true } }, labels: { engine: 'docker' } },
      ],
    });
    [simulatedAgent, dockerAgent] = cluster.agents as [TestAgent, TestAgent];
    await waitForHostsUp(cluster, 30_000);
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-prometheus-'));
    scraper = await cluster.pki.issue('operator', 'prometheus');
    viewerToken = (await cluster.api.createToken({ role: 'viewer', tenant: '', ttl_seconds: '0', description: 'prometheus', request_id: '' })).bearer;

    for (const name of ['metrics-a', 'metrics-b', 'metrics-c']) submitted.push((await cluster.api.submit({ request_id: name, spec: simulated(name) })).id);
    realContainer = (await cluster.api.submit({ request_id: 'metrics-real', spec: sleeperContainer('metrics-real', { host_selector: { engine: 'docker' } }) })).id;
    submitted.push(realContainer);
    for (const id of submitted) await waitForState(cluster, id, 'running');
    // One stopped, so the running count is not simply every workload.
    await cluster.api.act('StopWorkload', { id: submitted[0]!, request_id: 'metrics-stop' });

    prometheusPort = await freePort();
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        scrape_configs: [
          {
            job_name: 'coordinator',
            scheme: 'https',
            tls_config: { ca_file: cluster.pki.ca },
            authorization: { type: 'Bearer', credentials: viewerToken },
            static_configs: [{ targets: [`127.0.0.1:${cluster.coordinatorHttpPort}`] }],
          },
          {
            job_name: 'agent',
            scheme: 'https',
            tls_config: { ca_file: cluster.pki.ca, cert_file: scraper.cert, key_file: scraper.key },
            static_configs: [{ targets: [simulatedAgent, dockerAgent].map((a) => `127.0.0.1:${a.httpPort}`) }],
          },
        ],
      }),
    );
    prometheus = spawnProcess('prometheus', PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${prometheusPort}`]);
    await waitUntil('Prometheus to answer queries', () => query('up').then(() => true, () => false), { timeoutMs: 30_000 });
  });

  afterAll(async () => {
    await prometheus?.stop();
    const hostId = dockerAgent?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes every target: up is 1 for the coordinator and both agents', async () => {
    await waitUntil(
      'three targets up',
      async () => {
        const up = await query('up');
        return up.length === 3 && up.every((s) => s.value[1] === '1');
      },
      { timeoutMs: 20_000 },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await query('up'))}\n${prometheus.tail()}\n${cluster.logs()}`);
    });
    const jobs = (await query('up')).map((s) => s.metric.job).sort();
    expect(jobs).toEqual(['agent', 'agent', 'coordinator']);
  });

  it('counts the running workloads as `workload ls` shows them', async () => {
    const running = (await cluster.api.list({})).workloads.filter((w) => w.state === 'running').length;
    expect(running).toBe(3);
    expect(await scalar('sum(virtfleet_workloads{state="running"})', (v) => v === running)).toBe(running);
    expect(await scalar('sum(virtfleet_workloads{state="stopped"})', (v) => v === 1)).toBe(1);
    // Each agent counts its own; together they see the same.
    expect(await scalar('sum(virtfleet_agent_workloads{state="running"})', (v) => v === running)).toBe(running);
  });

  it('has a per-workload CPU and memory series on the agent that runs it, the real container included', async () => {
    for (const id of [realContainer, submitted[1]!]) {
      const samples = await waitFor(`a memory series of ${id}`, async () => {
        const r = await query(`virtfleet_agent_workload_memory_bytes{workload_id="${id}"}`);
        return r.length === 1 ? r : undefined;
      });
      const expectedHost = id === realContainer ? dockerAgent : simulatedAgent;
      expect(samples[0]!.metric).toMatchObject({ job: 'agent', instance: `127.0.0.1:${expectedHost.httpPort}`, kind: 'container' });
      expect((await query(`virtfleet_agent_workload_cpu_cores{workload_id="${id}"}`)).length).toBe(1);
    }
    // The real container's memory is what Docker measures: a sleeping busybox uses some, not none.
    expect(await scalar(`virtfleet_agent_workload_memory_bytes{workload_id="${realContainer}"}`, (v) => v > 0)).toBeGreaterThan(0);
  });

  it('times placements and queue waits, counts decisions, gRPC calls by method and the leader', async () => {
    expect(await scalar('virtfleet_placement_duration_seconds_count', (v) => v >= submitted.length)).toBeGreaterThanOrEqual(submitted.length);
    expect(await scalar('virtfleet_queue_wait_seconds_count', (v) => v === submitted.length)).toBe(submitted.length);
    expect(await scalar('virtfleet_placement_decisions_total{outcome="placed"}', (v) => v === submitted.length)).toBe(submitted.length);
    expect(await scalar('virtfleet_grpc_server_handled_total{job="coordinator",method="SubmitWorkload",code="OK"}', (v) => v === submitted.length)).toBe(submitted.length);
    expect(await scalar('virtfleet_grpc_server_handled_total{job="coordinator",method="StopWorkload",code="OK"}', (v) => v === 1)).toBe(1);
    // The coordinator's calls to the agents, seen from both ends.
    expect(await scalar('sum(virtfleet_grpc_client_handled_total{job="coordinator",service="virtfleet.v1.Agent"})', (v) => v > 0)).toBeGreaterThan(0);
    expect(await scalar('sum(virtfleet_grpc_server_handled_total{job="agent",service="virtfleet.v1.Agent"})', (v) => v > 0)).toBeGreaterThan(0);
    expect(await scalar('virtfleet_leader', (v) => v === 1)).toBe(1);
    expect(await scalar('virtfleet_hosts{status="up"}', (v) => v === 2)).toBe(2);
    expect(await scalar('sum(virtfleet_agent_telemetry_messages_total)', (v) => v > 0)).toBeGreaterThan(0);
    expect(await scalar('virtfleet_telemetry_lag_seconds_count', (v) => v > 0)).toBeGreaterThan(0);
  });

  it('authorizes /metrics as the API does: the coordinator wants a viewer, an agent a certificate from the cluster CA', async () => {
    const coordinator = (headers?: Record<string, string>, client?: MutualTlsFiles) => httpsGet(cluster.coordinatorHttpPort, '/metrics', { ca: cluster.pki.ca, ...(client ? { client } : {}), ...(headers ? { headers } : {}) });
    const agent = (client?: MutualTlsFiles) => httpsGet(dockerAgent.httpPort, '/metrics', { ca: cluster.pki.ca, ...(client ? { client } : {}) });
    const tenantToken = (await cluster.api.createToken({ role: 'admin', tenant: 'blue', ttl_seconds: '0', description: '', request_id: '' })).bearer;
    const otherCa = await createTestPki(join(dir, 'other-pki'));
    const stranger = await otherCa.issue('operator', 'prometheus');

    const anonymous = await coordinator();
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.body)).toMatchObject({ error: { code: 'UNAUTHENTICATED', message: expect.stringMatching(/a bearer token is required/) } });
    expect((await coordinator({ authorization: 'Bearer vft_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(401);
    const tenant = await coordinator({ authorization: `Bearer ${tenantToken}` });
    expect(tenant.status).toBe(403);
    expect(JSON.parse(tenant.body)).toMatchObject({ error: { code: 'PERMISSION_DENIED', message: expect.stringMatching(/acts across tenants/) } });
    const viewer = await coordinator({ authorization: `Bearer ${viewerToken}` });
    expect(viewer.status).toBe(200);
    expect(viewer.body).toMatch(/^virtfleet_workloads\{state="running",kind="container"\} 3$/m);
    // The harness lets its operator certificate act as admin without a token (auth.certificateRoles); an unlisted one is nobody.
    expect((await coordinator(undefined, cluster.operatorTls)).status).toBe(200);
    expect((await coordinator(undefined, scraper)).status).toBe(401);

    expect((await agent()).status).toBe(401);
    expect((await agent(stranger)).status, 'a certificate of another CA').toBe(401);
    const scraped = await agent(scraper);
    expect(scraped.status).toBe(200);
    expect(scraped.body).toContain(`virtfleet_agent_workload_memory_bytes{workload_id="${realContainer}",name="metrics-real",kind="container"}`);

    for (const port of [cluster.coordinatorHttpPort, dockerAgent.httpPort]) expect(await httpsGet(port, '/healthz', { ca: cluster.pki.ca })).toEqual({ status: 200, body: 'ok\n' });
  });
});
