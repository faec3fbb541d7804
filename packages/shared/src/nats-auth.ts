import { createUser, fromPublic } from '@nats-io/nkeys';
import { InvalidArgumentError } from './errors.js';
import { EVENT_SUBJECT_PREFIX } from './events.js';
import { DEFAULT_HOST_LEASE_BUCKET, FENCE_RECORD_PREFIX, HOST_LEASE_PREFIX } from './host-lease.js';
import { DEFAULT_IMAGE_BUCKET } from './images.js';
import { HEARTBEAT_SUBJECT_PREFIX, TELEMETRY_SUBJECT_PREFIX } from './telemetry.js';
import { HOST_ID } from './validation.js';

/**
 * NATS authentication and authorization for a virtfleet cluster: one nkey
 * user per agent, per coordinator and per monitoring consumer, each with the
 * subjects it needs and no others (issue 12, item 3).
 *
 * What each process does on NATS today, and so what its user may do. A
 * subject not allowed is refused by nats-server: a publish is dropped and the
 * client gets a permissions violation, a subscription gets nothing.
 *
 * **Agent** (host `H`; lease bucket `L` = agent `fencing.bucket` = coordinator
 * `hosts.leaseBucket`; image bucket `I` = `images.bucket`). The fencer
 * process (`virtfleet fencer`) and the agent's fencer supervisor use the
 * same user as their agent.
 * - publish `virtfleet.telemetry.H`, `virtfleet.heartbeat.H`: its own
 *   telemetry and heartbeat (`telemetry-publisher.ts`, `heartbeat.ts`).
 * - publish `$KV.L.lease.H`: renewing its host lease (`fencing/host-lease.ts`).
 * - publish `$KV.L.fence.H`: its fence record (`host-lease.ts`,
 *   `fencer-supervisor.ts`).
 * - publish `$JS.API.DIRECT.GET.KV_L.$KV.L.lease.H`: reading its previous
 *   run's lease when it starts. This is the one JetStream read the lease
 *   needs, and only a direct get names the key in the subject; the
 *   payload-addressed `$JS.API.STREAM.MSG.GET.KV_L` (what `Kvm.open` uses
 *   without `allow_direct: true`) would read any key and is not allowed.
 * - publish `$JS.API.INFO`, `$JS.API.STREAM.INFO.OBJ_I`: `Objm.open` checks
 *   the JetStream API and the bucket (`images/catalog-source.ts`).
 * - publish `$JS.API.STREAM.MSG.GET.OBJ_I`: an image's metadata (`info`, and
 *   the first step of `get`); the catalog is readable by every agent.
 * - publish `$JS.API.CONSUMER.CREATE.OBJ_I.*.$O.I.C.*`: `get` streams an
 *   image's chunks through an ordered push consumer filtered on one object's
 *   chunk subject, and `$JS.FC.OBJ_I.>` to answer JetStream's flow control
 *   during a large image. Not `CONSUMER.DELETE`: an ordered consumer that
 *   the client replaces after a gap is deleted best effort (the refusal is
 *   ignored, and it lapses after its inactive threshold), and with it one
 *   agent could cut off another's image downloads.
 * - subscribe `_INBOX_agent_H.>` only: replies (KV acknowledgements, API
 *   responses) and image chunks. The client must connect with
 *   `inboxPrefix: natsInboxPrefix('agent', H)`: with the default `_INBOX`
 *   every agent would need `_INBOX.>` and could read every other agent's
 *   replies.
 *
 * **Coordinator**: publish and subscribe `>`, except that it may not publish
 * telemetry, heartbeats, or any host's lease or fence record (a coordinator
 * never speaks for a host; those are what failover trusts). Broad because it
 * owns the cluster's JetStream assets: it creates and updates the state
 * bucket (workloads, queue, leader lease, tokens), the lease bucket (and
 * writes its probes `$KV.L.probe.<id>` there), the image store, and the
 * event stream; it reads telemetry and heartbeats of every host and host
 * events, and watches buckets through consumers. Listing those subjects
 * would only restate its config; a coordinator holds every workload spec
 * and commands every agent over gRPC anyway, so narrowing it protects little.
 *
 * **Monitor** (event stream `E` = coordinator `events.stream`): subscribe
 * `virtfleet.events.>` (the plain copy of each stored event) and its own
 * inbox `_INBOX_monitor_<name>.>`; publish only the JetStream reads an
 * ordered consumer of `E` needs: `$JS.API.INFO`, `$JS.API.STREAM.INFO.E`,
 * `$JS.API.CONSUMER.CREATE.E.>`, `$JS.API.CONSUMER.INFO.E.*`,
 * `$JS.API.CONSUMER.MSG.NEXT.E.*`. Not `CONSUMER.DELETE` (the coordinator's
 * own consumers of `E` live there; an ordered consumer that is replaced
 * simply lapses after its inactive threshold), not acks (ordered consumers
 * take none).
 *
 * Known limits, which subject permissions cannot close:
 * - A user allowed to create a push consumer can have nats-server deliver the
 *   stream's messages to any subject, one it may not publish to itself
 *   (nats-io/nats-server#8274): a monitor can replay genuine old events onto
 *   `virtfleet.events.host.*`, an agent can send catalog image chunks
 *   anywhere. Nothing it sends is its own: only messages the coordinator
 *   stored. Followers that act on host events should ignore replays.
 * - A JetStream publish's reply subject is not checked either: an agent can
 *   have its KV acknowledgement (`{"stream":…,"seq":…}`) sent anywhere.
 * - `Nats-Rollup: all` on a publish to its own lease key purges every key
 *   of the lease bucket (every host's lease and fence record), unless the
 *   bucket's stream refuses roll-ups (`LEASE_BUCKET_STREAM_HARDENING`).
 */

/** A connection's role; it decides the permission set and the inbox prefix. */
export const NATS_ROLES = ['coordinator', 'agent', 'monitor', 'admin'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

/** One NATS user: a name (a host id for an agent) and its nkey's public key. */
export interface NatsIdentity {
  /** Coordinator id, agent host id, or monitor name; letters, digits, `-`, `_`. */
  name: string;
  /** The user's public nkey (`U…`), from `createNatsUserKey`. */
  nkey: string;
}

/** An agent user; `hostIds` when one process speaks for several hosts (a simulated fleet). */
export interface NatsAgentIdentity extends NatsIdentity {
  /** The hosts this user may publish telemetry and leases for. @default [name] */
  hostIds?: string[];
}

/** Names of the JetStream assets whose subjects the permissions spell out. */
export interface NatsAuthAssets {
  /** Coordinator `hosts.leaseBucket`, agent `fencing.bucket`. @default 'virtfleet_hosts' */
  leaseBucket?: string;
  /** `images.bucket` on both. @default 'virtfleet_images' */
  imageBucket?: string;
  /** Coordinator `events.stream`. @default 'VIRTFLEET_EVENTS' */
  eventStream?: string;
}

export interface NatsAuthInput extends NatsAuthAssets {
  coordinators: NatsIdentity[];
  agents: NatsAgentIdentity[];
  monitors: NatsIdentity[];
  /** People with the `nats` CLI who inspect or repair streams: everything is allowed. */
  admins?: NatsIdentity[];
}

export interface NatsSubjectPermission {
  allow: string[];
  deny: string[];
}

export interface NatsPermissions {
  publish: NatsSubjectPermission;
  subscribe: NatsSubjectPermission;
}

export const DEFAULT_EVENT_STREAM = 'VIRTFLEET_EVENTS';

/** A bucket or stream name as the daemons' configs accept it. */
const ASSET_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** What may be spliced into the config inside double quotes: subject characters, no quote, backslash or space. */
const SAFE_SUBJECT = /^[A-Za-z0-9_$.*>-]+$/;

/**
 * The lease bucket's stream setting that keeps an agent from purging the
 * whole bucket with a `Nats-Rollup: all` header on its own key (subject
 * permissions cannot see headers). KV keeps working without roll-ups: agents
 * only put, and the coordinator never deletes or purges lease-bucket keys.
 * `Kvm.create` leaves an existing bucket's config as it is, so set once it
 * stays set across coordinator restarts.
 */
export const LEASE_BUCKET_STREAM_HARDENING = { allow_rollup_hdrs: false } as const;

/**
 * The inbox prefix a connection must pass to `connect({ inboxPrefix })`;
 * its user may subscribe only under it. Role-qualified, so a monitor named
 * like a host does not share that host's inbox.
 */
export function natsInboxPrefix(role: NatsRole, name: string): string {
  return `_INBOX_${role}_${checkName(name, `${role}.name`)}`;
}

/** A new user nkey: the seed is the secret its process connects with, the public key goes into the server config. */
export function createNatsUserKey(): { seed: string; publicKey: string } {
  const kp = createUser();
  const seed = new TextDecoder().decode(kp.getSeed());
  const publicKey = kp.getPublicKey();
  kp.clear();
  return { seed, publicKey };
}

/** The permissions of an agent user that speaks for `hostIds`. */
export function agentPermissions(name: string, hostIds: string[], assets: NatsAuthAssets = {}): NatsPermissions {
  const { leaseBucket, imageBucket } = resolveAssets(assets);
  const ids = hostIds.map((id, i) => checkName(id, `agents.${name}.hostIds[${i}]`));
  const lease = `$KV.${leaseBucket}`;
  const images = `OBJ_${imageBucket}`;
  return {
    publish: {
      allow: [
        ...ids.flatMap((id) => [
          `${TELEMETRY_SUBJECT_PREFIX}.${id}`,
          `${HEARTBEAT_SUBJECT_PREFIX}.${id}`,
          `${lease}.${HOST_LEASE_PREFIX}${id}`,
          `${lease}.${FENCE_RECORD_PREFIX}${id}`,
          `$JS.API.DIRECT.GET.KV_${leaseBucket}.${lease}.${HOST_LEASE_PREFIX}${id}`,
        ]),
        '$JS.API.INFO',
        `$JS.API.STREAM.INFO.${images}`,
        `$JS.API.STREAM.MSG.GET.${images}`,
        `$JS.API.CONSUMER.CREATE.${images}.*.$O.${imageBucket}.C.*`,
        `$JS.FC.${images}.>`,
      ],
      deny: [],
    },
    subscribe: { allow: [`${natsInboxPrefix('agent', name)}.>`], deny: [] },
  };
}

/** The permissions of a coordinator user: everything but speaking for a host. */
export function coordinatorPermissions(name: string, assets: NatsAuthAssets = {}): NatsPermissions {
  checkName(name, 'coordinators.name');
  const { leaseBucket } = resolveAssets(assets);
  return {
    publish: {
      allow: ['>'],
      deny: [`${TELEMETRY_SUBJECT_PREFIX}.>`, `${HEARTBEAT_SUBJECT_PREFIX}.>`, `$KV.${leaseBucket}.${HOST_LEASE_PREFIX}>`, `$KV.${leaseBucket}.${FENCE_RECORD_PREFIX}>`],
    },
    subscribe: { allow: ['>'], deny: [] },
  };
}

/** The permissions of a monitoring user: events, read only. */
export function monitorPermissions(name: string, assets: NatsAuthAssets = {}): NatsPermissions {
  const { eventStream } = resolveAssets(assets);
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        `$JS.API.STREAM.INFO.${eventStream}`,
        `$JS.API.CONSUMER.CREATE.${eventStream}.>`,
        `$JS.API.CONSUMER.INFO.${eventStream}.*`,
        `$JS.API.CONSUMER.MSG.NEXT.${eventStream}.*`,
      ],
      deny: [],
    },
    subscribe: { allow: [`${EVENT_SUBJECT_PREFIX}.>`, `${natsInboxPrefix('monitor', name)}.>`], deny: [] },
  };
}

/** The permissions of an admin user: every subject, as nats-server's own operators have. */
export function adminPermissions(name: string): NatsPermissions {
  checkName(name, 'admins.name');
  return { publish: { allow: ['>'], deny: [] }, subscribe: { allow: ['>'], deny: [] } };
}

/**
 * Renders the nats-server (2.9) `authorization { users = [...] }` block: one
 * nkey user per identity with its permissions. Every name must be a valid
 * host id, every nkey a user public key, names unique within a role and
 * nkeys unique overall; anything else throws InvalidArgumentError naming the
 * field. A client presenting no nkey, or one not listed, cannot connect.
 */
export function renderNatsAuthorization(input: NatsAuthInput): string {
  const assets = resolveAssets(input);
  const roles: [NatsRole, NatsAgentIdentity[], (identity: NatsAgentIdentity) => NatsPermissions][] = [
    ['coordinator', input.coordinators, ({ name }) => coordinatorPermissions(name, assets)],
    ['agent', input.agents, (a) => agentPermissions(a.name, a.hostIds ?? [a.name], assets)],
    ['monitor', input.monitors, ({ name }) => monitorPermissions(name, assets)],
    ['admin', input.admins ?? [], ({ name }) => adminPermissions(name)],
  ];
  const nkeys = new Map<string, string>();
  for (const [role, list] of roles) {
    const names = new Set<string>();
    list.forEach((identity, i) => {
      const name = checkName(identity.name, `${role}s[${i}].name`);
      const nkey = checkNkey(identity.nkey, `${role}s[${i}].nkey`);
      if (names.has(name)) throw new InvalidArgumentError(`${role}s[${i}].name`, `${role} ${name} appears twice`);
      const other = nkeys.get(nkey);
      if (other) throw new InvalidArgumentError(`${role}s[${i}].nkey`, `is already the nkey of ${other}`);
      names.add(name);
      nkeys.set(nkey, `${role} ${name}`);
    });
  }
  const hosts = new Map<string, string>();
  input.agents.forEach((agent, i) => {
    (agent.hostIds ?? [agent.name]).forEach((id, j) => {
      const field = `agents[${i}].hostIds[${j}]`;
      checkName(id, field);
      const owner = hosts.get(id);
      if (owner !== undefined && owner !== agent.name) throw new InvalidArgumentError(field, `host ${id} is already agent ${owner}'s`);
      hosts.set(id, agent.name);
    });
  });
  const users = roles.flatMap(([role, list, permissions]) => list.map((identity) => ({ comment: `${role} ${identity.name}`, nkey: identity.nkey, permissions: permissions(identity) })));

  const list = (subjects: string[]) => `[${subjects.map((s) => quote(s)).join(', ')}]`;
  const side = (p: NatsSubjectPermission) => (p.deny.length > 0 ? `{ allow: ${list(p.allow)}, deny: ${list(p.deny)} }` : `{ allow: ${list(p.allow)} }`);
  const lines = ['# Generated by virtfleet: one nkey user per identity. Do not edit; generate it again.', 'authorization {', '  users = ['];
  for (const u of users) {
    lines.push(`    # ${u.comment}`, `    { nkey: ${quote(u.nkey)}, permissions: {`, `      publish: ${side(u.permissions.publish)}`, `      subscribe: ${side(u.permissions.subscribe)}`, '    } }');
  }
  lines.push('  ]', '}', '');
  return lines.join('\n');
}

function resolveAssets(assets: NatsAuthAssets): Required<NatsAuthAssets> {
  const resolved = {
    leaseBucket: assets.leaseBucket ?? DEFAULT_HOST_LEASE_BUCKET,
    imageBucket: assets.imageBucket ?? DEFAULT_IMAGE_BUCKET,
    eventStream: assets.eventStream ?? DEFAULT_EVENT_STREAM,
  };
  for (const [field, value] of Object.entries(resolved)) {
    if (!ASSET_NAME.test(value)) throw new InvalidArgumentError(field, `${JSON.stringify(value)} must be 1-64 letters, digits, "_" or "-"`);
  }
  return resolved;
}

function checkName(name: unknown, field: string): string {
  if (typeof name !== 'string' || !HOST_ID.test(name)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(name)} must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric`);
  }
  return name;
}

function checkNkey(nkey: unknown, field: string): string {
  const reason = 'must be a NATS user public nkey (U…, from createNatsUserKey)';
  if (typeof nkey !== 'string' || !nkey.startsWith('U')) throw new InvalidArgumentError(field, reason);
  try {
    fromPublic(nkey);
  } catch (err) {
    throw new InvalidArgumentError(field, reason, { cause: err });
  }
  return nkey;
}

/** Every spliced string has been validated; this refuses anything that could still break out of its quotes. */
function quote(value: string): string {
  if (!SAFE_SUBJECT.test(value)) throw new InvalidArgumentError('subject', `${JSON.stringify(value)} cannot be written into the server config`);
  return `"${value}"`;
}
