import Docker from 'dockerode';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { CLI_ENTRY, freePort, runCli } from '../support/processes.js';
import { spawn } from 'node:child_process';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('the virtfleet CLI against a real cluster', () => {
  let cluster: TestCluster;
  let dir: string;
  const cli = (...args: string[]) => cluster.cli(...args);
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-cli-'));
    cluster = await startCluster({ agents: [{}] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (hostId) await removeContainersOf([hostId]);
  });

  it('pages workload ls and queue ls with --limit and --page-token, and reads them all with --all', async () => {
    const names = ['cli-page-a', 'cli-page-b', 'cli-page-c'];
    const ids: string[] = [];
    for (const name of names) {
      const spec = file(`${name}.yaml`, [`name: ${name}`, 'kind: container', 'image: virtfleet-test/busybox:latest', 'vcpus: 0.1', 'memory_mib: 16', 'host_selector: { never: matches }', ''].join('\n'));
      const r = await cli('workload', 'create', '-f', spec, '-o', 'json');
      expect(r.code, r.stderr).toBe(0);
      ids.push((JSON.parse(r.stdout) as { id: string }).id);
    }
    const first = await cli('workload', 'ls', '--state', 'pending', '--limit', '2', '-o', 'json');
    expect(first.code, first.stderr).toBe(0);
    expect((JSON.parse(first.stdout) as { id: string }[]).map((w) => w.id)).toEqual(ids.slice(0, 2));
    const token = /--page-token (\S+)/.exec(first.stderr)?.[1];
    expect(token, first.stderr).toBeDefined();
    const second = await cli('workload', 'ls', '--state', 'pending', '--limit', '2', '--page-token', token!, '-o', 'json');
    expect((JSON.parse(second.stdout) as { id: string }[]).map((w) => w.id)).toEqual(ids.slice(2));
    expect(second.stderr).toBe('');
    const all = await cli('workload', 'ls', '--state', 'pending', '--limit', '1', '--all', '-o', 'json');
    expect((JSON.parse(all.stdout) as { id: string }[]).map((w) => w.id)).toEqual(ids);
    const queue = await cli('queue', 'ls', '--limit', '1', '--all');
    expect(queue.stdout).toMatch(/3 waiting/);
    for (const id of ids) expect(queue.stdout).toContain(id);
    const badLimit = await cli('workload', 'ls', '--limit', '0');
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toMatch(/--limit/);
    const badToken = await cli('workload', 'ls', '--page-token', 'garbage');
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toMatch(/page_token/);
    for (const id of ids) expect((await cli('workload', 'delete', id)).code).toBe(0);
  });

  it('refuses a pause of a stopped workload with exit 5, repeats a request id without acting, and deletes twice by name and by id', async () => {
    const spec = file('verbs.yaml', ['name: cli-verbs', 'kind: container', 'image: virtfleet-test/busybox:latest', 'vcpus: 0.1', 'memory_mib: 16', 'command: ["/bin/sleep", "1000"]', ''].join('\n'));
    const created = await cli('workload', 'create', '-f', spec, '--wait', '-o', 'json');
    expect(created.code, created.stderr).toBe(0);
    const w = JSON.parse(created.stdout) as { id: string; driver_ref: string };
    expect((await cli('workload', 'stop', w.id, '--request-id', 'cli-stop-x')).code).toBe(0);
    const pause = await cli('workload', 'pause', 'cli-verbs');
    expect(pause.code).toBe(5);
    expect(pause.stderr).toMatch(/only a running workload can be paused/);
    expect(JSON.parse((await cli('workload', 'get', w.id, '-o', 'json')).stdout)).toMatchObject({ state: 'stopped', desired_state: 'stopped' });

    expect((await cli('workload', 'start', w.id, '--request-id', 'cli-start-x-2')).stdout.trim()).toBe(`${w.id} running`);
    const repeat = await cli('workload', 'stop', w.id, '--request-id', 'cli-stop-x');
    expect(repeat.code, repeat.stderr).toBe(0);
    expect((await docker.getContainer(w.driver_ref).inspect()).State.Running).toBe(true);
    const reused = await cli('workload', 'pause', w.id, '--request-id', 'cli-stop-x');
    expect(reused.code).toBe(5);
    expect(reused.stderr).toMatch(/already used for a different request/);

    expect((await cli('workload', 'delete', 'cli-verbs')).code).toBe(0);
    const byName = await cli('workload', 'delete', 'cli-verbs');
    const byId = await cli('workload', 'delete', w.id);
    expect([byName.code, byId.code], `${byName.stderr}${byId.stderr}`).toEqual([0, 0]);
    expect(byName.stdout.trim()).toBe(`${w.id} deleted`);
  });

  it('creates a container from a YAML spec, lists, gets, stops and deletes it', async () => {
    const spec = file(
      'web.yaml',
      ['name: cli-web', 'kind: container', 'image: virtfleet-test/busybox:latest', 'vcpus: 0.5', 'memory_mib: 48', 'command: ["/bin/sleep", "1000"]', 'env:', '  GREETING: hello', 'labels:', '  tier: web', ''].join('\n'),
    );
    const created = await cli('workload', 'create', '-f', spec, '--wait', '-o', 'json');
    expect(created.code, created.stderr).toBe(0);
    const w = JSON.parse(created.stdout) as { id: string; state: string; driver_ref: string; host_id: string };
    expect(w.state).toBe('running');
    const info = await docker.getContainer(w.driver_ref).inspect();
    expect(info.HostConfig.Memory).toBe(48 * 1024 * 1024);
    expect(info.Config.Env).toContain('GREETING=hello');

    const ls = await cli('workload', 'ls');
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+NAME\s+KIND\s+HOST\s+STATE/);
    expect(ls.stdout).toContain('cli-web');

    const byName = await cli('workload', 'get', 'cli-web', '-o', 'json');
    expect(JSON.parse(byName.stdout)).toMatchObject({ id: w.id, host_id: w.host_id });

    const stop = await cli('workload', 'stop', w.id, '--timeout-seconds', '1');
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout.trim()).toBe(`${w.id} stopped`);

    const hosts = await cli('host', 'ls');
    expect(hosts.stdout).toContain(cluster.agents[0]!.hostId);
    expect(hosts.stdout).toMatch(/\bup\b/);

    const del = await cli('workload', 'delete', w.id);
    expect(del.code, del.stderr).toBe(0);
    await expect(docker.getContainer(w.driver_ref).inspect()).rejects.toMatchObject({ statusCode: 404 });

    const events = await cli('events', '-o', 'json');
    const types = events.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string; subject: string })).filter((e) => e.subject === w.id).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['io.virtfleet.workload.submitted', 'io.virtfleet.workload.placed', 'io.virtfleet.workload.deleted']));
  });

  const failures: { name: string; args: () => string[]; code: number; stderr: RegExp }[] = [
    {
      name: 'malformed YAML',
      args: () => ['workload', 'create', '-f', file('bad.yaml', 'name: x\n  kind: [vm\n')],
      code: 2,
      stderr: /^error: \S*bad\.yaml: malformed YAML\/JSON at line \d+, column \d+: Nested mappings are not allowed in compact mappings\n$/,
    },
    {
      name: 'a duplicate key',
      args: () => ['workload', 'create', '-f', file('dup.yaml', 'name: x\nkind: vm\nname: y\n')],
      code: 2,
      stderr: /^error: \S*dup\.yaml: malformed YAML\/JSON at line 3, column 1: Map keys must be unique\n$/,
    },
    { name: 'malformed JSON', args: () => ['workload', 'create', '-f', file('bad.json', '{"name": "x", "kind": ')], code: 2, stderr: /^error: \S*bad\.json: malformed YAML\/JSON at line 1, column \d+: [^\n]*[^:\n]\n$/ },
    {
      name: 'a spec with several problems',
      args: () => ['workload', 'create', '-f', file('many.yaml', 'name: Web\nkind: container\nimage: busybox\nvcpus: 0\nmemroy: 64\n')],
      code: 2,
      stderr: /^error: \S*many\.yaml: 4 problems:\n {2}name: must be a DNS label[^\n]*\n {2}vcpus: must be greater than 0\n {2}memory_mib: is required\n {2}memroy: unknown field\n$/,
    },
    {
      name: 'a spec with zero memory',
      args: () => ['workload', 'create', '-f', file('zero.yaml', 'name: z\nkind: container\nimage: busybox\nvcpus: 1\nmemory_mib: 0\n')],
      code: 2,
      stderr: /zero\.yaml: memory_mib: must be at least/,
    },
    { name: 'an unknown spec field', args: () => ['workload', 'create', '-f', file('typo.yaml', 'name: z\nkind: vm\nvcpus: 1\nmemory_mib: 64\nmemroy: 1\n')], code: 2, stderr: /memroy/ },
    { name: 'a missing spec file', args: () => ['workload', 'create', '-f', join(dir, 'nope.yaml')], code: 2, stderr: /nope\.yaml: cannot read file/ },
    { name: 'an unknown workload', args: () => ['workload', 'get', 'no-such-thing'], code: 3, stderr: /no-such-thing.*not found/ },
    { name: 'an unknown verb', args: () => ['workload', 'explode', 'x'], code: 2, stderr: /unknown command/ },
    { name: 'a bad output format', args: () => ['-o', 'xml', 'host', 'ls'], code: 2, stderr: /xml.*table, wide, json, yaml/ },
    { name: 'an agent config with a bad address', args: () => ['agent', '--config', file('agent.yaml', 'grpc:\n  listen: nowhere\n  insecure: true\nnats:\n  anonymous: true\n')], code: 2, stderr: /agent\.yaml: grpc\.listen: must be host:port/ },
    { name: 'an agent config with an unknown key', args: () => ['agent', '--config', file('agent2.yaml', 'hostid: x\ngrpc:\n  insecure: true\nnats:\n  anonymous: true\n')], code: 2, stderr: /agent2\.yaml: .*hostid/ },
    { name: 'a config check with a bad NATS URL', args: () => ['agent', '--check-config', '--host-id', 'h1', '--insecure', '--nats-anonymous', '--nats', 'ftp://x'], code: 2, stderr: /nats\.servers/ },
    { name: 'an agent without certificates or --insecure', args: () => ['agent', '--check-config', '--host-id', 'h1', '--nats-anonymous'], code: 2, stderr: /grpc\.tls: required: gRPC links use mutual TLS/ },
    { name: 'a coordinator without certificates or --insecure', args: () => ['coordinator', '--check-config', '--nats-anonymous'], code: 2, stderr: /grpc\.tls: required: gRPC links use mutual TLS/ },
    { name: 'an agent without NATS credentials or --nats-anonymous', args: () => ['agent', '--check-config', '--host-id', 'h1', '--insecure'], code: 2, stderr: /nats\.nkeySeedFile: required: each daemon connects to NATS as its own user/ },
    { name: 'a coordinator whose NATS seed is not a seed', args: () => ['coordinator', '--check-config', '--insecure', '--nats-seed', file('not-a-seed.nk', 'SUxyz\n')], code: 2, stderr: /nats\.nkeySeedFile: .*not-a-seed\.nk is not a NATS user nkey seed/ },
    { name: 'a coordinator with a NATS seed and --nats-anonymous', args: () => ['coordinator', '--check-config', '--insecure', '--nats-anonymous', '--nats-seed', '/x.nk'], code: 2, stderr: /nats\.anonymous: set either nkeySeedFile or anonymous/ },
    { name: 'a coordinator with both tls and insecure', args: () => ['coordinator', '--check-config', '--insecure', '--nats-anonymous', '--config', file('both.yaml', 'grpc:\n  tls: { cert: /a, key: /b, ca: /c }\n')], code: 2, stderr: /grpc\.insecure: set either tls or insecure/ },
    { name: 'a coordinator TTL that is not a number', args: () => ['coordinator', '--host-ttl-ms', 'soon'], code: 2, stderr: /--host-ttl-ms must be a whole number/ },
    { name: 'a bad stop timeout', args: () => ['workload', 'stop', 'x', '--timeout-seconds', '-5'], code: 2, stderr: /--timeout-seconds/ },
  ];

  it.each(failures)('exits $code with a readable error for $name', async ({ args, code, stderr }) => {
    const r = await cli(...args());
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(stderr);
  });

  const timedCli = async (args: string[]) => {
    const start = performance.now();
    const r = await runCli(args, cluster.cliEnv);
    return { ...r, ms: performance.now() - start };
  };

  it('exits 4 at once, naming the address and the reason, when the coordinator refuses connections', async () => {
    const port = await freePort();
    // The default --timeout (60 s) stays: a refused connection must not wait for it.
    const r = await timedCli(['--coordinator', `127.0.0.1:${port}`, 'host', 'ls']);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(`error: cannot reach the coordinator at 127.0.0.1:${port}: connection refused\n`);
    expect(r.ms, 'node start-up plus one refused connection').toBeLessThan(5_000);
  });

  it('exits 4 at once naming every address when none of a highly available set is up, and moves past one that is down', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const r = await timedCli(['--coordinator', `127.0.0.1:${a},127.0.0.1:${b}`, 'workload', 'ls']);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(`error: cannot reach any coordinator: 127.0.0.1:${a}: connection refused; 127.0.0.1:${b}: connection refused\n`);
    expect(r.ms).toBeLessThan(5_000);

    const past = await runCli(['--coordinator', `127.0.0.1:${a},${cluster.coordinatorAddress}`, 'host', 'ls'], cluster.cliEnv);
    expect(past.code, past.stderr).toBe(0);
    expect(past.stdout).toContain(cluster.agents[0]!.hostId);
  });

  it('waits the whole --timeout for a coordinator that accepts connections but does not answer, then says so', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      const r = await timedCli(['--coordinator', address, '--timeout', '2', 'host', 'ls']);
      expect(r.code).toBe(4);
      expect(r.stderr).toBe(`error: no answer from the coordinator at ${address} within 2 s (--timeout)\n`);
      expect(r.ms).toBeGreaterThanOrEqual(2_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('create --wait exits 5 and says why when the workload is still pending at the deadline', async () => {
    const spec = file('huge.yaml', 'name: cli-huge\nkind: container\nimage: virtfleet-test/busybox:latest\nvcpus: 0.1\nmemory_mib: 16777216\ncommand: ["/bin/sleep", "1000"]\n');
    const r = await cli('--timeout', '3', 'workload', 'create', '-f', spec, '--wait', '-o', 'json');
    const w = JSON.parse(r.stdout) as { id: string; state: string; message: string };
    try {
      expect(r.code, r.stderr).toBe(5);
      expect(w.state).toBe('pending');
      expect(w.message).toMatch(/memory/);
      expect(r.stderr).toBe(`error: workload ${w.id} is still pending after 3 s: ${w.message}\n`);
    } finally {
      await cli('workload', 'delete', w.id);
    }
  });

  it('create --wait exits 1 with the failure on stderr when the workload fails', async () => {
    const spec = file('noimage.yaml', 'name: cli-noimage\nkind: container\nimage: virtfleet-test/not-loaded:latest\nvcpus: 0.1\nmemory_mib: 16\n');
    const r = await cli('workload', 'create', '-f', spec, '--wait', '-o', 'json');
    const w = JSON.parse(r.stdout) as { id: string; state: string; message: string };
    try {
      expect(r.code, r.stderr).toBe(1);
      expect(w.state).toBe('failed');
      expect(r.stderr).toBe(`error: workload ${w.id} failed: ${w.message}\n`);
      expect(w.message).toMatch(/not present on this host/);
    } finally {
      await cli('workload', 'delete', w.id);
    }
  });

  it.each([{ args: ['host', 'ls'] }, { args: ['workload', 'ls'] }, { args: ['events'] }])('$args ends quietly with exit 0 when the reader has closed the pipe', async ({ args }) => {
    const child = spawn(process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cluster.cliEnv } });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
  });

  interface ResolvedConfig {
    hostId?: string;
    grpc: { listen: string };
    telemetry?: { fullEveryMs: number };
  }
  it.each([
    { daemon: 'agent', args: ['--host-id', 'sim1', '--listen', '127.0.0.1:7300', '--insecure', '--nats-anonymous'], want: { hostId: 'sim1', grpc: { listen: '127.0.0.1:7300', insecure: true }, nats: { anonymous: true }, telemetry: { fullEveryMs: 10_000 } } },
    { daemon: 'coordinator', args: ['--listen', '127.0.0.1:7310', '--insecure', '--nats-anonymous'], want: { grpc: { listen: '127.0.0.1:7310', insecure: true }, nats: { anonymous: true } } },
  ])('$daemon --check-config prints the resolved config, defaults filled in, and exits 0 without starting', async ({ daemon, args, want }) => {
    const r = await runCli([daemon, '--check-config', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout) as ResolvedConfig).toMatchObject(want);
  });

  it.each([['--help'], ['pki', '--help'], ['host', 'ls', '--help'], ['workload', 'create', '--help'], ['workload', 'stop', '--help'], ['events', '--help'], ['agent', '--help'], ['coordinator', '--help']])(
    '%s prints usage and exits 0',
    async (...args) => {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: virtfleet/);
    },
  );
});
