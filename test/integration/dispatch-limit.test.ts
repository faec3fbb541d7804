import { Server, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bindServer, loadAgentProto, parseWorkloadSpec, serverCredentials, type pb } from '@virtfleet/shared';
import { AgentClientPool } from '../../packages/coordinator/src/dispatch/agent-client.js';

describe('dispatch to one host is capped at dispatch.maxInFlightPerHost (real grpc-js server)', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  it('keeps at most the limit of creates in flight to a host, and completes every one in order', async () => {
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
});
