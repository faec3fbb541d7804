import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simulatedHostId } from '@virtfleet/agent';
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
 * capacity, telemetry interval).
 */
export function startSimulatedFleet(options: {
  idPrefix: string;
  hosts: number;
  natsUrl: string;
  dir: string;
  config?: Record<string, unknown>;
  logLevel?: string;
  /** Node options before the entry point, e.g. --cpu-prof. */
  nodeArgs?: string[];
}): SimulatedFleet {
  const configFile = join(options.dir, `${options.idPrefix}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      hostId: options.idPrefix,
      stateDir: join(options.dir, `${options.idPrefix}-state`),
      grpc: { listen: '127.0.0.1:0' },
      nats: { servers: [options.natsUrl] },
      drivers: { fake: { enabled: true } },
      ...options.config,
      simulate: { hosts: options.hosts },
    }),
  );
  return {
    ids: Array.from({ length: options.hosts }, (_, i) => simulatedHostId(options.idPrefix, i + 1, options.hosts)),
    process: spawnProcess(`fleet ${options.idPrefix}`, process.execPath, [...(options.nodeArgs ?? []), CLI_ENTRY, 'agent', '--config', configFile], { VIRTFLEET_LOG_LEVEL: options.logLevel ?? 'warn' }),
  };
}
