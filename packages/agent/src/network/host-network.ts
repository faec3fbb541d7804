import Docker from 'dockerode';
import { Builder } from 'xml2js';
import { addressPlan, engineNetworkName, errorMessage, type AddressPlan, type HostNetworkConfig, type Logger } from '@virtfleet/shared';
import type { LibvirtExtLoad } from '../drivers/libvirt/native-ext.js';
import { every, type Periodic } from '../periodic.js';

const builder = new Builder({ headless: true, renderOpts: { pretty: false } });
const RETRY_MS = 10_000;

/** The libvirt network that owns the bridge: its dnsmasq hands VMs addresses from the lower half of the subnet. */
export function libvirtNetworkXml(config: HostNetworkConfig, plan: AddressPlan): string {
  return builder.buildObject({
    network: {
      name: engineNetworkName(config.name),
      ...(config.mode === 'nat' ? { forward: { $: { mode: 'nat' } } } : {}),
      bridge: { $: { name: config.bridge, stp: 'off', delay: '0' } },
      ip: { $: { address: plan.gateway, netmask: plan.netmask }, dhcp: { range: { $: { start: plan.dhcpStart, end: plan.dhcpEnd } } } },
    },
  });
}

/**
 * Docker's network on the same bridge, handing containers addresses from the
 * upper half. When libvirt made the bridge it already holds the gateway
 * address, so Docker must leave the bridge's address alone.
 */
export function dockerNetworkOptions(config: HostNetworkConfig, plan: AddressPlan, bridgeOwnedByLibvirt: boolean): Docker.NetworkCreateOptions {
  return {
    Name: engineNetworkName(config.name),
    Driver: 'bridge',
    CheckDuplicate: true,
    IPAM: { Driver: 'default', Config: [{ Subnet: `${plan.network}/${plan.prefix}`, Gateway: plan.gateway, IPRange: plan.containerRange }] },
    Options: {
      'com.docker.network.bridge.name': config.bridge,
      ...(bridgeOwnedByLibvirt ? { 'com.docker.network.bridge.inhibit_ipv4': 'true' } : {}),
    },
    Labels: { 'io.virtfleet.network': config.name },
  };
}

export interface HostNetworkEngines {
  /** The libvirt driver's URI and the addon that defines networks; absent without the libvirt driver. */
  libvirt?: { uri: string; ext: LibvirtExtLoad };
  /** The Docker driver's socket; absent without the Docker driver. */
  dockerSocket?: string;
}

/**
 * The host's virtfleet network: one bridge shared by VMs and containers, so
 * they reach each other directly. libvirt owns the bridge when it runs here
 * (a network with NAT or none, and DHCP for VMs); Docker joins it. Set up
 * at start and tried again every 10 s until both engines have it; `ready`
 * says whether workloads may ask for it (telemetry reports it only then).
 */
export class HostNetwork {
  private done = false;
  private retry: Periodic | undefined;
  private running: Promise<void> | undefined;
  readonly plan: AddressPlan;

  constructor(
    readonly config: HostNetworkConfig,
    private readonly engines: HostNetworkEngines,
    private readonly log: Logger,
  ) {
    const plan = addressPlan(config.subnet);
    if (typeof plan === 'string') throw new Error(`network.subnet ${plan}`);
    this.plan = plan;
  }

  get name(): string {
    return this.config.name;
  }

  get netns(): string | undefined {
    return this.config.netns;
  }

  get ready(): boolean {
    return this.done;
  }

  /** Sets up now, and keeps trying in the background until it succeeds. */
  async start(): Promise<void> {
    await this.attempt();
    if (!this.done) this.retry = every(RETRY_MS, () => void this.attempt());
  }

  stop(): void {
    this.retry?.stop();
  }

  private attempt(): Promise<void> {
    this.running ??= this.setUp()
      .then(() => {
        this.done = true;
        this.retry?.stop();
        this.log.info({ network: this.config.name, bridge: this.config.bridge, subnet: this.config.subnet, mode: this.config.mode }, 'host network ready');
      })
      .catch((err: unknown) => this.log.warn({ network: this.config.name, err: errorMessage(err) }, 'host network not set up yet; trying again'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async setUp(): Promise<void> {
    const { libvirt, dockerSocket } = this.engines;
    if (libvirt) {
      if (!libvirt.ext.ok) throw new Error(`the libvirt-ext addon is needed to define networks: ${libvirt.ext.reason}`);
      await libvirt.ext.ext.ensureNetwork(libvirt.uri, engineNetworkName(this.config.name), libvirtNetworkXml(this.config, this.plan));
    }
    if (dockerSocket) {
      const docker = new Docker({ socketPath: dockerSocket });
      const name = engineNetworkName(this.config.name);
      const exists = await docker
        .getNetwork(name)
        .inspect()
        .then(() => true)
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode === 404) return false;
          throw err;
        });
      if (!exists) await docker.createNetwork(dockerNetworkOptions(this.config, this.plan, libvirt !== undefined));
    }
  }
}
