import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LIBVIRT_EXT_PATH, loadLibvirtExt, MIGRATE_FLAGS, parseDomainJobStats, type LibvirtExt, type MigrateDomainOptions } from './native-ext.js';

// The addon is built by `npm run build:native -w @virtfleet/agent`; these tests fail if it was not.
function ext(): LibvirtExt {
  const load = loadLibvirtExt();
  if (!load.ok) throw new Error(`the libvirt-ext addon did not load (${load.reason}); build it with npm run build:native -w @virtfleet/agent`);
  return load.ext;
}

const UNREACHABLE = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock';

/** The rejection of `promise` (undefined if it resolved), for asserting on it unconditionally. */
const rejectionOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (e: unknown) => e,
  );

/** The synchronous throw of `call`, or undefined; a promise it returns is left to settle unobserved. */
const thrownBy = (call: () => unknown): unknown => {
  try {
    void Promise.resolve(call()).catch(() => undefined);
    return undefined;
  } catch (err) {
    return err;
  }
};

describe('libvirt-ext addon', () => {
  it(`loads from ${LIBVIRT_EXT_PATH}`, () => {
    expect(loadLibvirtExt()).toMatchObject({ ok: true });
  });

  it.each([
    { name: 'getLibVersion', call: (e: LibvirtExt) => e.getLibVersion('test:///default'), want: /^\d+\.\d+\.\d+$/ },
    { name: 'getHypervisorVersion', call: (e: LibvirtExt) => e.getHypervisorVersion('test:///default'), want: /^\d+\.\d+\.\d+$/ },
    { name: 'getCapabilities', call: (e: LibvirtExt) => e.getCapabilities('test:///default'), want: /^<capabilities>[\s\S]*<guest>[\s\S]*<\/capabilities>\s*$/ },
  ])('$name answers for test:///default', async ({ call, want }) => {
    expect(await call(ext())).toMatch(want);
  });

  it.each([
    { name: 'getLibVersion', call: (e: LibvirtExt) => e.getLibVersion(UNREACHABLE) },
    { name: 'getHypervisorVersion', call: (e: LibvirtExt) => e.getHypervisorVersion(UNREACHABLE) },
    { name: 'getCapabilities', call: (e: LibvirtExt) => e.getCapabilities(UNREACHABLE) },
  ])('$name rejects with an Error carrying libvirt’s message and code when libvirtd is unreachable', async ({ call }) => {
    const err = await call(ext()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/Failed to connect socket to '\/nonexistent\/libvirt-sock'/);
    expect((err as { code?: unknown }).code, 'virErrorNumber, VIR_ERR_SYSTEM_ERROR is 38').toBe(38);
  });

  it('throws a TypeError synchronously for a non-string uri', () => {
    expect(() => (ext().getLibVersion as (uri: unknown) => Promise<string>)(42)).toThrow(TypeError);
  });

  it('works off the event loop: a call stuck on a silent libvirtd leaves the loop free, and fails when the peer hangs up', async () => {
    // A fake libvirtd that accepts and never answers; serving it needs the event loop.
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    const path = join(tmpdir(), `virtfleet-ext-${process.pid}-${Date.now()}.sock`);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      let settled = false;
      const call = ext()
        .getLibVersion(`qemu+unix:///system?socket=${path}`)
        .finally(() => {
          settled = true;
        });
      const outcome = call.then(
        () => undefined,
        (e: unknown) => e,
      );
      const deadline = Date.now() + 5000;
      while (sockets.length === 0 && Date.now() < deadline) await delay(10);
      expect(sockets.length, 'the fake libvirtd saw the connection while the call was in flight').toBe(1);
      await delay(200);
      expect(settled, 'the call waits for an answer that never comes').toBe(false);
      sockets[0]?.destroy();
      const err = await outcome;
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/End of file while reading data|Cannot recv data|Cannot write data/);
    } finally {
      server.close();
    }
  });

  // The test driver has the domain "test" but no migration or jobs: these reach libvirt and come back
  // as its errors, which is all a driver without jobs can show. Real jobs: test/integration/live-migration.test.ts.
  it.each([
    { name: 'domainJobStats', call: (e: LibvirtExt) => e.domainJobStats('test:///default', 'test'), message: /not supported by the connection driver: virDomainGetJobStats/, code: 3 },
    { name: 'abortDomainJob', call: (e: LibvirtExt) => e.abortDomainJob('test:///default', 'test'), message: /not supported by the connection driver: virDomainAbortJob/, code: 3 },
    {
      name: 'migrateDomain peer-to-peer',
      call: (e: LibvirtExt) => e.migrateDomain('test:///default', 'test', 'test:///default', { flags: MIGRATE_FLAGS.LIVE | MIGRATE_FLAGS.PEER2PEER }),
      message: /p2p migration is not supported by the source host/,
      code: 74,
    },
    { name: 'domainJobStats of a missing domain', call: (e: LibvirtExt) => e.domainJobStats('test:///default', 'nope'), message: /^Domain not found/, code: 42 },
    { name: 'abortDomainJob of a missing domain', call: (e: LibvirtExt) => e.abortDomainJob('test:///default', 'nope'), message: /^Domain not found/, code: 42 },
    {
      name: 'migrateDomain of a missing domain',
      call: (e: LibvirtExt) => e.migrateDomain('test:///default', 'nope', 'test:///default', { flags: MIGRATE_FLAGS.LIVE, bandwidthMiBs: 1, maxDowntimeMs: 10, migrateDisks: ['vda'] }),
      message: /^Domain not found/,
      code: 42,
    },
  ])('$name on test:///default rejects with libvirt’s message and code $code', async ({ call, message, code }) => {
    const err = await rejectionOf(call(ext()));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(message);
    expect(err).toMatchObject({ code, libvirtDomain: expect.any(Number) as number });
  });

  it.each([
    { name: 'migrateDomain', call: (e: LibvirtExt) => e.migrateDomain(UNREACHABLE, 'x', 'test:///default', { flags: MIGRATE_FLAGS.LIVE | MIGRATE_FLAGS.PEER2PEER }) },
    { name: 'domainJobStats', call: (e: LibvirtExt) => e.domainJobStats(UNREACHABLE, 'x') },
    { name: 'abortDomainJob', call: (e: LibvirtExt) => e.abortDomainJob(UNREACHABLE, 'x') },
  ])('$name rejects with libvirt’s message and code when libvirtd is unreachable', async ({ call }) => {
    const err = await rejectionOf(call(ext()));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/Failed to connect socket to '\/nonexistent\/libvirt-sock'/);
    expect((err as { code?: unknown }).code, 'VIR_ERR_SYSTEM_ERROR').toBe(38);
  });

  it.each([
    { name: 'options not an object', options: null, want: /^options must be an object$/ },
    { name: 'options an array', options: [], want: /^options must be an object$/ },
    { name: 'no flags', options: {}, want: /^options\.flags must be an integer/ },
    { name: 'negative flags', options: { flags: -1 }, want: /^options\.flags must be an integer/ },
    { name: 'fractional flags', options: { flags: 1.5 }, want: /^options\.flags must be an integer/ },
    { name: 'flags beyond 32 bits', options: { flags: 2 ** 32 }, want: /^options\.flags must be an integer/ },
    { name: 'flags as a string', options: { flags: '1' }, want: /^options\.flags must be an integer/ },
    { name: 'migrateUri a number', options: { flags: 1, migrateUri: 3 }, want: /^options\.migrateUri must be a string$/ },
    { name: 'disksUri null', options: { flags: 1, disksUri: null }, want: /^options\.disksUri must be a string$/ },
    { name: 'destXml an object', options: { flags: 1, destXml: {} }, want: /^options\.destXml must be a string$/ },
    { name: 'persistXml a boolean', options: { flags: 1, persistXml: true }, want: /^options\.persistXml must be a string$/ },
    { name: 'destName a number', options: { flags: 1, destName: 7 }, want: /^options\.destName must be a string$/ },
    { name: 'migrateDisks a string', options: { flags: 1, migrateDisks: 'vda' }, want: /^options\.migrateDisks must be an array of strings$/ },
    { name: 'migrateDisks holding a number', options: { flags: 1, migrateDisks: ['vda', 2] }, want: /^options\.migrateDisks must be an array of strings$/ },
    { name: 'bandwidthMiBs a string', options: { flags: 1, bandwidthMiBs: '1' }, want: /^options\.bandwidthMiBs must be an integer/ },
    { name: 'bandwidthMiBs negative', options: { flags: 1, bandwidthMiBs: -1 }, want: /^options\.bandwidthMiBs must be an integer/ },
    { name: 'maxDowntimeMs NaN', options: { flags: 1, maxDowntimeMs: Number.NaN }, want: /^options\.maxDowntimeMs must be an integer/ },
    { name: 'maxDowntimeMs fractional', options: { flags: 1, maxDowntimeMs: 0.5 }, want: /^options\.maxDowntimeMs must be an integer/ },
    { name: 'an unknown option (a typo)', options: { flags: 1, bandwidth: 1 }, want: /^options\.bandwidth is not a migrateDomain option$/ },
  ])('migrateDomain throws a TypeError synchronously for $name', ({ options, want }) => {
    // A wrong type would otherwise reach libvirt as a different migration than the one asked for.
    const err = thrownBy(() => ext().migrateDomain('test:///default', 'test', 'test:///default', options as unknown as MigrateDomainOptions));
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toMatch(want);
  });

  it.each([
    { name: 'migrateDomain without options', call: (e: LibvirtExt) => (e.migrateDomain as (...args: unknown[]) => Promise<string>)('test:///default', 'test', 'test:///default') },
    { name: 'migrateDomain with a numeric destUri', call: (e: LibvirtExt) => (e.migrateDomain as (...args: unknown[]) => Promise<string>)('test:///default', 'test', 1, { flags: 1 }) },
    { name: 'domainJobStats without a domain', call: (e: LibvirtExt) => (e.domainJobStats as (...args: unknown[]) => Promise<string>)('test:///default') },
    { name: 'abortDomainJob with a numeric domain', call: (e: LibvirtExt) => (e.abortDomainJob as (...args: unknown[]) => Promise<string>)('test:///default', 1) },
  ])('$name throws a TypeError synchronously', ({ call }) => {
    expect(thrownBy(() => call(ext()))).toBeInstanceOf(TypeError);
  });

  it('MIGRATE_FLAGS match libvirt-domain.h', () => {
    const header = readFileSync('/usr/include/libvirt/libvirt-domain.h', 'utf8');
    const declared = Object.fromEntries([...header.matchAll(/^\s*VIR_MIGRATE_([A-Z0-9_]+) = \(1 << (\d+)\),/gm)].map((m) => [m[1], 2 ** Number(m[2])]));
    expect(Object.keys(MIGRATE_FLAGS).length).toBe(14);
    expect(declared).toMatchObject(MIGRATE_FLAGS);
  });
});

describe('parseDomainJobStats', () => {
  it.each([
    { name: 'an idle domain', json: '{"type":"none"}', want: { type: 'none' } },
    {
      name: 'a running migration, keeping the fields it reads and dropping the rest',
      json: '{"type":"unbounded","operation":5,"time_elapsed":1213,"downtime":300,"data_total":268828672,"data_processed":848086,"data_remaining":303104,"memory_total":268828672,"memory_processed":848086,"memory_remaining":303104,"memory_bps":1082069,"memory_dirty_rate":0,"disk_total":0,"disk_processed":0,"disk_remaining":0,"disk_bps":0,"compression_cache":"x","postcopy":false}',
      want: {
        type: 'unbounded',
        time_elapsed: 1213,
        downtime: 300,
        data_total: 268828672,
        data_processed: 848086,
        data_remaining: 303104,
        memory_total: 268828672,
        memory_processed: 848086,
        memory_remaining: 303104,
        memory_bps: 1082069,
        disk_total: 0,
        disk_processed: 0,
        disk_remaining: 0,
        disk_bps: 0,
      },
    },
    { name: 'a cancelled job', json: '{"type":"cancelled","time_elapsed":0}', want: { type: 'cancelled', time_elapsed: 0 } },
  ])('parses $name', ({ json, want }) => {
    expect(parseDomainJobStats(json)).toStrictEqual(want);
  });

  it.each([
    { name: 'an unknown job type', json: '{"type":"paused"}', want: /type/ },
    { name: 'no type', json: '{"time_elapsed":1}', want: /type/ },
    { name: 'a byte count as a string', json: '{"type":"unbounded","data_total":"1"}', want: /data_total/ },
    { name: 'a negative count', json: '{"type":"unbounded","memory_bps":-1}', want: /memory_bps/ },
    { name: 'an array', json: '[]', want: /unexpected document/ },
    { name: 'not JSON', json: '{"type":', want: /JSON/ },
  ])('refuses $name', ({ json, want }) => {
    expect(() => parseDomainJobStats(json)).toThrow(want);
  });
});
