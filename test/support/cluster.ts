import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorApi } from '@virtfleet/cli';
import { AgentClient } from '@virtfleet/coordinator';
import { CertificateFiles, type MutualTlsFiles } from '@virtfleet/shared';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { createTestPki, NO_CLI_CONFIG, type TestPki } from './pki.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { CLI_ENTRY, freePort, runCli, spawnProcess, waitForPort, type ManagedProcess } from './processes.js';
import { GiveUp, waitFor, waitUntil } from './wait.js';

export interface AgentOptions {
  hostId?: string;
  /** Driver sections of the agent config. @default docker + libvirt on qemu:///system */
  drivers?: Record<string, unknown>;
  labels?: Record<string, string>;
  telemetryIntervalMs?: number;
  /** More agent config keys, e.g. trustLevel, features, overcommit. */
  extra?: Record<string, unknown>;
  /**
   * Route the agent's NATS connection and the coordinator's gRPC calls to it
   * through TCP proxies the test controls, to cut the host off while it runs.
   */
  proxied?: boolean;
  /** @default 'debug' */
  logLevel?: string;
  /** Node options before the entry point, e.g. --cpu-prof. */
  nodeArgs?: string[];
}

/** The operator certificate tests call with; the harness's coordinators let it act as admin (auth.certificateRoles). */
export const TEST_OPERATOR = 'e2e';

/** The agents' self-fencing timeout in tests: below the cluster's host TTL, as in production. */
export const TEST_FENCE_TIMEOUT_MS = 2000;

export interface TestAgent {
  hostId: string;
  port: number;
  /** Its HTTPS server (metrics) on 127.0.0.1. */
  httpPort: number;
  stateDir: string;
  configFile: string;
  process: ManagedProcess;
  /** Starts the agent again with the same config and state directory. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** With `proxied`: cut() both to partition the host, restore() both to heal it. */
  proxies?: { nats: TcpProxy; grpc: TcpProxy };
}

export interface TestCluster {
  nats: NatsServer;
  /** The cluster CA; every process has a certificate from it (mutual TLS on every gRPC link, as in production). */
  pki: TestPki;
  /** The operator certificate `api` calls with. */
  operatorTls: MutualTlsFiles;
  /** VIRTFLEET_CA/_CERT/_KEY for `runCli`: the CLI calls as the same operator. */
  cliEnv: Record<string, string>;
  /** `virtfleet --coordinator <this cluster's> ARGS...` as the test's operator. */
  cli(...args: string[]): ReturnType<typeof runCli>;
  /** A client of an agent's gRPC API as the cluster's coordinator calls it (with its certificate, expecting the agent's). */
  agentClient(agent: { hostId: string; port: number }, options?: { deadlineMs?: number; maxAttempts?: number }): Promise<AgentClient>;
  /** A client of the API as the test's operator, e.g. of several coordinators (`a,b`). */
  client(address: string, timeoutMs: number): CoordinatorApi;
  coordinator: ManagedProcess;
  coordinatorAddress: string;
  /** The first coordinator's HTTPS server (metrics) on 127.0.0.1. */
  coordinatorHttpPort: number;
  api: CoordinatorApi;
  agents: TestAgent[];
  addAgent(options?: AgentOptions): Promise<TestAgent>;
  /** Stops the coordinator with `signal` and starts it again with the same config. */
  restartCoordinator(signal?: NodeJS.Signals): Promise<void>;
  /** Starts another coordinator on the same NATS, for high availability. */
  addCoordinator(id: string): Promise<{ process: ManagedProcess; address: string }>;
  /** Output of every process, for assertion messages. */
  logs(): string;
  stop(): Promise<void>;
}

export const REAL_DRIVERS = {
  docker: { enabled: true },
  libvirt: { enabled: true, uri: 'qemu:///system' },
};

/** A host id no other test run uses, so agents sharing Docker and libvirtd never see each other's workloads. */
export function uniqueHostId(prefix = 'e2e'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * Starts nats-server, a coordinator and the given agents as separate
 * processes on free loopback ports, each with its own config file.
 */
export async function startCluster(
  options: {
    hostTtlMs?: number;
    agents?: AgentOptions[];
    /**
     * Plaintext gRPC everywhere (grpc.insecure), for fleets too large to
     * issue a certificate per host (bench/fleet.bench.ts). Everything else
     * runs with mutual TLS, as production does by default.
     */
    insecure?: boolean;
    /** More coordinator config sections, e.g. failover, reconcile. */
    coordinatorExtra?: Record<string, unknown>;
    /** Node options for the coordinators, e.g. `--cpu-prof` (which NODE_OPTIONS does not allow). */
    coordinatorNodeArgs?: string[];
    /** @default 'debug' */
    coordinatorLogLevel?: string;
  } = {},
): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-e2e-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const operatorTls = await pki.issue('operator', TEST_OPERATOR);
  const security = async (role: 'coordinator' | 'agent', name: string) => (options.insecure ? { insecure: true } : { tls: await pki.issue(role, name) });
  const nats = await startNatsServer();
  const coordinatorPort = await freePort();
  // Each coordinator keeps its HTTP port across restarts.
  const httpPorts = new Map<string, number>();
  const httpPortOf = async (id: string) => httpPorts.get(id) ?? httpPorts.set(id, await freePort()).get(id)!;
  const coordinatorConfigFor = async (id: string, port: number) => {
    const file = join(dir, `coordinator-${id}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        id,
        grpc: { listen: `127.0.0.1:${port}`, ...(await security('coordinator', id)) },
        http: { listen: `127.0.0.1:${await httpPortOf(id)}` },
        nats: await nats.daemonConfig('coordinator', id),
        hosts: { ttlMs: options.hostTtlMs ?? 3000 },
        dispatch: { deadlineMs: 30_000, maxAttempts: 3 },
        // The test's operator certificate acts as admin without a token; tests of tokens make their own.
        auth: options.insecure ? { anonymousRole: 'admin' } : { certificateRoles: { [TEST_OPERATOR]: { role: 'admin' } } },
        scheduler: { retryIntervalMs: 250 },
        ha: { leaseTtlMs: 3000 },
        backups: { dir: join(dir, 'backups') },
        ...options.coordinatorExtra,
      }),
    );
    return file;
  };
  const launchCoordinatorOn = async (id: string, port: number) => {
    const p = spawnProcess(`coordinator ${id}`, process.execPath, [...(options.coordinatorNodeArgs ?? []), CLI_ENTRY, 'coordinator', '--config', await coordinatorConfigFor(id, port)], {
      VIRTFLEET_LOG_LEVEL: options.coordinatorLogLevel ?? 'debug',
    });
    await waitForPort(port).catch((err: Error) => {
      throw new Error(`${err.message}\n${p.tail()}`);
    });
    return p;
  };
  const launchCoordinator = () => launchCoordinatorOn('e2e', coordinatorPort);
  const extraCoordinators: ManagedProcess[] = [];
  const coordinator = await launchCoordinator();
  const coordinatorAddress = `127.0.0.1:${coordinatorPort}`;
  const client = (address: string, timeoutMs: number) => new CoordinatorApi({ address, timeoutMs, ...(options.insecure ? {} : { tls: operatorTls }) });
  const api = client(coordinatorAddress, 60_000);
  const cliEnv = options.insecure ? { ...NO_CLI_CONFIG, VIRTFLEET_INSECURE: '1' } : await pki.cliEnv(TEST_OPERATOR);
  const agents: TestAgent[] = [];
  const proxyList: TcpProxy[] = [];

  const addAgent = async (agentOptions: AgentOptions = {}): Promise<TestAgent> => {
    const hostId = agentOptions.hostId ?? uniqueHostId();
    const port = await freePort();
    const httpPort = await freePort();
    const stateDir = join(dir, `agent-${hostId}`);
    const configFile = join(dir, `agent-${hostId}.json`);
    const proxies = agentOptions.proxied
      ? { nats: await startTcpProxy({ host: '127.0.0.1', port: nats.port }), grpc: await startTcpProxy({ host: '127.0.0.1', port }) }
      : undefined;
    if (proxies) proxyList.push(proxies.nats, proxies.grpc);
    writeFileSync(
      configFile,
      JSON.stringify({
        hostId,
        stateDir,
        labels: agentOptions.labels ?? {},
        grpc: { listen: `127.0.0.1:${port}`, ...(proxies ? { advertise: proxies.grpc.url() } : {}), ...(await security('agent', hostId)) },
        nats: { ...(await nats.daemonConfig('agent', hostId)), servers: [proxies ? proxies.nats.url('nats') : nats.url] },
        fencing: { timeoutMs: TEST_FENCE_TIMEOUT_MS },
        telemetry: { intervalMs: agentOptions.telemetryIntervalMs ?? 500, storagePaths: ['/'] },
        drivers: agentOptions.drivers ?? REAL_DRIVERS,
        stopTimeoutSeconds: 2,
        http: { listen: `127.0.0.1:${httpPort}` },
        ...agentOptions.extra,
      }),
    );
    const launch = () => spawnProcess(`agent ${hostId}`, process.execPath, [...(agentOptions.nodeArgs ?? []), CLI_ENTRY, 'agent', '--config', configFile], {
        VIRTFLEET_LOG_LEVEL: agentOptions.logLevel ?? 'debug',
      });
    const agent: TestAgent = {
      hostId,
      port,
      httpPort,
      stateDir,
      configFile,
      ...(proxies ? { proxies } : {}),
      process: launch(),
      async restart(signal: NodeJS.Signals = 'SIGTERM') {
        await agent.process.stop(signal);
        agent.process = launch();
        await waitForPort(port, 30_000).catch((err: Error) => {
          throw new Error(`${err.message}\n${agent.process.tail()}`);
        });
      },
    };
    agents.push(agent);
    await waitForPort(port, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${agent.process.tail()}`);
    });
    return agent;
  };

  for (const a of options.agents ?? []) await addAgent(a);

  const cluster: TestCluster = {
    nats,
    pki,
    operatorTls,
    cliEnv,
    cli: (...args: string[]) => runCli(['--coordinator', coordinatorAddress, ...args], cliEnv),
    async agentClient(agent, agentOptions = {}) {
      const certificates = options.insecure ? undefined : new CertificateFiles(await pki.issue('coordinator', 'e2e'), 'tls');
      return new AgentClient(agent.hostId, `127.0.0.1:${agent.port}`, { deadlineMs: agentOptions.deadlineMs ?? 10_000, maxAttempts: agentOptions.maxAttempts ?? 3, certificates });
    },
    client,
    coordinator,
    coordinatorAddress,
    coordinatorHttpPort: httpPorts.get('e2e')!,
    api,
    agents,
    addAgent,
    async addCoordinator(id: string) {
      const port = await freePort();
      const p = await launchCoordinatorOn(id, port);
      extraCoordinators.push(p);
      return { process: p, address: `127.0.0.1:${port}` };
    },
    async restartCoordinator(signal: NodeJS.Signals = 'SIGKILL') {
      await cluster.coordinator.stop(signal);
      cluster.coordinator = await launchCoordinator();
    },
    logs: () => [cluster.coordinator, ...agents.map((a) => a.process)].map((p) => `--- ${p.name}\n${p.tail(40)}`).join('\n'),
    async stop() {
      api.close();
      await Promise.all(agents.map((a) => a.process.stop('SIGTERM')));
      await Promise.all([cluster.coordinator, ...extraCoordinators].map((c) => c.stop('SIGTERM')));
      await Promise.all(proxyList.map((p) => p.close()));
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** Waits until every agent of the cluster is listed as up. */
export async function waitForHostsUp(cluster: TestCluster, timeoutMs = 10_000): Promise<void> {
  await waitUntil(
    `hosts ${cluster.agents.map((a) => a.hostId).join(', ')} to be up`,
    async () => {
      const { hosts } = await cluster.api.hosts();
      return cluster.agents.every((a) => hosts.some((h) => h.id === a.hostId && h.status === 'up'));
    },
    { timeoutMs },
  );
}

/** Waits until the workload reaches `state`; fails early if it fails. */
export async function waitForState(cluster: TestCluster, id: string, state: string, timeoutMs = 30_000) {
  return waitFor(
    `workload ${id} to be ${state}`,
    async () => {
      const w = await cluster.api.get(id);
      if (w.state === 'failed' && state !== 'failed') throw new GiveUp(`workload ${id} failed: ${w.message}`);
      return w.state === state ? w : undefined;
    },
    { timeoutMs },
  );
}
