import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InternalError, NotFoundError, UnavailableError, parseWorkloadSpec, type WorkloadState } from '@virtfleet/shared';
import {
  DOCKER_LABELS,
  buildCreateOptions,
  buildLabels,
  dockerMessage,
  dockerStateToWorkloadState,
  isOwnedBy,
  mapDockerError,
  memoryUsedMiB,
  specFieldForDockerMessage,
  type DockerStateLike,
} from './docker-driver.js';

/** What docker-modem rejects with for an HTTP answer it does not expect. */
function httpError(statusCode: number, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - ${message} `), { statusCode, json: { message } });
}

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} /var/run/docker.sock`), { code });
}

describe('dockerStateToWorkloadState', () => {
  const cases: { name: string; input: DockerStateLike; want: WorkloadState }[] = [
    { name: 'running', input: { Status: 'running', Paused: false }, want: 'running' },
    { name: 'running with the paused flag', input: { Status: 'running', Paused: true }, want: 'paused' },
    { name: 'paused (inspect and list)', input: { Status: 'paused' }, want: 'paused' },
    { name: 'restarting counts as running', input: { Status: 'restarting' }, want: 'running' },
    { name: 'created but never started', input: { Status: 'created' }, want: 'stopped' },
    { name: 'exited', input: { Status: 'exited' }, want: 'stopped' },
    { name: 'being removed', input: { Status: 'removing' }, want: 'stopped' },
    { name: 'dead', input: { Status: 'dead' }, want: 'failed' },
    { name: 'a status this driver does not know', input: { Status: 'hibernating' }, want: 'unknown' },
    { name: 'empty status', input: { Status: '' }, want: 'unknown' },
  ];
  it.each(cases)('$name → $want', ({ input, want }) => {
    expect(dockerStateToWorkloadState(input)).toBe(want);
  });
});

describe('buildLabels', () => {
  const cases: { name: string; labels: Record<string, string>; want: Record<string, string> }[] = [
    {
      name: 'no user labels',
      labels: {},
      want: { 'io.virtfleet.host': 'h1', 'io.virtfleet.workload': 'web-0a1b2c3d', 'io.virtfleet.name': 'web', 'io.virtfleet.kind': 'container' },
    },
    {
      name: 'user labels are prefixed',
      labels: { tier: 'front', 'app/version': '2' },
      want: {
        'io.virtfleet.label.tier': 'front',
        'io.virtfleet.label.app/version': '2',
        'io.virtfleet.host': 'h1',
        'io.virtfleet.workload': 'web-0a1b2c3d',
        'io.virtfleet.name': 'web',
        'io.virtfleet.kind': 'container',
      },
    },
  ];
  it.each(cases)('$name', ({ labels, want }) => {
    expect(buildLabels('h1', 'web-0a1b2c3d', { name: 'web', labels })).toEqual(want);
  });

  it('makes containers that isOwnedBy recognises', () => {
    const labels = buildLabels('h1', 'web-0a1b2c3d', { name: 'web', labels: { host: 'h2' } });
    expect(isOwnedBy(labels, 'h1', 'web-0a1b2c3d')).toBe(true);
  });
});

describe('isOwnedBy', () => {
  const cases: { name: string; labels: Record<string, string> | null | undefined; want: boolean }[] = [
    { name: 'our host and workload', labels: { [DOCKER_LABELS.host]: 'h1', [DOCKER_LABELS.workload]: 'w1' }, want: true },
    { name: 'another host', labels: { [DOCKER_LABELS.host]: 'h2', [DOCKER_LABELS.workload]: 'w1' }, want: false },
    { name: 'another workload', labels: { [DOCKER_LABELS.host]: 'h1', [DOCKER_LABELS.workload]: 'w2' }, want: false },
    { name: 'no virtfleet labels', labels: { maintainer: 'someone' }, want: false },
    { name: 'no labels at all', labels: null, want: false },
  ];
  it.each(cases)('$name → $want', ({ labels, want }) => {
    expect(isOwnedBy(labels, 'h1', 'w1')).toBe(want);
  });
});

describe('mapDockerError', () => {
  const cases: { name: string; err: unknown; want: new (...args: never[]) => Error; message: RegExp }[] = [
    { name: 'socket missing', err: socketError('ENOENT'), want: UnavailableError, message: /unreachable: connect ENOENT/ },
    { name: 'daemon refusing connections', err: socketError('ECONNREFUSED'), want: UnavailableError, message: /ECONNREFUSED/ },
    { name: 'HTTP 404', err: httpError(404, 'No such container: virtfleet-w1'), want: NotFoundError, message: /workload "w1" not found/ },
    { name: 'HTTP 409 keeps Docker\'s message without the modem prefix', err: httpError(409, 'Container abc is not running'), want: InternalError, message: /^Docker Engine: Container abc is not running$/ },
    { name: 'HTTP 500', err: httpError(500, 'driver failed'), want: InternalError, message: /driver failed/ },
    { name: 'an unrelated error', err: new TypeError('boom'), want: InternalError, message: /boom/ },
    { name: 'a thrown string', err: 'weird', want: InternalError, message: /weird/ },
    { name: 'virtfleet errors pass through', err: new FailedPreconditionError('already decided'), want: FailedPreconditionError, message: /^already decided$/ },
  ];
  it.each(cases)('$name', ({ err, want, message }) => {
    const mapped = mapDockerError(err, 'w1');
    expect(mapped).toBeInstanceOf(want);
    expect(mapped.message).toMatch(message);
  });

  it('keeps the original error as cause', () => {
    const err = httpError(500, 'x');
    expect(mapDockerError(err, 'w1').cause).toBe(err);
  });

  it('marks only unreachable-daemon errors retryable', () => {
    expect(mapDockerError(socketError('ECONNREFUSED'), 'w1').retryable).toBe(true);
    expect(mapDockerError(httpError(500, 'x'), 'w1').retryable).toBe(false);
  });
});

describe('dockerMessage', () => {
  it.each([
    { name: 'JSON body', err: httpError(409, 'Conflict.'), want: 'Conflict.' },
    { name: 'empty body (304) falls back to the message', err: Object.assign(new Error('(HTTP code 304) container already started -  '), { statusCode: 304, json: Buffer.alloc(0) }), want: '(HTTP code 304) container already started -' },
    { name: 'socket error', err: socketError('ENOENT'), want: 'connect ENOENT /var/run/docker.sock' },
  ])('$name', ({ err, want }) => {
    expect(dockerMessage(err)).toBe(want);
  });
});

describe('specFieldForDockerMessage', () => {
  it.each([
    { message: 'failed to create shim task: OCI runtime create failed: exec: "/bin/nope": stat /bin/nope: no such file or directory: unknown', want: 'spec.command' },
    { message: 'No command specified', want: 'spec.command' },
    { message: 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available', want: 'spec.vcpus' },
    { message: 'Minimum memory limit allowed is 6MB', want: 'spec.memory_mib' },
    { message: 'something else entirely', want: 'spec' },
  ])('$message → $want', ({ message, want }) => {
    expect(specFieldForDockerMessage(message)).toBe(want);
  });
});

describe('memoryUsedMiB', () => {
  const MiB = 1024 * 1024;
  it.each([
    { name: 'cgroup v1 subtracts total_inactive_file', input: { usage: 100 * MiB, stats: { total_inactive_file: 40 * MiB, cache: 60 * MiB } }, want: 60 },
    { name: 'cgroup v2 subtracts inactive_file', input: { usage: 100 * MiB, stats: { inactive_file: 25 * MiB } }, want: 75 },
    { name: 'old engines subtract cache', input: { usage: 100 * MiB, stats: { cache: 10 * MiB } }, want: 90 },
    { name: 'no breakdown', input: { usage: 8 * MiB }, want: 8 },
    { name: 'reclaimable above usage is ignored', input: { usage: 4 * MiB, stats: { total_inactive_file: 5 * MiB } }, want: 4 },
    { name: 'zeroed stats of a stopped container', input: {}, want: 0 },
  ])('$name → $want MiB', ({ input, want }) => {
    expect(memoryUsedMiB(input)).toBe(want);
  });
});

describe('buildCreateOptions', () => {
  const config = { network: 'none', stopTimeoutSeconds: 7 };

  it('maps the spec onto a container with hard limits and no restarts', () => {
    const spec = parseWorkloadSpec({
      name: 'web',
      kind: 'container',
      image: 'busybox:latest',
      vcpus: 0.5,
      memory_mib: 64,
      command: ['/bin/sleep', '1000'],
      env: { A: '1', B: 'x=y' },
      labels: { tier: 'front' },
    });
    expect(buildCreateOptions('h1', 'web-0a1b2c3d', spec, config)).toEqual({
      name: 'virtfleet-h1.web-0a1b2c3d',
      Image: 'busybox:latest',
      Cmd: ['/bin/sleep', '1000'],
      Env: ['A=1', 'B=x=y'],
      Labels: buildLabels('h1', 'web-0a1b2c3d', spec),
      StopTimeout: 7,
      HostConfig: {
        Memory: 64 * 1024 * 1024,
        MemorySwap: 64 * 1024 * 1024,
        NanoCpus: 500_000_000,
        NetworkMode: 'none',
        RestartPolicy: { Name: 'no' },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
    });
  });

  it('publishes ports: exposed in the container, bound to their host ports', () => {
    const spec = parseWorkloadSpec({
      name: 'web',
      kind: 'container',
      image: 'busybox:latest',
      vcpus: 1,
      memory_mib: 32,
      ports: [
        { host_port: 8080, port: 80 },
        { host_port: 8443, port: 80 },
        { host_port: 5353, port: 53, protocol: 'udp' },
      ],
    });
    const options = buildCreateOptions('h1', 'w1', spec, { network: 'virtfleet-default', stopTimeoutSeconds: 1 });
    expect(options.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {} });
    expect(options.HostConfig?.PortBindings).toEqual({ '80/tcp': [{ HostPort: '8080' }, { HostPort: '8443' }], '53/udp': [{ HostPort: '5353' }] });
    expect(() => buildCreateOptions('h1', 'w1', spec, { network: 'none', stopTimeoutSeconds: 1 })).toThrow(/spec\.ports: cannot be published from network none/);
  });

  it('leaves Cmd out so the image default applies when the spec has no command', () => {
    const spec = parseWorkloadSpec({ name: 'web', kind: 'container', image: 'busybox:latest', vcpus: 1, memory_mib: 32 });
    expect(buildCreateOptions('h1', 'w1', spec, config)).not.toHaveProperty('Cmd');
  });

  it('rounds fractional vcpus to whole nanoCPUs', () => {
    const spec = parseWorkloadSpec({ name: 'web', kind: 'container', image: 'busybox:latest', vcpus: 1 / 3, memory_mib: 32 });
    expect(buildCreateOptions('h1', 'w1', spec, config).HostConfig?.NanoCpus).toBe(333_333_333);
  });
});
