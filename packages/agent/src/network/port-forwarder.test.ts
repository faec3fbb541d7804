import { describe, expect, it } from 'vitest';
import { rulesOf, splitRule } from './port-forwarder.js';

describe('published port rules', () => {
  it('DNATs each host port to the VM (arriving and from the host) and accepts it through FORWARD, commented with the workload', () => {
    const rules = rulesOf({ workloadId: 'web-1a2b', address: '10.253.0.7', ports: [{ host_port: 8080, port: 80, protocol: 'tcp' }] });
    const comment = ['-m', 'comment', '--comment', 'virtfleet:web-1a2b'];
    const dnat = ['-p', 'tcp', '--dport', '8080', '-m', 'addrtype', '--dst-type', 'LOCAL', ...comment, '-j', 'DNAT', '--to-destination', '10.253.0.7:80'];
    expect(rules).toEqual([
      { table: 'nat', chain: 'PREROUTING', args: dnat },
      { table: 'nat', chain: 'OUTPUT', args: dnat },
      { table: 'filter', chain: 'FORWARD', args: ['-d', '10.253.0.7/32', '-p', 'tcp', '--dport', '80', ...comment, '-j', 'ACCEPT'] },
    ]);
    expect(rulesOf({ workloadId: 'w', address: '10.253.0.8', ports: [] })).toEqual([]);
  });

  it.each([
    { line: '-A FORWARD -d 10.253.0.7/32 -p tcp -m tcp --dport 80 -m comment --comment "virtfleet:web-1" -j ACCEPT', words: ['-A', 'FORWARD', '-d', '10.253.0.7/32', '-p', 'tcp', '-m', 'tcp', '--dport', '80', '-m', 'comment', '--comment', 'virtfleet:web-1', '-j', 'ACCEPT'] },
    { line: '-A OUTPUT -m comment --comment virtfleet:w -j DNAT', words: ['-A', 'OUTPUT', '-m', 'comment', '--comment', 'virtfleet:w', '-j', 'DNAT'] },
  ])('reads an iptables-save line: $line', ({ line, words }) => {
    expect(splitRule(line)).toEqual(words);
  });
});
