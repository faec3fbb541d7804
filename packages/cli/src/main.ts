#!/usr/bin/env node
import { CommanderError } from 'commander';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { errorText, watchForClosedStdout } from './output.js';
import { buildProgram } from './program.js';

watchForClosedStdout();

const program = buildProgram();

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
