// Bundles the dashboard into dist/: index.html, app.js and app.css, with
// everything it uses (Preact, uPlot, yaml) inside; nothing is fetched from a
// CDN at run time. Writes only into this package's dist/.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath, URL } from 'node:url';
import { build } from 'esbuild';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const dist = here('./dist/');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: { app: here('./src/main.tsx') },
  outdir: dist,
  bundle: true,
  format: 'iife',
  target: ['es2022'],
  platform: 'browser',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
await copyFile(here('./src/index.html'), `${dist}index.html`);
console.log(`dashboard built into ${dist}`);
