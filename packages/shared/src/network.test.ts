import { describe, expect, it } from 'vitest';
import { addressPlan } from './network.js';

describe('addressPlan', () => {
  it('splits a /24: gateway .1, VMs .2-.127 by DHCP, containers .128/25', () => {
    expect(addressPlan('10.253.0.0/24')).toEqual({
      network: '10.253.0.0',
      prefix: 24,
      netmask: '255.255.255.0',
      gateway: '10.253.0.1',
      dhcpStart: '10.253.0.2',
      dhcpEnd: '10.253.0.127',
      containerRange: '10.253.0.128/25',
    });
  });
  it('splits a /16 and a /28 the same way', () => {
    expect(addressPlan('172.20.0.0/16')).toMatchObject({ netmask: '255.255.0.0', dhcpEnd: '172.20.127.255', containerRange: '172.20.128.0/17' });
    expect(addressPlan('192.168.9.16/28')).toMatchObject({ gateway: '192.168.9.17', dhcpStart: '192.168.9.18', dhcpEnd: '192.168.9.23', containerRange: '192.168.9.24/29' });
  });
  it.each([
    { subnet: '10.253.0.0', why: /IPv4 CIDR/ },
    { subnet: '10.253.0.300/24', why: /IPv4 CIDR/ },
    { subnet: '10.0.0.0/8', why: /\/16 to \/28/ },
    { subnet: '10.0.0.0/30', why: /\/16 to \/28/ },
    { subnet: '10.253.0.5/24', why: /network address \(10\.253\.0\.0\/24\)/ },
  ])('refuses $subnet', ({ subnet, why }) => {
    expect(addressPlan(subnet)).toMatch(why);
  });
});
