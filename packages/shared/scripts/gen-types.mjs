// Generates TypeScript types for the protos with the same options the runtime loader uses.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const protoRoot = join(here, '..', '..', '..', 'proto');
const outDir = join(here, '..', 'src', 'generated');
const files = readdirSync(join(protoRoot, 'virtfleet', 'v1')).filter((f) => f.endsWith('.proto')).map((f) => `virtfleet/v1/${f}`);
rmSync(outDir, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    join(here, '..', '..', '..', 'node_modules', '@grpc', 'proto-loader', 'build', 'bin', 'proto-loader-gen-types.js'),
    '--keepCase', '--longs=String', '--enums=String', '--defaults', '--oneofs',
    '--grpcLib=@grpc/grpc-js', '--importFileExtension=.js', '--inputTemplate=%s', '--outputTemplate=%s__Output',
    `--includeDirs=${protoRoot}`, `--outDir=${outDir}`, ...files,
  ],
  { stdio: 'inherit' },
);
