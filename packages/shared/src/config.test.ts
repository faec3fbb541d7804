import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidArgumentError } from './errors.js';
import { loadConfig, natsConfigSchema, parseDocument } from './config.js';

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
    expect(() => parseDocument(text, 'f.yaml')).toThrow(/^f\.yaml: malformed YAML\/JSON at line \d+, column \d+: \S/);
  });
  it('gives the position and the reason on one line, with nothing dangling', () => {
    expect(() => parseDocument('name: x\nname: y\n', 'f.yaml')).toThrow(/^f\.yaml: malformed YAML\/JSON at line 2, column 1: Map keys must be unique$/);
    expect(() => parseDocument('{"a": ', 'f.json')).toThrow(/^f\.json: malformed YAML\/JSON at line 1, column \d+: [^:\n]+[^:\s]$/);
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
  it('names every bad key', () => {
    expect(() => loadConfig(schema, undefined, { port: 'x', nested: { a: 1 }, prot: 2 })).toThrow(/^config: port: Invalid input: expected number, received string; nested\.a: Invalid input: expected string, received number; prot: unknown field$/);
  });
});

describe('natsConfigSchema', () => {
  it.each([
    { servers: ['nats://127.0.0.1:4222'], ok: true },
    { servers: ['127.0.0.1:4222', 'tls://nats.example:4443'], ok: true },
    { servers: ['nats://user:secret@10.0.0.1:4222'], ok: true },
    { servers: ['ftp://x'], ok: false },
    { servers: ['nats://host:4222/path'], ok: false },
    { servers: ['nats://has space:4222'], ok: false },
    { servers: [''], ok: false },
    { servers: [], ok: false },
  ])('$servers: valid $ok', ({ servers, ok }) => {
    expect(natsConfigSchema.safeParse({ servers, anonymous: true }).success).toBe(ok);
  });

  it.each([
    { name: 'a seed file', section: { nkeySeedFile: '/etc/virtfleet/nats/agent.nk' }, issue: undefined },
    { name: 'anonymous, said out loud', section: { anonymous: true }, issue: undefined },
    { name: 'TLS with a CA only', section: { anonymous: true, tls: { ca: '/ca.crt' } }, issue: undefined },
    { name: 'TLS with a client certificate', section: { anonymous: true, tls: { ca: '/ca.crt', cert: '/c.crt', key: '/c.key' } }, issue: undefined },
    { name: 'neither', section: {}, issue: 'nkeySeedFile: required: each daemon connects to NATS as its own user' },
    { name: 'the section left out', section: undefined, issue: 'nkeySeedFile: required' },
    { name: 'both', section: { nkeySeedFile: '/a.nk', anonymous: true }, issue: 'anonymous: set either nkeySeedFile or anonymous: true' },
    { name: 'a certificate without its key', section: { anonymous: true, tls: { ca: '/ca.crt', cert: '/c.crt' } }, issue: 'tls.cert: cert and key go together' },
    { name: 'TLS without a CA', section: { anonymous: true, tls: { cert: '/c.crt', key: '/c.key' } }, issue: 'tls.ca:' },
  ])('credentials: $name', ({ section, issue }) => {
    const first = natsConfigSchema.safeParse(section).error?.issues[0];
    const found = first ? `${first.path.join('.')}: ${first.message}` : '';
    expect(found.includes(issue ?? '') && (issue !== undefined || found === '')).toBe(true);
    expect(found.startsWith(issue ?? '')).toBe(true);
  });
});
