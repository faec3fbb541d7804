import Docker from 'dockerode';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { freePort, runCli } from '../support/processes.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('the virtfleet CLI against a real cluster', () => {
  let cluster: TestCluster;
  let dir: string;
  const cli = (...args: string[]) => runCli(['--coordinator', cluster.coordinatorAddress, ...args]);
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
    { name: 'malformed YAML', args: () => ['workload', 'create', '-f', file('bad.yaml', 'name: x\n  kind: [vm\n')], code: 2, stderr: /bad\.yaml.*malformed YAML\/JSON at line \d/ },
    { name: 'malformed JSON', args: () => ['workload', 'create', '-f', file('bad.json', '{"name": "x", "kind": ')], code: 2, stderr: /bad\.json.*malformed/ },
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
    { name: 'a bad output format', args: () => ['-o', 'yaml', 'host', 'ls'], code: 2, stderr: /yaml/ },
    { name: 'an agent config with a bad address', args: () => ['agent', '--config', file('agent.yaml', 'grpc:\n  listen: nowhere\n')], code: 2, stderr: /agent\.yaml: grpc\.listen: must be host:port/ },
    { name: 'an agent config with an unknown key', args: () => ['agent', '--config', file('agent2.yaml', 'hostid: x\n')], code: 2, stderr: /agent2\.yaml: .*hostid/ },
    { name: 'a coordinator TTL that is not a number', args: () => ['coordinator', '--host-ttl-ms', 'soon'], code: 2, stderr: /--host-ttl-ms must be a whole number/ },
    { name: 'a bad stop timeout', args: () => ['workload', 'stop', 'x', '--timeout-seconds', '-5'], code: 2, stderr: /--timeout-seconds/ },
  ];

  it.each(failures)('exits $code with a readable error for $name', async ({ args, code, stderr }) => {
    const r = await cli(...args());
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(stderr);
  });

  it('exits 4 when the coordinator cannot be reached', async () => {
    const port = await freePort();
    const r = await runCli(['--coordinator', `127.0.0.1:${port}`, '--timeout', '2', 'host', 'ls']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^error: /);
  });

  it.each([['--help'], ['host', 'ls', '--help'], ['workload', 'create', '--help'], ['workload', 'stop', '--help'], ['events', '--help'], ['agent', '--help'], ['coordinator', '--help']])(
    '%s prints usage and exits 0',
    async (...args) => {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: virtfleet/);
    },
  );
});
