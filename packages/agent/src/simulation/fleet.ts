import { join } from 'node:path';
import { connectNats, errorMessage, natsInboxPrefix, type Logger, type MutualTlsFiles, type NatsConnection } from '@virtfleet/shared';
import { startHost, type RunningAgent } from '../agent.js';
import { fakeDriverSchema, HOST_PLACEHOLDER, listenPort, simulatedHostId, type AgentConfig } from '../config.js';
import { HostSampler, SharedHostSampler } from '../telemetry/host-sampler.js';

/** Hosts starting at once; more wait, so start-up does not open thousands of KV handles in one tick. @default 64 */
const START_CONCURRENCY = 64;

export interface RunningFleet {
  hosts: RunningAgent[];
  /** Stops every host, then closes the shared NATS connection. Workloads vanish with the process (fake driver). */
  stop(): Promise<void>;
}

/**
 * The config of each host `config.simulate` asks for: the fleet's own with
 * the host's id, state directory and port, the fake driver only, and no
 * `simulate`.
 * @throws Error without `simulate` (the schema has checked the rest).
 */
export function simulatedHostConfigs(config: AgentConfig): AgentConfig[] {
  const simulate = config.simulate;
  if (!simulate) throw new Error('the config has no simulate section');
  const prefix = simulate.idPrefix ?? config.hostId;
  const port = listenPort(config.grpc.listen);
  const address = config.grpc.listen.slice(0, config.grpc.listen.lastIndexOf(':'));
  const fake = config.drivers.fake ?? fakeDriverSchema.parse({});
  return Array.from({ length: simulate.hosts }, (_, i) => {
    const hostId = simulatedHostId(prefix, i + 1, simulate.hosts);
    return {
      ...config,
      simulate: undefined,
      hostId,
      stateDir: join(config.stateDir, hostId),
      grpc: { ...config.grpc, listen: `${address}:${port === 0 ? 0 : port + i}`, ...(config.grpc.tls ? { tls: forHost(config.grpc.tls, hostId) } : {}) },
      drivers: { fake },
    };
  });
}

/** Each simulated host's own certificate: `{host}` in the paths stands for its host id. */
function forHost(tls: MutualTlsFiles, hostId: string): MutualTlsFiles {
  const sub = (path: string) => path.replaceAll(HOST_PLACEHOLDER, hostId);
  return { cert: sub(tls.cert), key: sub(tls.key), ca: sub(tls.ca) };
}

/**
 * Runs every simulated host of `config.simulate` in this process. Each is
 * started by `startHost`, as a real agent's only host is; what is per
 * process is shared: the logger, one NATS connection and one sampler of
 * the machine. Host i of N takes timer phase i/N, so heartbeats, telemetry
 * and lease renewals are spread evenly over their intervals.
 */
export async function startSimulatedFleet(config: AgentConfig, log: Logger): Promise<RunningFleet> {
  const configs = simulatedHostConfigs(config);
  const startedAt = performance.now();
  let connecting: Promise<NatsConnection> | undefined;
  const nats = () => (connecting ??= connectNats(config.nats, `virtfleet-agent-simulated-${configs.length}-${config.simulate?.idPrefix ?? config.hostId}`, log, { inboxPrefix: natsInboxPrefix('agent', config.hostId) }));
  // Shared by all: they sample the same machine; half an interval keeps each message's figures fresh.
  const hostSampler = new SharedHostSampler(new HostSampler(config.telemetry.storagePaths), config.telemetry.intervalMs / 2);

  const hosts: RunningAgent[] = [];
  const stopAll = async () => {
    await Promise.all(hosts.map((h) => h.stop().catch((err: unknown) => log.warn({ host: h.hostId, err: errorMessage(err) }, 'simulated host did not stop cleanly'))));
    if (connecting) await (await connecting.catch(() => undefined))?.drain().catch(() => undefined);
  };
  let next = 0;
  let failure: { hostId: string; err: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.min(START_CONCURRENCY, configs.length) }, async () => {
      while (next < configs.length && !failure) {
        const i = next++;
        const hostConfig = configs[i]!;
        try {
          hosts.push(await startHost(hostConfig, { log: log.child({ host: hostConfig.hostId }), nats, hostSampler, timerPhase: i / configs.length }));
        } catch (err) {
          failure ??= { hostId: hostConfig.hostId, err };
        }
      }
    }),
  );
  if (failure) {
    await stopAll();
    throw new Error(`simulated host ${failure.hostId} did not start: ${errorMessage(failure.err)}`, { cause: failure.err });
  }
  log.info({ hosts: hosts.length, first: configs[0]?.hostId, last: configs.at(-1)?.hostId, seconds: Math.round(performance.now() - startedAt) / 1000 }, 'simulated fleet started');
  if (config.http.enabled) log.info({ listen: config.http.listen }, 'a simulated fleet serves no HTTP (metrics): http is ignored with simulate');
  return { hosts, stop: stopAll };
}
