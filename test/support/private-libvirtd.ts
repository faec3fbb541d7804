import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Hypervisor } from '@unraid/libvirt';
import { removeDomains } from './cleanup.js';
import { freePort, spawnProcess, type ManagedProcess } from './processes.js';
import { waitUntil } from './wait.js';

const run = promisify(execFile);

/** The directories libvirtd keeps its state in, each bind-mounted over with a private copy. */
const PRIVATE_DIRS = { run: '/run/libvirt', lib: '/var/lib/libvirt', log: '/var/log/libvirt', etc: '/etc/libvirt', cache: '/var/cache/libvirt' } as const;

/**
 * A libvirtd of the test's own (ENVIRONMENT.md, "A second host on one
 * machine"): its own mount namespace with private copies of libvirt's
 * directories, its own host UUID, and a TCP listener on 127.0.0.1, so a test
 * can freeze or kill it without touching the machine's libvirtd. Its QEMU
 * guests are its children in that namespace.
 */
export interface PrivateLibvirtd {
  /** `qemu+tcp://127.0.0.1:PORT/system`, for the agent's `drivers.libvirt.uri`. */
  uri: string;
  /** The libvirtd process itself (not a wrapper): signals reach it. */
  process: ManagedProcess;
  /** A connection of the test's own. */
  hypervisor: Hypervisor;
  /** SIGSTOP to libvirtd alone: its guests keep running, its API stops answering. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Destroys and undefines its domains, stops it and its virtlogd, deletes its directories. Safe to call twice. */
  stop(): Promise<void>;
}

/** Double quotes for a libvirtd.conf string value; the values here are generated, never user input. */
const confString = (value: string) => `"${value.replace(/["\\]/g, '')}"`;

export async function startPrivateLibvirtd(): Promise<PrivateLibvirtd> {
  const base = mkdtempSync(join('/var/tmp', 'vf-libvirtd-'));
  for (const name of Object.keys(PRIVATE_DIRS)) mkdirSync(join(base, name));
  const port = await freePort();
  writeFileSync(
    join(base, 'etc', 'libvirtd.conf'),
    [
      'listen_tls = 0',
      'listen_tcp = 1',
      `tcp_port = ${confString(String(port))}`,
      `listen_addr = ${confString('127.0.0.1')}`,
      `auth_tcp = ${confString('none')}`,
      `host_uuid = ${confString(randomUUID())}`,
      '',
    ].join('\n'),
  );
  // The machine's QEMU capability cache, so the new daemon does not spend tens of seconds probing
  // every emulator on its first capabilities call (entries are keyed by binary and host CPU, which it shares).
  if (existsSync('/var/cache/libvirt/qemu')) await run('cp', ['-a', '/var/cache/libvirt/qemu', join(base, 'cache', 'qemu')]).catch(() => undefined);
  const mounts = Object.entries(PRIVATE_DIRS).map(([name, target]) => `mount --bind ${join(base, name)} ${target}`);
  // exec: the managed process is libvirtd, so freeze() stops the daemon and not a shell.
  const script = [...mounts, 'virtlogd -d -p /run/libvirt/virtlogd.pid', 'exec libvirtd --listen -p /run/libvirt/libvirtd.pid'].join(' && ');
  const p = spawnProcess(`libvirtd ${port}`, 'unshare', ['-m', '--propagation', 'private', 'bash', '-c', script]);
  const uri = `qemu+tcp://127.0.0.1:${port}/system`;
  const hypervisor = new Hypervisor({ uri });
  let connected = false;
  let stopped = false;

  const self: PrivateLibvirtd = {
    uri,
    process: p,
    hypervisor,
    freeze: () => p.signal('SIGSTOP'),
    thaw: () => p.signal('SIGCONT'),
    async stop() {
      if (stopped) return;
      stopped = true;
      p.signal('SIGCONT');
      if (connected) {
        const names = await hypervisor.connectListAllDomains().then((ds) => Promise.all(ds.map((d) => hypervisor.domainGetName(d)))).catch(() => [] as string[]);
        await removeDomains(hypervisor, names);
        await hypervisor.connectClose().catch(() => undefined);
      }
      await p.stop('SIGTERM', 15_000);
      const virtlogdPid = join(base, 'run', 'virtlogd.pid');
      if (existsSync(virtlogdPid)) {
        const pid = Number(readFileSync(virtlogdPid, 'utf8').trim());
        try {
          if (pid > 0) process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      // The mounts lived in the namespace, which ended with its last process; nothing to unmount here.
      await run('rm', ['-rf', base]).catch(() => rmSync(base, { recursive: true, force: true }));
    },
  };
  try {
    await waitUntil(
      `private libvirtd to answer on ${uri}`,
      async () => {
        if (!p.running) throw new Error(`libvirtd exited:\n${p.tail()}`);
        try {
          await hypervisor.connectOpen();
        } catch {
          return false;
        }
        connected = true;
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    // Ready means an agent's first fingerprint answers promptly: capabilities are probed now, not then.
    await run('virsh', ['-c', uri, 'capabilities'], { timeout: 120_000 });
  } catch (err) {
    await self.stop();
    throw err;
  }
  return self;
}
