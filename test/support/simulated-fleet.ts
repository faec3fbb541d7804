import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simulatedHostId } from '@virtfleet/agent';
import type { NatsUsers } from './nats-server.js';
import type { TestPki } from './pki.js';
import { CLI_ENTRY, spawnProcess, type ManagedProcess } from './processes.js';

export interface SimulatedFleet {
  /** The host ids it runs, in order. */
  ids: string[];
  process: ManagedProcess;
}

/**
 * One `virtfleet agent` process simulating `hosts` hosts on the fake driver
 * (`simulate.hosts`), each with its own host id `<idPrefix>-NNNN`, gRPC port
 * and state under `dir`. `config` adds agent config keys (fake driver
 * capacity, telemetry interval). With `pki` every host gets a certificate
 * of its own (`{host}` in the config's paths), as real hosts do; without,
 * the fleet runs with `grpc.insecure`, which its coordinator must share.
 */
export async function startSimulatedFleet(options: {
  idPrefix: string;
  hosts: number;
  /** The cluster's NATS users: the fleet connects as one agent user speaking for all its hosts. */
  nats: NatsUsers;
  dir: string;
  config?: Record<string, unknown>;
  logLevel?: string;
  /** Node options before the entry point, e.g. --cpu-prof. */
  nodeArgs?: string[];
  pki?: TestPki;
}): Promise<SimulatedFleet> {
  const ids = Array.from({ length: options.hosts }, (_, i) => simulatedHostId(options.idPrefix, i + 1, options.hosts));
  const security = options.pki ? { tls: await options.pki.fleetTls(ids) } : { insecure: true };
  const configFile = join(options.dir, `${options.idPrefix}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      hostId: options.idPrefix,
      stateDir: join(options.dir, `${options.idPrefix}-state`),
      grpc: { listen: '127.0.0.1:0', ...security },
      nats: await options.nats.daemonConfig('agent', options.idPrefix, ids),
      drivers: { fake: { enabled: true } },
      ...options.config,
      simulate: { hosts: options.hosts },
    }),
  );
  return {
    ids,
    process: spawnProcess(`fleet ${options.idPrefix}`, process.execPath, [...(options.nodeArgs ?? []), CLI_ENTRY, 'agent', '--config', configFile], { VIRTFLEET_LOG_LEVEL: options.logLevel ?? 'warn' }),
  };
}
