import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Procedures of libvirt's remote protocol (src/remote/remote_protocol.x) that
 * tests hold. virDomainCreate goes over the wire as DOMAIN_CREATE_WITH_FLAGS.
 */
export const LIBVIRT_PROC = { DOMAIN_CREATE: 9, DOMAIN_DEFINE_XML: 11, DOMAIN_CREATE_WITH_FLAGS: 196 } as const;
const REMOTE_PROGRAM = 0x20008086;
const CALL = 0;

/** A libvirt RPC call the proxy is holding: it has not reached libvirtd. */
export interface HeldLibvirtCall {
  procedure: number;
  /** Closes the caller's connection without answering: the call never reaches libvirtd. */
  drop(): void;
}

/**
 * A transparent proxy for libvirtd's unix socket: give an agent `uri`
 * (`drivers.libvirt.uri`) and its libvirt connections go to the real daemon,
 * except the one call a test asks to hold, so a test can stop an agent between
 * two steps of a driver operation (a domain defined but not started) for
 * certain. It reads only the frame headers of libvirt's remote protocol (a
 * length word, then program, version, procedure and type) and forwards the
 * bytes as they are; the connection must be unencrypted (a local unix socket).
 */
export interface LibvirtProxy {
  /** A libvirt URI for the same hypervisor as `qemu:///system`, through the proxy. */
  uri: string;
  /** Holds the next call of one of `procedures` and resolves with it; rejects after `timeoutMs` if none came. One hold at a time. */
  holdNext(procedures: readonly number[], timeoutMs: number): Promise<HeldLibvirtCall>;
  close(): Promise<void>;
}

export async function startLibvirtProxy(target = '/var/run/libvirt/libvirt-sock'): Promise<LibvirtProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-libvirt-proxy-'));
  const socketPath = join(dir, 'libvirt-sock');
  const sockets = new Set<Socket>();
  let hold: { procedures: readonly number[]; found: (call: HeldLibvirtCall) => void } | undefined;

  const server = createServer((client) => {
    const daemon = connect(target);
    sockets.add(client).add(daemon);
    const closeBoth = () => {
      client.destroy();
      daemon.destroy();
      sockets.delete(client);
      sockets.delete(daemon);
    };
    client.on('error', closeBoth).on('close', closeBoth);
    daemon.on('error', closeBoth).on('close', closeBoth);
    daemon.pipe(client);

    // Client to daemon: whole frames only, so that a held call is held entirely.
    let pending = Buffer.alloc(0);
    let held = false;
    client.on('data', (chunk: Buffer) => {
      if (held) return;
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (pending.length < length) break;
        const frame = pending.subarray(0, length);
        pending = pending.subarray(length);
        if (hold && length >= 20 && frame.readUInt32BE(4) === REMOTE_PROGRAM && frame.readInt32BE(16) === CALL && hold.procedures.includes(frame.readInt32BE(12))) {
          const { found } = hold;
          hold = undefined;
          held = true;
          found({ procedure: frame.readInt32BE(12), drop: closeBoth });
          return;
        }
        daemon.write(frame);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });

  return {
    uri: `qemu+unix:///system?socket=${socketPath}`,
    holdNext(procedures, timeoutMs) {
      if (hold) throw new Error('the libvirt proxy already holds out for another call');
      return new Promise<HeldLibvirtCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          hold = undefined;
          reject(new Error(`no libvirt call to procedure ${procedures.join(' or ')} came within ${timeoutMs} ms`));
        }, timeoutMs);
        hold = {
          procedures,
          found: (call) => {
            clearTimeout(timer);
            resolve(call);
          },
        };
      });
    },
    async close() {
      hold = undefined;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
