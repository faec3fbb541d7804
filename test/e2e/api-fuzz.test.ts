import { createHash } from 'node:crypto';
import { status, type Client, type ServiceDefinition } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateFiles, channelCredentials, CLIENT_MAX_RECEIVE_MESSAGE_BYTES, loadAgentProto, loadCoordinatorProto, TLS_CHANNEL_OPTIONS, type pb } from '@virtfleet/shared';
import { agentFuzz, operatorFuzz, validContainerSpec, type AgentWorld, type OperatorWorld } from '../support/api-fuzz-inputs.js';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { bounded, callRaw, preview, REFUSALS, shapesOf, Tally, type MethodFuzz, type Outcome } from '../support/grpc-fuzz.js';
import { waitFor, waitUntil } from '../support/wait.js';

/*
 * Property-based fuzzing of every method of the operator API and of the
 * agent's API over real gRPC with mutual TLS (issue 12, "Hardening the
 * inputs"): at least FUZZ_RUNS (10,000) generated inputs per API, fired 32 at
 * a time. Every call is answered OK or refused with a status that says why
 * (never UNKNOWN or INTERNAL; INVALID_ARGUMENT names its field), no daemon
 * dies or reports an unhandled rejection, and a batch of refused calls
 * changes nothing an operator can see. FUZZ_SEED replays a run.
 *
 * The agent runs the fake driver: what a generated create would make is simulated.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 1205);
/** Generated inputs per API. */
const INPUTS = Number(process.env.FUZZ_RUNS ?? 10_000);
const IN_FLIGHT = 32;
const DEADLINE_MS = 10_000;
/** At least this share of the generated inputs must reach a handler and be refused with INVALID_ARGUMENT naming a field. */
const MIN_INVALID_SHARE = 0.4;
const CRASH = /unhandled rejection|uncaught exception|UnhandledPromiseRejection|FATAL ERROR|heap out of memory/i;

const COORDINATOR_SERVICE = loadCoordinatorProto().Coordinator.service as ServiceDefinition;
const AGENT_SERVICE = loadAgentProto().Agent.service as ServiceDefinition;

const container = (name: string): pb.WorkloadSpec => ({ name, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 16 });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Asserts that one call was answered as a server that understood it answers: OK, or a refusal that says why. */
function expectAnswered(o: Outcome, fuzz: MethodFuzz): void {
  const what = `${o.method}(${preview(o.input)}) answered ${status[o.code] ?? o.code}: ${o.details.slice(0, 400)}`;
  expect([status.OK, ...REFUSALS, ...(fuzz.alsoExpected ?? [])], what).toContain(o.code);
  // grpc-js's own RESOURCE_EXHAUSTED (a message over the limit) names no field; a handler's INVALID_ARGUMENT always does.
  expect(o.code !== status.INVALID_ARGUMENT || (o.field !== '' && o.details.startsWith(`${o.field}: `)), `${what}: INVALID_ARGUMENT without a field`).toBe(true);
  expect(!fuzz.refusedByConstruction || o.code !== status.OK, `${what}: an input built to be refused was accepted`).toBe(true);
  // A batch answers each command as it would have been answered alone: refused, or a delete of nothing done.
  if (o.method === 'RunCommands' && o.code === status.OK) {
    for (const r of (o.reply as pb.CommandBatchResult__Output).results) {
      const e = r.error;
      const got = e ? `${status[e.code] ?? e.code} ${e.field}: ${e.message.slice(0, 200)}` : `status ${r.status?.state}`;
      expect(e ? REFUSALS.includes(e.code) && (e.code !== status.INVALID_ARGUMENT || e.field !== '') : r.status?.state === 'deleted', `${what}: a command of the batch ended ${got}`).toBe(true);
    }
  }
}

/** The lines of a daemon's output that say it crashed or left a rejection unhandled. */
const crashes = (output: string[]) => output.join('').split('\n').filter((l) => CRASH.test(l));

/**
 * Fires `INPUTS` generated calls at a service: each property run is one call
 * of every method, 32 at a time, between two looks at `state`.
 */
async function fuzzService(client: Client, service: ServiceDefinition, table: Record<string, MethodFuzz>, state: () => Promise<unknown>): Promise<{ tally: Tally; ms: number }> {
  const methods = Object.keys(service);
  const tally = new Tally();
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(fc.tuple(...methods.map((m) => table[m]!.input)), async (inputs) => {
      const before = await state();
      const outcomes = await bounded(
        inputs.map((input, i) => () => callRaw(client, service[methods[i]!]!, methods[i]!, input, DEADLINE_MS)),
        IN_FLIGHT,
      );
      for (const o of outcomes) {
        tally.add(o);
        expectAnswered(o, table[o.method]!);
      }
      expect(await state(), 'what an operator sees after a batch of calls that were refused or changed nothing').toEqual(before);
    }),
    { numRuns: Math.ceil(INPUTS / methods.length), seed: SEED },
  );
  return { tally, ms: performance.now() - started };
}

/** Asserts the counts of a fuzz run: enough inputs, spread over every method, enough of them refused by a handler naming a field. */
function expectCoverage(name: string, tally: Tally, table: Record<string, MethodFuzz>, ms: number): void {
  const share = tally.invalidWithField / tally.calls;
  console.log(`${name}: ${tally.calls} inputs (seed ${SEED}) in ${(ms / 1000).toFixed(1)} s; at least ${tally.minPerMethod()} per method; ${(share * 100).toFixed(1)}% refused with INVALID_ARGUMENT naming a field\n${tally.report()}`);
  expect(tally.calls).toBeGreaterThanOrEqual(INPUTS);
  expect(tally.minPerMethod(), tally.report()).toBeGreaterThanOrEqual(Math.min(100, Math.ceil(INPUTS / Object.keys(table).length)));
  expect(share, tally.report()).toBeGreaterThanOrEqual(MIN_INVALID_SHARE);
  // Each method built to refuse its inputs refused some of them in its handler, for a named field: the inputs reached it.
  const unreached = Object.entries(table)
    .filter(([m, f]) => f.refusedByConstruction && (tally.perMethod.get(m)?.invalid ?? 0) === 0)
    .map(([m]) => m);
  expect(unreached, tally.report()).toEqual([]);
}

describe('fuzzing every request of the operator and agent APIs over real gRPC', () => {
  let cluster: TestCluster;
  let coordinator: Client;
  let agent: Client;
  let operatorWorld: OperatorWorld;
  let agentWorld: AgentWorld;

  const unary = <T>(client: Client, service: ServiceDefinition, method: string, request: unknown): Promise<T> =>
    callRaw(client, service[method]!, method, request, DEADLINE_MS).then((o) => {
      if (o.code !== status.OK) throw new Error(`${method}: ${status[o.code]} ${o.details}`);
      return o.reply as T;
    });
  const op = <T>(method: string, request: unknown = {}) => unary<T>(coordinator, COORDINATOR_SERVICE, method, request);

  /** What an operator sees: workloads, hosts (cordons, drains), the queue and its policy, images, tokens and backups. */
  const operatorState = async () => {
    const [workloads, hosts, queue, images, tokens, backups] = await Promise.all([
      op<pb.ListWorkloadsResponse__Output>('ListWorkloads', { page_size: 5000 }),
      op<pb.ListHostsResponse__Output>('ListHosts', { page_size: 5000 }),
      op<pb.QueueState__Output>('GetQueue', { page_size: 5000 }),
      op<pb.ListImagesResponse__Output>('ListImages'),
      op<pb.ListTokensResponse__Output>('ListTokens'),
      op<pb.ListBackupsResponse__Output>('ListBackups'),
    ]);
    const drains = await Promise.all(
      hosts.hosts.map((h) => callRaw(coordinator, COORDINATOR_SERVICE.GetHostDrain!, 'GetHostDrain', { host_id: h.id }, DEADLINE_MS).then((o) => `${h.id} ${status[o.code]} ${(o.reply as pb.HostDrain__Output | undefined)?.state ?? ''}`)),
    );
    return {
      workloads: workloads.workloads.map((w) => `${w.id} ${w.spec?.name} ${w.state}/${w.desired_state} on ${w.host_id} at ${w.updated_at}`).sort(),
      hosts: hosts.hosts.map((h) => `${h.id} ${h.status} cordoned ${h.cordoned}`),
      drains,
      queue: { policy: queue.policy, backfill: queue.backfill, entries: queue.entries.map((e) => e.workload_id) },
      images: images.images.map((i) => `${i.name} ${i.digest}`),
      tokens: tokens.tokens.map((t) => `${t.id} ${t.role} revoked ${t.revoked_at}`),
      backups: backups.backups.map((b) => b.id),
    };
  };
  /** Asserts that a change made now comes out of WatchEvents: the event log takes and stores events. */
  const expectEventsFlow = async (requestId: string) => {
    const since = new Date(Date.now() - 1000).toISOString();
    const host = operatorWorld.hostIds[0]!;
    await op('CordonHost', { host_id: host, cordon: true, request_id: `${requestId}-cordon` });
    await op('CordonHost', { host_id: host, cordon: false, request_id: `${requestId}-uncordon` });
    const seen = await waitFor(
      'the cordon to come out of WatchEvents',
      async () => {
        const o = await callRaw(coordinator, COORDINATOR_SERVICE.WatchEvents!, 'WatchEvents', { type_prefix: 'io.virtfleet.host.cordoned', since_time: since }, DEADLINE_MS);
        return ((o.reply as pb.Event__Output[] | undefined) ?? []).find((e) => e.subject === host);
      },
      { timeoutMs: 15_000 },
    );
    expect(seen.type).toBe('io.virtfleet.host.cordoned');
    // An event NATS can never take (over its max_payload) is retried for ever, every half second.
    expect(cluster.coordinator.output.join('').split('\n').filter((l) => /max_payload/.test(l)).slice(0, 3)).toEqual([]);
  };
  /** What the agent holds. */
  const agentState = async () =>
    (await unary<pb.ListAgentWorkloadsResponse__Output>(agent, AGENT_SERVICE, 'ListWorkloads', {})).workloads.map((w) => `${w.workload_id} ${w.name} ${w.kind} ${w.state}`).sort();

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } }, logLevel: 'info' }], coordinatorLogLevel: 'info' });
    await waitForHostsUp(cluster);
    const host = cluster.agents[0]!;
    coordinator = new (loadCoordinatorProto().Coordinator)(cluster.coordinatorAddress, channelCredentials(new CertificateFiles(cluster.operatorTls, 'tls'), { role: 'coordinator' }), {
      ...TLS_CHANNEL_OPTIONS,
      'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
    });
    agent = new (loadAgentProto().Agent)(`127.0.0.1:${host.port}`, channelCredentials(new CertificateFiles(await cluster.pki.issue('coordinator', 'e2e'), 'tls'), { role: 'agent', name: host.hostId }), {
      ...TLS_CHANNEL_OPTIONS,
      'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
    });

    // Something of each kind to aim at: a running and a stopped workload, a backup, an image, a token.
    const a = await cluster.api.submit({ request_id: 'fz-seed-a', spec: container('fz-a') });
    const b = await cluster.api.submit({ request_id: 'fz-seed-b', spec: container('fz-b') });
    await waitForState(cluster, a.id, 'running');
    await waitForState(cluster, b.id, 'running');
    await cluster.api.act('StopWorkload', { id: b.id, request_id: 'fz-seed-stop-b' });
    await waitForState(cluster, b.id, 'stopped');
    const backup = await cluster.api.createBackup({ id: b.id, request_id: 'fz-seed-backup' });
    const disk = Buffer.alloc(512);
    await cluster.api.importImage({ name: 'fz-img', format: 'raw', size: '512', sha256: sha256(disk) }, async function* () {
      yield disk;
    });
    const token = await cluster.api.createToken({ role: 'viewer', tenant: '', ttl_seconds: '0', description: 'fuzz target', request_id: 'fz-seed-token' });
    operatorWorld = { workloads: [a, b].map((w) => ({ id: w.id, name: w.spec!.name })), hostIds: [host.hostId], imageName: 'fz-img', backupId: backup.id, tokenId: token.token!.id };
    agentWorld = { hostId: host.hostId, workloads: [a, b].map((w) => ({ id: w.id, name: w.spec!.name, kind: 'container' })) };
  });
  afterAll(async () => {
    coordinator?.close();
    agent?.close();
    await cluster?.stop();
  });

  it('has a generator for every method of both services', () => {
    const world = { workloads: [{ id: 'w', name: 'w' }], hostIds: ['h'], imageName: 'i', backupId: 'bk-1', tokenId: '0123456789abcdef' };
    expect(Object.keys(operatorFuzz(world)).sort(), `methods of virtfleet.v1.Coordinator: ${JSON.stringify(shapesOf(COORDINATOR_SERVICE))}`).toEqual(Object.keys(COORDINATOR_SERVICE).sort());
    expect(Object.keys(agentFuzz({ hostId: 'h', workloads: [{ id: 'w', name: 'w', kind: 'container' }] })).sort(), `methods of virtfleet.v1.Agent: ${JSON.stringify(shapesOf(AGENT_SERVICE))}`).toEqual(Object.keys(AGENT_SERVICE).sort());
  });

  it(`answers ${INPUTS} generated requests to the operator API as it documents, and a refused one changes nothing`, async () => {
    const table = operatorFuzz(operatorWorld);
    const { tally, ms } = await fuzzService(coordinator, COORDINATOR_SERVICE, table, operatorState);
    expectCoverage('operator API', tally, table, ms);
    expect(cluster.coordinator.running, cluster.logs()).toBe(true);
    expect(crashes(cluster.coordinator.output)).toEqual([]);
  }, 600_000);

  it(`answers ${INPUTS} generated requests to the agent API as it documents, and a refused one changes nothing`, async () => {
    const table = agentFuzz(agentWorld);
    const { tally, ms } = await fuzzService(agent, AGENT_SERVICE, table, agentState);
    expectCoverage('agent API', tally, table, ms);
    expect(cluster.agents[0]!.process.running, cluster.logs()).toBe(true);
    expect(crashes(cluster.agents[0]!.process.output)).toEqual([]);
  }, 600_000);

  it('refuses a message just over grpc.maxMessageBytes with RESOURCE_EXHAUSTED, takes one just under, and goes on serving', async () => {
    const coordinatorLimit = coordinatorConfigOf(cluster.coordinator).grpc.maxMessageBytes;
    const agentLimit = agentConfigOf(cluster.agents[0]!.process).grpc.maxMessageBytes;
    const before = { operator: await operatorState(), agent: await agentState() };
    const call = (client: Client, service: ServiceDefinition, method: string, input: unknown) => callRaw(client, service[method]!, method, input, DEADLINE_MS);
    // A protobuf string or bytes field of n bytes takes n plus a few bytes of tag and length.
    const spec = (argBytes: number) => ({ request_id: '', spec: { ...container('fz-big'), command: ['x'.repeat(argBytes)] } });
    const cases = [
      { what: 'a spec over the limit', got: await call(coordinator, COORDINATOR_SERVICE, 'SubmitWorkload', spec(coordinatorLimit + 1)), want: status.RESOURCE_EXHAUSTED },
      { what: 'a spec just under it reaches the handler', got: await call(coordinator, COORDINATOR_SERVICE, 'SubmitWorkload', spec(coordinatorLimit - 1024)), want: status.INVALID_ARGUMENT },
      // Audited with what it names: an event over NATS's max_payload (1 MiB) must not stop the event log.
      { what: 'a 2 MiB workload id under the limit reaches the handler', got: await call(coordinator, COORDINATOR_SERVICE, 'DeleteWorkload', { id: 'x'.repeat(2 * 1024 * 1024), request_id: '' }), want: status.INVALID_ARGUMENT },
      // A message listing every one of 30,000 problems ran to megabytes, and never reached the caller.
      { what: 'a spec with 30,000 bad environment names', got: await call(coordinator, COORDINATOR_SERVICE, 'SubmitWorkload', { request_id: '', spec: { ...container('fz-many'), env: Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => [`${i} bad`, 'v'])) } }), want: status.INVALID_ARGUMENT },
      { what: 'an image piece over the limit', got: await call(coordinator, COORDINATOR_SERVICE, 'ImportImage', [{ header: { name: 'fz-big', format: 'raw', size: String(coordinatorLimit + 512), sha256: '' } }, { data: Buffer.alloc(coordinatorLimit + 1) }]), want: status.RESOURCE_EXHAUSTED },
      { what: 'a ping over the agent’s limit', got: await call(agent, AGENT_SERVICE, 'Ping', { payload: Buffer.alloc(agentLimit + 1) }), want: status.RESOURCE_EXHAUSTED },
      { what: 'a ping just under it', got: await call(agent, AGENT_SERVICE, 'Ping', { payload: Buffer.alloc(agentLimit - 1024, 1) }), want: status.OK },
      { what: 'a state piece over the agent’s limit', got: await call(agent, AGENT_SERVICE, 'ImportWorkloadState', [{ header: { command_id: 'fz-big', workload_id: 'fz-big', spec: container('fz-big') } }, { file: { role: 'image', size_bytes: agentLimit + 1 } }, { data: Buffer.alloc(agentLimit + 1) }]), want: status.RESOURCE_EXHAUSTED },
    ];
    for (const c of cases) expect(status[c.got.code], `${c.what}: ${c.got.details.slice(0, 300)}`).toBe(status[c.want]);
    expect(cases[1]!.got.field, 'the spec under the limit is refused for its command').toBe('spec.command.0');
    expect(cases[2]!.got.field).toBe('id');
    expect(cases[3]!.got.details, 'the message lists what fits, and counts the rest').toMatch(/^spec\.env\.0 bad: environment names .*; and \d+ more problems$/);
    expect(cases[3]!.got.details.length).toBeLessThan(8192);
    expect(((cases[6]!.got.reply as pb.PingResponse__Output).payload ?? Buffer.alloc(0)).length).toBe(agentLimit - 1024);
    expect({ operator: await operatorState(), agent: await agentState() }).toEqual(before);
    expect([cluster.coordinator.running, cluster.agents[0]!.process.running]).toEqual([true, true]);
    await expectEventsFlow('fz-oversized');
  });

  it('accepts valid generated submits and creates, metacharacters and all, and stores what was sent', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(validContainerSpec(fc.constant('')), async (generated) => {
        const spec = { ...generated, name: `fzv-${n++}` };
        const made = await op<pb.Workload__Output>('SubmitWorkload', { request_id: `fzv-${SEED}-${n}`, spec });
        const stored = await op<pb.Workload__Output>('GetWorkload', { id: made.id });
        expect({ command: stored.spec?.command, env: stored.spec?.env, labels: stored.spec?.labels }, 'free text is kept as sent').toEqual({ command: spec.command, env: spec.env, labels: spec.labels });
        await op('DeleteWorkload', { id: made.id, request_id: `fzv-${SEED}-${n}-delete` });

        const id = `fzva-${n}`;
        const created = await unary<pb.WorkloadStatus__Output>(agent, AGENT_SERVICE, 'CreateWorkload', { command_id: `fzva-${SEED}-${n}`, workload_id: id, spec: { ...spec, name: id } });
        expect(created.workload_id).toBe(id);
        expect((await unary<pb.WorkloadStatus__Output>(agent, AGENT_SERVICE, 'DeleteWorkload', { command_id: `fzva-${SEED}-${n}-delete`, workload_id: id })).state).toBe('deleted');
      }),
      { numRuns: 50, seed: SEED },
    );
    await waitUntil('the accepted workloads to be deleted', async () => !(await operatorState()).workloads.some((w) => / fzv-\d+ /.test(w) && !w.includes(' deleted/')), { timeoutMs: 30_000 });
    expect((await agentState()).filter((w) => w.startsWith('fzva-'))).toEqual([]);
  }, 120_000);

  it('still stores and streams events after the fuzz: no refused request blocked the event log', async () => {
    await expectEventsFlow('fz-after');
    expect([cluster.coordinator.running, cluster.agents[0]!.process.running]).toEqual([true, true]);
    expect([...crashes(cluster.coordinator.output), ...crashes(cluster.agents[0]!.process.output)]).toEqual([]);
  });
});
