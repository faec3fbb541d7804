import { z } from 'zod';
import { DNS_LABEL } from './validation.js';

/** A host's virtfleet network, as the agent config describes it. */
export interface HostNetworkConfig {
  /** What specs name in `network`. */
  name: string;
  /** The Linux bridge VMs and containers share. */
  bridge: string;
  /** IPv4 CIDR, /16 to /28. */
  subnet: string;
  /** `nat`: guests reach out through the host; `isolated`: only each other and the host. */
  mode: 'nat' | 'isolated';
  netns?: string;
}

/** Where each kind of address comes from in a network's subnet. */
export interface AddressPlan {
  network: string;
  prefix: number;
  netmask: string;
  /** The host's address on the bridge, the guests' router. */
  gateway: string;
  /** VMs' DHCP range (libvirt's dnsmasq): the lower half, after the gateway. */
  dhcpStart: string;
  dhcpEnd: string;
  /** Containers' range (Docker's IPAM): the upper half, as a CIDR. */
  containerRange: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function toNumber(ip: string): number | undefined {
  const m = IPV4.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}
const toIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** The address plan of `subnet` (`a.b.c.d/p`, 16 ≤ p ≤ 28, d the network address), or why it cannot have one. */
export function addressPlan(subnet: string): AddressPlan | string {
  const [ip = '', bits = ''] = subnet.split('/');
  const base = toNumber(ip);
  const prefix = /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (base === undefined || !Number.isInteger(prefix)) return 'must be an IPv4 CIDR such as 10.253.0.0/24';
  if (prefix < 16 || prefix > 28) return 'must have a prefix from /16 to /28';
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) return `must start at its network address (${toIp(base - (base % size))}/${prefix})`;
  const half = size / 2;
  return {
    network: toIp(base),
    prefix,
    netmask: toIp((0xffffffff << (32 - prefix)) >>> 0),
    gateway: toIp(base + 1),
    dhcpStart: toIp(base + 2),
    dhcpEnd: toIp(base + half - 1),
    containerRange: `${toIp(base + half)}/${prefix + 1}`,
  };
}

/** `network` of a spec: `none`, or the name of a host network. */
export const SPEC_NETWORK_NONE = 'none';

export const hostNetworkSchema = z
  .object({
    /** Set the network up; off by default, since it adds a bridge (and NAT rules) to the host. */
    enabled: z.boolean().default(false),
    name: z.string().regex(DNS_LABEL, 'must be a DNS label').refine((n) => n !== SPEC_NETWORK_NONE, '"none" means no network').default('default'),
    bridge: z.string().regex(/^[a-z][a-z0-9_-]{0,14}$/, 'must be a Linux interface name: 1-15 of a-z, 0-9, "_" and "-", starting with a letter').default('vfbr0'),
    subnet: z
      .string()
      .default('10.253.0.0/24')
      .superRefine((s, ctx) => {
        const plan = addressPlan(s);
        if (typeof plan === 'string') ctx.addIssue({ code: 'custom', message: plan });
      }),
    mode: z.enum(['nat', 'isolated']).default('nat'),
    /**
     * The network namespace the engines' networking lives in, when not the
     * agent's own (the playground's hosts): VMs' published ports are set up there.
     */
    netns: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]+$/, 'must be an absolute path such as /run/netns/NAME')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ..')
      .optional(),
  })
  .strict();

/** The names under which a host network exists in libvirt and in Docker. */
export const engineNetworkName = (name: string): string => `virtfleet-${name}`;
