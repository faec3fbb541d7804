import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '@virtfleet/shared';

/**
 * Our own N-API addon (packages/agent/native/libvirt-ext) for the libvirt calls
 * that @unraid/libvirt lacks. Each call opens and closes its own read-only
 * connection on the libuv thread pool and rejects with libvirt's message.
 */
export interface LibvirtExt {
  /** libvirt's version on the far end, such as "9.0.0". */
  getLibVersion(uri: string): Promise<string>;
  /** The hypervisor's version, such as "7.2.22" for QEMU; "" when the driver does not know. */
  getHypervisorVersion(uri: string): Promise<string>;
  /** The capabilities XML (virConnectGetCapabilities). */
  getCapabilities(uri: string): Promise<string>;
  /** Defines the network from `xml` unless `name` exists, starts it and marks it autostart: "defined" or "existing". */
  ensureNetwork(uri: string, name: string, xml: string): Promise<string>;
  /** The domain's interfaces and their addresses from DHCP leases, as JSON (see DomainInterface). */
  domainAddresses(uri: string, domainName: string): Promise<string>;
}

/** One interface in domainAddresses' answer. */
export interface DomainInterface {
  name: string;
  hwaddr: string;
  addrs: { type: 'ipv4' | 'ipv6'; addr: string; prefix: number }[];
}

/** Where `npm run build:native -w @virtfleet/agent` puts the addon; the same from src/ and dist/. */
export const LIBVIRT_EXT_PATH = fileURLToPath(new URL('../../../native/libvirt-ext/build/Release/virtfleet_libvirt_ext.node', import.meta.url));

export type LibvirtExtLoad = { ok: true; ext: LibvirtExt } | { ok: false; reason: string };

let loaded: LibvirtExtLoad | undefined;

/** Loads the addon once per process. Never throws: a missing or broken build is reported as the reason. */
export function loadLibvirtExt(): LibvirtExtLoad {
  if (loaded) return loaded;
  try {
    const ext = createRequire(import.meta.url)(LIBVIRT_EXT_PATH) as Partial<LibvirtExt>;
    const missing = (['getLibVersion', 'getHypervisorVersion', 'getCapabilities', 'ensureNetwork', 'domainAddresses'] as const).filter((f) => typeof ext[f] !== 'function');
    loaded = missing.length === 0 ? { ok: true, ext: ext as LibvirtExt } : { ok: false, reason: `${LIBVIRT_EXT_PATH} lacks ${missing.join(', ')}` };
  } catch (err) {
    loaded = { ok: false, reason: `cannot load ${LIBVIRT_EXT_PATH}: ${errorMessage(err)}` };
  }
  return loaded;
}
