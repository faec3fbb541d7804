#!/usr/bin/env node
// Summarizes V8 .cpuprofile files (node --cpu-prof): the functions with the
// most self time, and the most inclusive time, as shares of the busy time.
// Usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [TOP=30] [FROM_S TO_S]
// FROM_S and TO_S keep only the samples taken that many seconds after the profile began.
import { readFileSync } from 'node:fs';

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuprofile-summary.mjs FILE.cpuprofile [TOP] [FROM_S TO_S]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const fromUs = fromArg === undefined ? -Infinity : Number(fromArg) * 1e6;
const toUs = toArg === undefined ? Infinity : Number(toArg) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);

const selfHits = new Map();
let atUs = 0;
profile.samples.forEach((id, i) => {
  atUs += profile.timeDeltas[i];
  if (atUs >= fromUs && atUs <= toUs) selfHits.set(id, (selfHits.get(id) ?? 0) + 1);
});

const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(node_modules|packages)\//, '$1/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
const idle = new Set(['(idle)', '(program)', '(garbage collector)']);
let total = 0;
let busy = 0;
const self = new Map();
const inclusive = new Map();
for (const [id, hits] of selfHits) {
  total += hits;
  const node = byId.get(id);
  const name = label(node);
  if (node.callFrame.functionName === '(idle)') continue;
  busy += hits;
  self.set(name, (self.get(name) ?? 0) + hits);
  // Each frame on the stack once, however deep the recursion.
  const seen = new Set();
  for (let at = id; at !== undefined; at = parentOf.get(at)) {
    const n = label(byId.get(at));
    if (seen.has(n)) continue;
    seen.add(n);
    inclusive.set(n, (inclusive.get(n) ?? 0) + hits);
  }
}
const pct = (h) => `${((100 * h) / busy).toFixed(1).padStart(5)}%`;
const durationS = (Math.min(toUs, profile.endTime - profile.startTime) - Math.max(0, fromUs)) / 1e6;
console.log(`${file}: ${durationS.toFixed(1)} s, busy ${((100 * busy) / total).toFixed(1)}% of samples`);
console.log(`\nself time (share of busy):`);
for (const [n, h] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(h)}  ${n}`);
console.log(`\ninclusive time (share of busy):`);
for (const [n, h] of [...inclusive].filter(([n]) => !idle.has(n.split(' ')[0])).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(h)}  ${n}`);
