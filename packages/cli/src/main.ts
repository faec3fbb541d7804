#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { registerBackupCommands } from './commands/backups.js';
import { registerDaemonCommands } from './commands/daemons.js';
import { registerImageCommands } from './commands/images.js';
import { registerOperatorCommands } from './commands/operator.js';
import { registerNatsUserCommands } from './commands/nats-users.js';
import { registerPkiCommands } from './commands/pki.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerSchedulingCommands } from './commands/scheduling.js';
import { registerRebalanceCommand } from './commands/rebalance.js';
import { registerRebalanceApply } from './commands/rebalance-apply.js';
import { registerSimulateCommand } from './commands/simulate.js';
import { cliConfigPath, DEFAULT_COORDINATOR } from './connection.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { errorText, watchForClosedStdout } from './output.js';

watchForClosedStdout();

const program = new Command('virtfleet')
  .description(`virtfleet: VMs and containers across a fleet of hosts\n\nConnection settings not given as flags come from ${cliConfigPath()} (or $VIRTFLEET_CLI_CONFIG): coordinator, tls: { ca, cert, key }, token, insecure.`)
  .version('0.1.0')
  .addOption(new Option('--coordinator <host:port>', `coordinator API address; several, comma-separated, for a highly available set (default: the CLI config's, else ${DEFAULT_COORDINATOR})`).env('VIRTFLEET_COORDINATOR'))
  .addOption(new Option('--ca <file>', 'the cluster CA certificate (PEM)').env('VIRTFLEET_CA'))
  .addOption(new Option('--cert <file>', 'your operator certificate (PEM), from `virtfleet pki issue --role operator`').env('VIRTFLEET_CERT'))
  .addOption(new Option('--key <file>', 'the key of --cert (PEM)').env('VIRTFLEET_KEY'))
  .addOption(new Option('--token <token>', 'a bearer token from `virtfleet token create`').env('VIRTFLEET_TOKEN'))
  .addOption(new Option('--insecure', 'plaintext, for a coordinator run with grpc.insecure: true (or VIRTFLEET_INSECURE=1)'))
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .addOption(
    new Option('--timeout <seconds>', 'deadline for each API call')
      .default(60)
      .argParser((v) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new CommanderError(EXIT.invalidInput, 'virtfleet.invalidTimeout', '--timeout must be a positive number of seconds');
        return n;
      }),
  )
  .showHelpAfterError()
  .exitOverride();

registerDaemonCommands(program);
registerOperatorCommands(program);
registerSchedulingCommands(program);
registerImageCommands(program);
registerBackupCommands(program);
registerSimulateCommand(program);
registerPkiCommands(program);
registerNatsUserCommands(program);
registerTokenCommands(program);
registerRebalanceApply(registerRebalanceCommand(program));
for (const cmd of program.commands) {
  cmd.exitOverride();
  for (const sub of cmd.commands) sub.exitOverride();
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; usage errors were already printed by commander.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.invalidInput;
  } else {
    process.stderr.write(`error: ${errorText(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}


// Done: leave now rather than when the last handle closes. A TLS handshake with a server that never
// answers outlives its closed channel in grpc-js and would hold the process after the error was printed.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit();
