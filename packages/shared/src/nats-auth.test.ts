import { fromSeed } from '@nats-io/nkeys';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import {
  agentPermissions,
  coordinatorPermissions,
  createNatsUserKey,
  monitorPermissions,
  natsInboxPrefix,
  renderNatsAuthorization,
  type NatsAuthInput,
  type NatsPermissions,
  type NatsSubjectPermission,
} from './nats-auth.js';

const k = () => createNatsUserKey().publicKey;
const base = (): NatsAuthInput => ({
  coordinators: [{ name: 'c1', nkey: k() }],
  agents: [
    { name: 'h1', nkey: k() },
    { name: 'h2', nkey: k() },
  ],
  monitors: [{ name: 'm1', nkey: k() }],
});

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
/** What nats-server decides: allowed by some allow and by no deny. */
const permits = (side: NatsSubjectPermission, subject: string) => side.allow.some((a) => matches(a, subject)) && !side.deny.some((d) => matches(d, subject));

describe('NATS permissions per role', () => {
  const agent = agentPermissions('h1', ['h1']);
  const coordinator = coordinatorPermissions('c1');
  const monitor = monitorPermissions('m1');
  const cases: { name: string; who: NatsPermissions; op: 'publish' | 'subscribe'; subject: string; want: boolean }[] = [
    { name: 'agent: own telemetry', who: agent, op: 'publish', subject: 'virtfleet.telemetry.h1', want: true },
    { name: 'agent: own heartbeat', who: agent, op: 'publish', subject: 'virtfleet.heartbeat.h1', want: true },
    { name: 'agent: own lease', who: agent, op: 'publish', subject: '$KV.virtfleet_hosts.lease.h1', want: true },
    { name: 'agent: own fence record', who: agent, op: 'publish', subject: '$KV.virtfleet_hosts.fence.h1', want: true },
    { name: 'agent: direct get of its own lease', who: agent, op: 'publish', subject: '$JS.API.DIRECT.GET.KV_virtfleet_hosts.$KV.virtfleet_hosts.lease.h1', want: true },
    { name: 'agent: image metadata', who: agent, op: 'publish', subject: '$JS.API.STREAM.MSG.GET.OBJ_virtfleet_images', want: true },
    { name: 'agent: image chunk consumer', who: agent, op: 'publish', subject: '$JS.API.CONSUMER.CREATE.OBJ_virtfleet_images.oc_x_1.$O.virtfleet_images.C.abc', want: true },
    { name: 'agent: image flow control', who: agent, op: 'publish', subject: '$JS.FC.OBJ_virtfleet_images.oc_x_1.abcd', want: true },
    { name: 'agent: own inbox', who: agent, op: 'subscribe', subject: '_INBOX_agent_h1.abc.1', want: true },
    { name: 'agent: telemetry of h2', who: agent, op: 'publish', subject: 'virtfleet.telemetry.h2', want: false },
    { name: 'agent: telemetry of h10 (no prefix match)', who: agent, op: 'publish', subject: 'virtfleet.telemetry.h10', want: false },
    { name: 'agent: heartbeat of h2', who: agent, op: 'publish', subject: 'virtfleet.heartbeat.h2', want: false },
    { name: 'agent: lease of h2', who: agent, op: 'publish', subject: '$KV.virtfleet_hosts.lease.h2', want: false },
    { name: 'agent: fence record of h2', who: agent, op: 'publish', subject: '$KV.virtfleet_hosts.fence.h2', want: false },
    { name: "agent: a coordinator's probe", who: agent, op: 'publish', subject: '$KV.virtfleet_hosts.probe.c1', want: false },
    { name: 'agent: payload-addressed read of the lease bucket', who: agent, op: 'publish', subject: '$JS.API.STREAM.MSG.GET.KV_virtfleet_hosts', want: false },
    { name: "agent: direct get of h2's lease", who: agent, op: 'publish', subject: '$JS.API.DIRECT.GET.KV_virtfleet_hosts.$KV.virtfleet_hosts.lease.h2', want: false },
    { name: 'agent: the state bucket', who: agent, op: 'publish', subject: '$KV.virtfleet_state.workloads.w1', want: false },
    { name: 'agent: an event', who: agent, op: 'publish', subject: 'virtfleet.events.host.h1', want: false },
    { name: 'agent: writing an image', who: agent, op: 'publish', subject: '$O.virtfleet_images.C.abc', want: false },
    { name: 'agent: deleting a consumer', who: agent, op: 'publish', subject: '$JS.API.CONSUMER.DELETE.OBJ_virtfleet_images.oc_x_1', want: false },
    { name: 'agent: purging a stream', who: agent, op: 'publish', subject: '$JS.API.STREAM.PURGE.KV_virtfleet_hosts', want: false },
    { name: 'agent: a consumer on the lease bucket', who: agent, op: 'publish', subject: '$JS.API.CONSUMER.CREATE.KV_virtfleet_hosts.x.$KV.virtfleet_hosts.>', want: false },
    { name: 'agent: the shared default inbox', who: agent, op: 'subscribe', subject: '_INBOX.abc', want: false },
    { name: "agent: h2's inbox", who: agent, op: 'subscribe', subject: '_INBOX_agent_h2.abc', want: false },
    { name: 'agent: telemetry', who: agent, op: 'subscribe', subject: 'virtfleet.telemetry.h2', want: false },
    { name: 'coordinator: an event', who: coordinator, op: 'publish', subject: 'virtfleet.events.host.h1', want: true },
    { name: 'coordinator: the state bucket', who: coordinator, op: 'publish', subject: '$KV.virtfleet_state.workloads.w1', want: true },
    { name: 'coordinator: its probe', who: coordinator, op: 'publish', subject: '$KV.virtfleet_hosts.probe.c1', want: true },
    { name: 'coordinator: the JetStream API', who: coordinator, op: 'publish', subject: '$JS.API.STREAM.CREATE.VIRTFLEET_EVENTS', want: true },
    { name: 'coordinator: telemetry', who: coordinator, op: 'subscribe', subject: 'virtfleet.telemetry.h1', want: true },
    { name: 'coordinator: telemetry for a host', who: coordinator, op: 'publish', subject: 'virtfleet.telemetry.h1', want: false },
    { name: 'coordinator: heartbeat for a host', who: coordinator, op: 'publish', subject: 'virtfleet.heartbeat.h1', want: false },
    { name: "coordinator: a host's lease", who: coordinator, op: 'publish', subject: '$KV.virtfleet_hosts.lease.h1', want: false },
    { name: "coordinator: a host's fence record", who: coordinator, op: 'publish', subject: '$KV.virtfleet_hosts.fence.h1', want: false },
    { name: 'monitor: events', who: monitor, op: 'subscribe', subject: 'virtfleet.events.workload.w1', want: true },
    { name: 'monitor: own inbox', who: monitor, op: 'subscribe', subject: '_INBOX_monitor_m1.x', want: true },
    { name: 'monitor: ordered consumer of the event stream', who: monitor, op: 'publish', subject: '$JS.API.CONSUMER.CREATE.VIRTFLEET_EVENTS.oc_1', want: true },
    { name: 'monitor: pulling from it', who: monitor, op: 'publish', subject: '$JS.API.CONSUMER.MSG.NEXT.VIRTFLEET_EVENTS.oc_1', want: true },
    { name: 'monitor: telemetry', who: monitor, op: 'publish', subject: 'virtfleet.telemetry.h1', want: false },
    { name: 'monitor: an event', who: monitor, op: 'publish', subject: 'virtfleet.events.host.h1', want: false },
    { name: 'monitor: the stored event log', who: monitor, op: 'publish', subject: 'virtfleet.eventlog.host.h1', want: false },
    { name: "monitor: deleting the coordinator's consumers", who: monitor, op: 'publish', subject: '$JS.API.CONSUMER.DELETE.VIRTFLEET_EVENTS.oc_1', want: false },
    { name: 'monitor: a consumer on the state bucket', who: monitor, op: 'publish', subject: '$JS.API.CONSUMER.CREATE.KV_virtfleet_state.x', want: false },
    { name: 'monitor: telemetry', who: monitor, op: 'subscribe', subject: 'virtfleet.telemetry.h1', want: false },
    { name: 'monitor: the eventlog subjects', who: monitor, op: 'subscribe', subject: 'virtfleet.eventlog.host.h1', want: false },
  ];
  it.each(cases)('$name: $op $subject → $want', ({ who, op, subject, want }) => {
    expect(permits(who[op], subject)).toBe(want);
  });

  it('an agent speaking for several hosts (a simulated fleet) may publish for each of them and no other', () => {
    const fleet = agentPermissions('sim', ['sim-1', 'sim-2']);
    expect(['virtfleet.telemetry.sim-1', 'virtfleet.telemetry.sim-2', '$KV.virtfleet_hosts.lease.sim-2'].map((s) => permits(fleet.publish, s))).toEqual([true, true, true]);
    expect(permits(fleet.publish, 'virtfleet.telemetry.sim-3')).toBe(false);
    expect(permits(fleet.subscribe, '_INBOX_agent_sim.x')).toBe(true);
  });

  it('follows the configured bucket and stream names', () => {
    const assets = { leaseBucket: 'leases', imageBucket: 'imgs', eventStream: 'EV' };
    expect(permits(agentPermissions('h1', ['h1'], assets).publish, '$KV.leases.lease.h1')).toBe(true);
    expect(permits(agentPermissions('h1', ['h1'], assets).publish, '$KV.virtfleet_hosts.lease.h1')).toBe(false);
    expect(permits(agentPermissions('h1', ['h1'], assets).publish, '$JS.API.STREAM.MSG.GET.OBJ_imgs')).toBe(true);
    expect(permits(monitorPermissions('m1', assets).publish, '$JS.API.CONSUMER.MSG.NEXT.EV.x')).toBe(true);
    expect(permits(coordinatorPermissions('c1', assets).publish, '$KV.leases.lease.h1')).toBe(false);
  });
});

describe('renderNatsAuthorization', () => {
  it('renders one nkey user per identity, every value quoted, with its publish and subscribe permissions', () => {
    const input = base();
    const out = renderNatsAuthorization(input);
    const users = out.split('\n').filter((l) => l.includes('nkey:'));
    expect(users).toHaveLength(4);
    for (const id of [...input.coordinators, ...input.agents, ...input.monitors]) expect(out).toContain(`{ nkey: "${id.nkey}", permissions: {`);
    expect(out).toMatch(/^authorization \{\n {2}users = \[$/m);
    expect(out).toContain('"$KV.virtfleet_hosts.lease.h1"');
    expect(out).toContain('subscribe: { allow: ["_INBOX_agent_h2.>"] }');
    expect(out).toContain('deny: ["virtfleet.telemetry.>", "virtfleet.heartbeat.>", "$KV.virtfleet_hosts.lease.>", "$KV.virtfleet_hosts.fence.>"]');
    expect(out).toContain('subscribe: { allow: ["virtfleet.events.>", "_INBOX_monitor_m1.>"] }');
    // nats-server reads an unquoted $name as a variable: every subject must be inside quotes.
    const unquoted = out.replace(/"[^"]*"/g, '""').replace(/#.*$/gm, '');
    expect(unquoted).not.toMatch(/[$>*]/);
  });

  it('renders an empty user list when there is nobody, which nats-server reads as: nobody may connect', () => {
    expect(renderNatsAuthorization({ coordinators: [], agents: [], monitors: [] })).toContain('users = [\n  ]');
  });

  const seed = createNatsUserKey().seed;
  const rejections: { name: string; change: (i: NatsAuthInput) => void; field: string }[] = [
    { name: 'an agent id with a dot', change: (i) => (i.agents[0]!.name = 'h.1'), field: 'agents[0].name' },
    { name: 'an agent id that is a wildcard', change: (i) => (i.agents[0]!.name = '>'), field: 'agents[0].name' },
    { name: 'an agent id with a star', change: (i) => (i.agents[1]!.name = 'h*'), field: 'agents[1].name' },
    { name: 'an agent id with a quote', change: (i) => (i.agents[0]!.name = 'h1", permissions: { publish: ">" } }'), field: 'agents[0].name' },
    { name: 'an agent id with a newline', change: (i) => (i.agents[0]!.name = 'h1\n}'), field: 'agents[0].name' },
    { name: 'an agent id with a space', change: (i) => (i.agents[0]!.name = 'h 1'), field: 'agents[0].name' },
    { name: 'an empty agent id', change: (i) => (i.agents[0]!.name = ''), field: 'agents[0].name' },
    { name: 'an agent id of 64 characters', change: (i) => (i.agents[0]!.name = 'h'.repeat(64)), field: 'agents[0].name' },
    { name: 'a bad host id in hostIds', change: (i) => (i.agents[0]!.hostIds = ['h1', 'x.>']), field: 'agents[0].hostIds[1]' },
    { name: 'a coordinator name with $', change: (i) => (i.coordinators[0]!.name = '$c'), field: 'coordinators[0].name' },
    { name: 'a monitor name with a dot', change: (i) => (i.monitors[0]!.name = 'm.1'), field: 'monitors[0].name' },
    { name: 'a seed instead of a public key', change: (i) => (i.agents[0]!.nkey = seed), field: 'agents[0].nkey' },
    { name: 'an nkey that is not base32', change: (i) => (i.agents[0]!.nkey = `U${'!'.repeat(55)}`), field: 'agents[0].nkey' },
    { name: 'an nkey with a bad checksum', change: (i) => (i.monitors[0]!.nkey = `${i.monitors[0]!.nkey.slice(0, -1)}${i.monitors[0]!.nkey.endsWith('A') ? 'B' : 'A'}`), field: 'monitors[0].nkey' },
    { name: 'an nkey with a quote', change: (i) => (i.coordinators[0]!.nkey = 'U"'), field: 'coordinators[0].nkey' },
    { name: 'two agents with one name', change: (i) => (i.agents[1]!.name = 'h1'), field: 'agents[1].name' },
    { name: 'two users with one nkey', change: (i) => (i.monitors[0]!.nkey = i.agents[1]!.nkey), field: 'monitors[0].nkey' },
    { name: 'one host claimed by two agents', change: (i) => (i.agents[1]!.hostIds = ['h2', 'h1']), field: 'agents[1].hostIds[1]' },
    { name: 'a lease bucket with a dot', change: (i) => (i.leaseBucket = 'a.b'), field: 'leaseBucket' },
    { name: 'an image bucket with a quote', change: (i) => (i.imageBucket = 'a"b'), field: 'imageBucket' },
    { name: 'an event stream with a wildcard', change: (i) => (i.eventStream = 'E*'), field: 'eventStream' },
  ];
  it.each(rejections)('rejects $name, naming $field', ({ change, field }) => {
    const input = base();
    change(input);
    let thrown: unknown;
    try {
      renderNatsAuthorization(input);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect((thrown as InvalidArgumentError).field).toBe(field);
  });
});

describe('natsInboxPrefix and createNatsUserKey', () => {
  it('gives each role its own inbox prefix, so a monitor named like a host does not share its inbox', () => {
    expect(natsInboxPrefix('agent', 'h1')).toBe('_INBOX_agent_h1');
    expect(natsInboxPrefix('monitor', 'h1')).toBe('_INBOX_monitor_h1');
    expect(() => natsInboxPrefix('agent', 'h1.>')).toThrow(InvalidArgumentError);
  });

  it('makes a user seed whose public key is the one returned', () => {
    const { seed, publicKey } = createNatsUserKey();
    expect(seed).toMatch(/^SU[A-Z2-7]+$/);
    expect(publicKey).toMatch(/^U[A-Z2-7]{55}$/);
    expect(fromSeed(new TextEncoder().encode(seed)).getPublicKey()).toBe(publicKey);
    expect(createNatsUserKey().publicKey).not.toBe(publicKey);
  });
});
