// Builds the addon without network access: node-gyp is the one bundled with npm, and the
// Node headers come from this Node's own installation (Debian and nodejs.org builds ship
// them under <prefix>/include/node), so node-gyp never tries to download them.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Skip the compile when the addon is newer than its sources and was built for this Node.
const output = join(here, 'build', 'Release', 'virtfleet_libvirt_ext.node');
const stamp = join(here, 'build', `node-abi-${process.versions.modules}`);
const sources = [join(here, 'binding.gyp'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))];
if (!process.argv.includes('--force') && existsSync(output) && existsSync(stamp)) {
  const built = statSync(output).mtimeMs;
  if (sources.every((f) => statSync(f).mtimeMs < built)) process.exit(0);
}
const prefix = resolve(dirname(process.execPath), '..');
const nodeGyp = [process.env.npm_config_node_gyp, join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')].find((p) => p && existsSync(p));
if (!nodeGyp) {
  console.error('libvirt-ext: cannot find node-gyp (looked for npm_config_node_gyp and npm\'s bundled copy)');
  process.exit(1);
}
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : undefined);
const args = [nodeGyp, 'rebuild', '--directory', here, ...(nodedir ? ['--nodedir', nodedir] : [])];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (result.status === 0) writeFileSync(stamp, '');
process.exit(result.status ?? 1);
