import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { UnavailableError } from '@virtfleet/shared';
import { AgentClient } from './agent-client.js';

/** A loopback port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('AgentClient errors', () => {
  it('says plainly that an agent refusing connections cannot be reached', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const client = new AgentClient('h1', address, { deadlineMs: 5_000, maxAttempts: 1 });
    try {
      const err = await client.ping().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toBe(`host h1: cannot reach its agent at ${address}: connection refused`);
    } finally {
      client.close();
    }
  });
});
