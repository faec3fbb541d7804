import { parseStringPromise } from 'xml2js';
import { describe, expect, it } from 'vitest';
import { addressPlan, hostNetworkSchema, type AddressPlan } from '@virtfleet/shared';
import { dockerNetworkOptions, libvirtNetworkXml } from './host-network.js';

const config = hostNetworkSchema.parse({ enabled: true });
const plan = addressPlan(config.subnet) as AddressPlan;

describe('host network definitions', () => {
  it.each([
    { mode: 'nat' as const, forward: [{ $: { mode: 'nat' } }] },
    { mode: 'isolated' as const, forward: undefined },
  ])('libvirt network in $mode mode: bridge, gateway and the DHCP range of the lower half', async ({ mode, forward }) => {
    const { network } = (await parseStringPromise(libvirtNetworkXml({ ...config, mode }, plan))) as { network: Record<string, unknown> };
    expect(network.name).toEqual(['virtfleet-default']);
    expect(network.forward).toEqual(forward);
    expect(network.bridge).toEqual([{ $: { name: 'vfbr0', stp: 'off', delay: '0' } }]);
    expect(network.ip).toEqual([{ $: { address: '10.253.0.1', netmask: '255.255.255.0' }, dhcp: [{ range: [{ $: { start: '10.253.0.2', end: '10.253.0.127' } }] }] }]);
  });

  it.each([
    { libvirt: true, inhibit: 'true' },
    { libvirt: false, inhibit: undefined },
  ])('Docker network on the same bridge, the upper half for containers (libvirt owns the bridge: $libvirt)', ({ libvirt, inhibit }) => {
    const options = dockerNetworkOptions(config, plan, libvirt);
    expect(options).toMatchObject({ Name: 'virtfleet-default', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.253.0.0/24', Gateway: '10.253.0.1', IPRange: '10.253.0.128/25' }] } });
    expect(options.Options?.['com.docker.network.bridge.name']).toBe('vfbr0');
    expect(options.Options?.['com.docker.network.bridge.inhibit_ipv4']).toBe(inhibit);
  });

  it.each([
    { input: { bridge: 'br0; rm -rf /' }, field: 'bridge' },
    { input: { bridge: 'averyveryverylongname' }, field: 'bridge' },
    { input: { subnet: '10.0.0.0/8' }, field: 'subnet' },
    { input: { name: 'none' }, field: 'name' },
    { input: { mode: 'routed' }, field: 'mode' },
  ])('refuses $input in config', ({ input, field }) => {
    const result = hostNetworkSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual([field]);
  });
});
