import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@virtfleet/shared';
import { DEFAULT_COORDINATOR, resolveConnection, type CliConfig, type ConnectionFlags } from './connection.js';

const files = { ca: '/p/ca.crt', cert: '/p/op.crt', key: '/p/op.key' };

describe('resolveConnection', () => {
  it.each<{ name: string; flags: ConnectionFlags; config: CliConfig; want: unknown }>([
    { name: 'flags only', flags: { ...files }, config: {}, want: { address: DEFAULT_COORDINATOR, tls: files } },
    { name: 'the config file only', flags: {}, config: { coordinator: 'c:7100', tls: files }, want: { address: 'c:7100', tls: files } },
    { name: 'flags over the config file', flags: { coordinator: 'a:1,b:2', ca: '/x/ca', cert: '/x/c', key: '/x/k' }, config: { coordinator: 'c:7100', tls: files }, want: { address: 'a:1,b:2', tls: { ca: '/x/ca', cert: '/x/c', key: '/x/k' } } },
    { name: '--insecure over a config with tls', flags: { insecure: true }, config: { tls: files }, want: { address: DEFAULT_COORDINATOR } },
    { name: 'an insecure config', flags: {}, config: { insecure: true }, want: { address: DEFAULT_COORDINATOR } },
  ])('$name', ({ flags, config, want }) => {
    expect(resolveConnection(flags, config)).toEqual(want);
  });

  it.each<{ name: string; flags: ConnectionFlags; config: CliConfig; field: string; reason: RegExp }>([
    { name: 'nothing at all', flags: {}, config: {}, field: '--cert', reason: /takes mutual TLS: give --ca, --cert and --key/ },
    { name: 'a certificate without its key', flags: { ca: '/a', cert: '/b' }, config: {}, field: '--key', reason: /go together/ },
    { name: 'TLS flags with --insecure', flags: { insecure: true, ca: '/a' }, config: {}, field: '--insecure', reason: /cannot go with/ },
    { name: 'a bad address', flags: { coordinator: 'a:1,nowhere', insecure: true }, config: {}, field: '--coordinator', reason: /"nowhere" is not host:port/ },
  ])('refuses $name, naming $field', ({ flags, config, field, reason }) => {
    let thrown: unknown;
    try {
      resolveConnection(flags, config);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect((thrown as InvalidArgumentError).field).toBe(field);
    expect((thrown as Error).message).toMatch(reason);
  });
});
