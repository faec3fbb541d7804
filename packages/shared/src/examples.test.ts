import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec } from './spec.js';

const EXAMPLES = fileURLToPath(new URL('../../../deploy/examples/', import.meta.url));

describe('the example specs in deploy/examples', () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
  it('are there', () => {
    expect(files).toEqual(expect.arrayContaining(['container.yaml', 'vm.yaml', 'vm-booting.yaml']));
  });
  it.each(files)('%s is a valid spec', (file) => {
    expect(() => parseWorkloadSpec(parse(readFileSync(`${EXAMPLES}${file}`, 'utf8')), `${file}:`)).not.toThrow();
  });
});
