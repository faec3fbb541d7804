import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LIBVIRT_EXT_PATH, loadLibvirtExt, type LibvirtExt } from './native-ext.js';

// The addon is built by `npm run build:native -w @virtfleet/agent`; these tests fail if it was not.
function ext(): LibvirtExt {
  const load = loadLibvirtExt();
  if (!load.ok) throw new Error(`the libvirt-ext addon did not load (${load.reason}); build it with npm run build:native -w @virtfleet/agent`);
  return load.ext;
}

const UNREACHABLE = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock';

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
});
