import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bindServer, createLogger, InvalidArgumentError, loadAgentProto, parseWorkloadSpec, serverCredentials, type pb } from '@virtfleet/shared';
import { agentHandlers } from '../../packages/agent/src/agent-service.js';
import { CommandLedger } from '../../packages/agent/src/command-ledger.js';
import { createFakeDriver } from '../../packages/agent/src/drivers/fake/fake-driver.js';
import { WorkloadManager } from '../../packages/agent/src/workload-manager.js';
import { WorkloadRecords } from '../../packages/agent/src/workload-records.js';
import { AgentClientPool } from '../../packages/coordinator/src/dispatch/agent-client.js';

const log = createLogger('dispatch-test', 'silent');

describe('dispatch to one host is capped at dispatch.maxInFlightPerHost and batched (real grpc-js server)', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  it('keeps at most the limit of creates in flight to an agent without RunCommands, one call each, in order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const arrivals: string[] = [];
    const server = new Server();
    servers.push(server);
    server.addService(loadAgentProto().Agent.service, {
      CreateWorkload: (call: ServerUnaryCall<pb.CreateWorkloadRequest__Output, pb.WorkloadStatus>, callback: sendUnaryData<pb.WorkloadStatus>) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        arrivals.push(call.request.workload_id);
        setTimeout(() => {
          inFlight--;
          callback(null, { workload_id: call.request.workload_id, name: 'w', kind: 'container', state: 'running', driver: 'fake', driver_ref: 'r', message: '', cpu_percent: 0, memory_used_mib: 0 });
        }, 50);
      },
    } as never);
    const port = await bindServer(server, '127.0.0.1:0', serverCredentials(undefined));
    const pool = new AgentClientPool({ deadlineMs: 10_000, maxAttempts: 1, maxInFlightPerHost: 3 });
    try {
      const client = pool.for('h1', `127.0.0.1:${port}`);
      const spec = parseWorkloadSpec({ name: 'w', kind: 'container', image: 'busybox', vcpus: 0.1, memory_mib: 16 });
      const ids = Array.from({ length: 12 }, (_, i) => `w-${i}`);
      const statuses = await Promise.all(ids.map((id) => client.create(`${id}.create`, id, spec)));
      expect(statuses.map((s) => s.workload_id)).toEqual(ids);
      expect(maxInFlight).toBe(3);
      expect(arrivals).toEqual(ids);
    } finally {
      pool.closeAll();
    }
  });

  it('sends a burst to a real agent in a few RunCommands calls, each command judged on its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dispatch-batch-'));
    const driver = await createFakeDriver({ kinds: ['container'], vcpus: 64, memoryMiB: 65_536 }, { hostId: 'h1', log });
    const manager = new WorkloadManager([driver], new WorkloadRecords(dir), new CommandLedger(join(dir, 'commands.jsonl')), log, 5);
    const handlers = agentHandlers(manager, () => Promise.reject(new Error('not used')), 'h1', log);
    const calls = { RunCommands: 0, CreateWorkload: 0, biggest: 0 };
    const counted = {
      ...handlers,
      RunCommands: (call: ServerUnaryCall<pb.CommandBatch__Output, pb.CommandBatchResult>, callback: sendUnaryData<pb.CommandBatchResult>) => {
        calls.RunCommands++;
        calls.biggest = Math.max(calls.biggest, call.request.commands.length);
        (handlers.RunCommands as (c: typeof call, cb: typeof callback) => void)(call, callback);
      },
      CreateWorkload: (call: ServerUnaryCall<pb.CreateWorkloadRequest__Output, pb.WorkloadStatus>, callback: sendUnaryData<pb.WorkloadStatus>) => {
        calls.CreateWorkload++;
        (handlers.CreateWorkload as (c: typeof call, cb: typeof callback) => void)(call, callback);
      },
    };
    const server = new Server();
    servers.push(server);
    server.addService(loadAgentProto().Agent.service, counted as never);
    const port = await bindServer(server, '127.0.0.1:0', serverCredentials(undefined));
    const pool = new AgentClientPool({ deadlineMs: 10_000, maxAttempts: 1, maxInFlightPerHost: 16 });
    try {
      const client = pool.for('h1', `127.0.0.1:${port}`);
      const spec = parseWorkloadSpec({ name: 'w', kind: 'container', image: 'busybox', vcpus: 0.1, memory_mib: 16 });
      const ids = Array.from({ length: 64 }, (_, i) => `w-${i}`);
      // One bad id among them: refused alone, with its field, and nothing else is.
      ids[10] = '../w-10';
      const outcomes = await Promise.allSettled(ids.map((id, i) => client.create(`c-${i}`, id, spec)));
      const refused = outcomes[10]!;
      expect(refused.status === 'rejected' && refused.reason).toBeInstanceOf(InvalidArgumentError);
      expect(refused.status === 'rejected' && (refused.reason as InvalidArgumentError).field).toBe('workload_id');
      const created = outcomes.filter((o, i) => i !== 10).map((o) => (o.status === 'fulfilled' ? o.value.workload_id : `failed: ${String(o.reason)}`));
      expect(created).toEqual(ids.filter((_, i) => i !== 10));
      expect((await manager.list()).length).toBe(63);
      expect(calls.CreateWorkload).toBe(0);
      expect(calls.RunCommands).toBeLessThanOrEqual(8);
      expect(calls.biggest).toBe(16);
      // A repeat of the same commands is answered from the ledger: same results, nothing new.
      const refs = (settled: PromiseSettledResult<pb.WorkloadStatus__Output>[]) => settled.map((o) => (o.status === 'fulfilled' ? o.value.driver_ref : 'refused'));
      const again = await Promise.allSettled(ids.map((id, i) => client.create(`c-${i}`, id, spec)));
      expect(refs(again)).toEqual(refs(outcomes));
      expect((await manager.list()).length).toBe(63);
    } finally {
      pool.closeAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
