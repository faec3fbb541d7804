import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidArgumentError } from './errors.js';
import { loadConfig, parseDocument } from './config.js';

describe('parseDocument', () => {
  it('reads YAML and JSON', () => {
    expect(parseDocument('a: 1\nb: [x]\n', 'f.yaml')).toEqual({ a: 1, b: ['x'] });
    expect(parseDocument('{"a": 1}', 'f.json')).toEqual({ a: 1 });
  });
  it.each([
    ['unclosed flow sequence', 'a: [1, 2\n'],
    ['bad indentation', 'a: 1\n  b: 2\n'],
    ['duplicate keys', 'a: 1\na: 2\n'],
    ['truncated JSON', '{"a": '],
  ])('rejects %s with the source and a line', (_name, text) => {
    expect(() => parseDocument(text, 'f.yaml')).toThrow(InvalidArgumentError);
    expect(() => parseDocument(text, 'f.yaml')).toThrow(/^f\.yaml: malformed YAML\/JSON/);
  });
});

describe('loadConfig', () => {
  const schema = z.object({ port: z.number().default(1), nested: z.object({ a: z.string().default('x') }).default({ a: 'x' }) }).strict();
  it('applies defaults and overrides, ignoring undefined overrides', () => {
    expect(loadConfig(schema, undefined, { nested: { a: 'y' }, port: undefined })).toEqual({ port: 1, nested: { a: 'y' } });
  });
  it('names the bad key', () => {
    expect(() => loadConfig(schema, undefined, { port: 'x' })).toThrow(/config: port: /);
  });
});
