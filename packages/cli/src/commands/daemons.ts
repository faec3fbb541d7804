import { InvalidArgumentError as InvalidOptionError, type Command } from 'commander';
import { createLogger, loadTlsMaterial, readNkeySeed, type Logger } from '@virtfleet/shared';

// The daemons are imported on demand so operator commands start fast.

/** Runs a daemon until SIGTERM or SIGINT, then stops it cleanly. */
async function runUntilSignal(log: Logger, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  // A rejected background promise (a NATS call during an outage, say) must not take the daemon
  // and every workload's control down with it: log it loudly and keep serving.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const daemon = await start();
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      daemon.stop().then(resolve, (err: unknown) => {
        log.error({ err }, 'unclean shutdown');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidOptionError(`${name} must be a whole number`);
  return n;
};

/** `--insecure`, given before or after the daemon's name (the CLI as a whole has one too); undefined when absent, so the config decides. */
function insecureFlag(cmd: Command): true | undefined {
  return cmd.optsWithGlobals<{ insecure?: boolean }>().insecure ? true : undefined;
}

/** The `nats` section's flags, over the config file's. */
function natsFlags(opts: { nats?: string; natsSeed?: string; natsAnonymous?: boolean }): Record<string, unknown> | undefined {
  const section = { servers: opts.nats?.split(','), nkeySeedFile: opts.natsSeed, anonymous: opts.natsAnonymous };
  return Object.values(section).some((v) => v !== undefined) ? section : undefined;
}

const NATS_SEED_HELP = 'this daemon\'s NATS user: its nkey seed file from `virtfleet nats issue` (config: nats.nkeySeedFile)';
const NATS_ANONYMOUS_HELP = 'connect to NATS without credentials, to a server without authorization (config: nats.anonymous)';

/** `--check-config`: the resolved config on stdout as JSON; invalid configs have already failed to load. */
function printConfig(config: unknown): void {
  process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('agent')
    .description('run the host agent: drivers, lifecycle commands over gRPC, telemetry over NATS')
    .option('-c, --config <file>', 'agent config file (YAML or JSON)')
    .option('--host-id <id>', 'host id (default: the short hostname)')
    .option('--listen <host:port>', 'gRPC listen address')
    .option('--advertise <host:port>', 'gRPC address the coordinator dials')
    .option('--nats <urls>', 'comma-separated NATS server URLs')
    .option('--nats-seed <file>', NATS_SEED_HELP)
    .option('--nats-anonymous', NATS_ANONYMOUS_HELP)
    .option('--state-dir <dir>', 'state directory')
    .option('--telemetry-interval-ms <ms>', 'telemetry interval', int('--telemetry-interval-ms'))
    .option('--insecure', 'plaintext gRPC (config: grpc.insecure); without it the agent needs grpc.tls')
    .option('--simulate-hosts <n>', 'load testing: run n simulated hosts on the fake driver in this process (config: simulate.hosts)', int('--simulate-hosts'))
    .option('--check-config', 'validate the config (file and flags), print it with the defaults filled in, and exit')
    .action(async (opts: { config?: string; hostId?: string; listen?: string; advertise?: string; nats?: string; natsSeed?: string; natsAnonymous?: boolean; stateDir?: string; telemetryIntervalMs?: number; simulateHosts?: number; checkConfig?: boolean }, cmd: Command) => {
      const { loadAgentConfig, startAgent, startSimulatedFleet } = await import('@virtfleet/agent');
      const config = loadAgentConfig(opts.config, {
        hostId: opts.hostId,
        stateDir: opts.stateDir,
        grpc: { listen: opts.listen, advertise: opts.advertise, insecure: insecureFlag(cmd) },
        nats: natsFlags(opts),
        telemetry: opts.telemetryIntervalMs ? { intervalMs: opts.telemetryIntervalMs } : undefined,
        simulate: opts.simulateHosts !== undefined ? { hosts: opts.simulateHosts } : undefined,
      });
      if (opts.checkConfig) {
        if (config.grpc.tls && !config.simulate) loadTlsMaterial(config.grpc.tls, 'grpc.tls');
        if (config.nats.nkeySeedFile) readNkeySeed(config.nats.nkeySeedFile);
        return printConfig(config);
      }
      if (config.simulate) {
        const log = createLogger('agent');
        await runUntilSignal(log, () => startSimulatedFleet(config, log));
        return;
      }
      const log = createLogger('agent').child({ host: config.hostId });
      await runUntilSignal(log, () => startAgent(config, log));
    });

  program
    .command('fencer')
    .description("hold the host lease apart from the agent and stop fence-first workloads when it cannot (the agent starts it; fencing.fencer.enabled)")
    .option('-c, --config <file>', 'agent config file (YAML or JSON); the agent passes its own in VIRTFLEET_FENCER_CONFIG')
    .requiredOption('--boot-id <id>', "the agent's boot id, written into the host lease")
    .action(async (opts: { config?: string; bootId: string }) => {
      const { agentConfigSchema, loadAgentConfig, runFencer } = await import('@virtfleet/agent');
      const passed = process.env.VIRTFLEET_FENCER_CONFIG;
      const config = passed ? agentConfigSchema.parse(JSON.parse(passed)) : loadAgentConfig(opts.config);
      const log = createLogger('fencer').child({ host: config.hostId });
      await runUntilSignal(log, () => runFencer(config, opts.bootId, log));
      // The agent's IPC channel would keep the process alive after a hand-over.
      process.exit(0);
    });

  program
    .command('coordinator')
    .description('run the coordinator: cluster state, scheduling and the operator API')
    .option('-c, --config <file>', 'coordinator config file (YAML or JSON)')
    .option('--listen <host:port>', 'API listen address')
    .option('--insecure', 'plaintext gRPC (config: grpc.insecure); without it the coordinator needs grpc.tls')
    .option('--nats <urls>', 'comma-separated NATS server URLs')
    .option('--nats-seed <file>', NATS_SEED_HELP)
    .option('--nats-anonymous', NATS_ANONYMOUS_HELP)
    .option('--host-ttl-ms <ms>', 'mark a host down after this much silence', int('--host-ttl-ms'))
    .option('--check-config', 'validate the config (file and flags), print it with the defaults filled in, and exit')
    .action(async (opts: { config?: string; listen?: string; nats?: string; natsSeed?: string; natsAnonymous?: boolean; hostTtlMs?: number; checkConfig?: boolean }, cmd: Command) => {
      const { loadCoordinatorConfig, startCoordinator } = await import('@virtfleet/coordinator');
      const config = loadCoordinatorConfig(opts.config, {
        grpc: { listen: opts.listen, insecure: insecureFlag(cmd) },
        nats: natsFlags(opts),
        hosts: opts.hostTtlMs ? { ttlMs: opts.hostTtlMs } : undefined,
      });
      if (opts.checkConfig) {
        if (config.grpc.tls) loadTlsMaterial(config.grpc.tls, 'grpc.tls');
        if (config.dispatch.tls) loadTlsMaterial(config.dispatch.tls, 'dispatch.tls');
        if (config.nats.nkeySeedFile) readNkeySeed(config.nats.nkeySeedFile);
        return printConfig(config);
      }
      const log = createLogger('coordinator');
      await runUntilSignal(log, () => startCoordinator(config, log));
    });
}
