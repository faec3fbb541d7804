import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { CLI_ENTRY } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

interface WorkloadJson {
  id: string;
  state: string;
  spec: { name: string };
}

/** `virtfleet <args>` left running into a pipe, as a script would: what it has printed so far, split into its snapshots. */
function watching(cluster: TestCluster, args: string[]) {
  const child = spawn(process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cluster.cliEnv } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    /** Complete snapshots: a blank line follows each but the newest, which is complete once its JSON parses. */
    snapshots: <T>(): T[] =>
      stdout
        .split('\n\n')
        .filter((s) => s.trim() !== '')
        .flatMap((s) => {
          try {
            return [JSON.parse(s) as T];
          } catch {
            return [];
          }
        }),
    stderr: () => stderr,
    /** Ctrl-C, and its exit code. */
    interrupt: async () => {
      child.kill('SIGINT');
      return exited;
    },
    kill: () => child.kill('SIGKILL'),
  };
}

describe('--watch against a real cluster', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const submit = async (name: string) => {
    const w = await cluster.api.submit({ request_id: name, spec: { name, kind: 'container', image: 'busybox', vcpus: 0.1, memory_mib: 16 } });
    return waitForState(cluster, w.id, 'running');
  };

  it('workload get X --watch -o json prints X again when it changes, from its events, and stops on Ctrl-C', async () => {
    const w = await submit('watched');
    // An interval far longer than the test: the new state can only come from the event stream.
    const watch = watching(cluster, ['workload', 'get', 'watched', '--watch', '--interval', '600', '-o', 'json']);
    try {
      const first = await waitFor('the first snapshot', () => watch.snapshots<WorkloadJson>()[0], { timeoutMs: 15_000 });
      expect(first).toMatchObject({ id: w.id, state: 'running' });
      await cluster.api.act('StopWorkload', { id: w.id, request_id: 'stop-watched', timeout_seconds: 0, force: true });
      const stopped = await waitFor('a snapshot with the workload stopped', () => watch.snapshots<WorkloadJson>().find((s) => s.state === 'stopped'), { timeoutMs: 15_000 });
      expect(stopped.id).toBe(w.id);
      const states = watch.snapshots<WorkloadJson>().map((s) => s.state);
      expect(states[0]).toBe('running');
      // One snapshot per change: never the same state twice in a row.
      expect(states.filter((s, i) => i > 0 && s === states[i - 1]), `states printed: ${states.join(', ')}`).toEqual([]);
      expect(await watch.interrupt(), watch.stderr()).toBe(0);
    } finally {
      watch.kill();
    }
  });

  it('workload ls --watch -o json shows a workload submitted after it started', async () => {
    const watch = watching(cluster, ['workload', 'ls', '--watch', '--interval', '0.5', '-o', 'json']);
    try {
      await waitFor('the first snapshot', () => watch.snapshots<WorkloadJson[]>()[0], { timeoutMs: 15_000 });
      expect(watch.snapshots<WorkloadJson[]>()[0]!.map((x) => x.spec.name)).not.toContain('late');
      await submit('late');
      await waitFor('a snapshot listing the new workload running', () => watch.snapshots<WorkloadJson[]>().find((ws) => ws.some((x) => x.spec.name === 'late' && x.state === 'running')), { timeoutMs: 15_000 });
      expect(await watch.interrupt(), watch.stderr()).toBe(0);
    } finally {
      watch.kill();
    }
  });
});
