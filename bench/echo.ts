import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/support/processes.js';

export interface EchoBaseline {
  /** One unary echo round trip on a bare grpc-js server, no protobuf or logic. */
  call(): Promise<void>;
  stop(): void;
}

/** A bare grpc-js echo server in its own process, and a client of it: the gRPC baseline benchmarks compare against. */
export async function startEchoBaseline(payloadBytes = 16): Promise<EchoBaseline> {
  const identity = (b: Buffer) => b;
  const echo = spawn(process.execPath, [join(REPO_ROOT, 'bench/echo-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => echo.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const payload = Buffer.alloc(payloadBytes, 1);
  return {
    call: () =>
      new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest('/bench.Echo/Echo', identity, identity, payload, { deadline: new Date(Date.now() + 5000) }, (err: ServiceError | null) => (err ? reject(err) : resolve())),
      ),
    stop: () => {
      client.close();
      echo.kill('SIGTERM');
    },
  };
}
