import { Metadata, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError, toServiceError } from './errors.js';
import { connectionFailure, unary } from './grpc.js';
import { createLogger } from './logger.js';

const log = createLogger('test', 'silent');

function invoke<Res>(handler: ReturnType<typeof unary<object, Res>>): Promise<{ err: unknown; res: unknown }> {
  return new Promise((resolve) => {
    const callback: sendUnaryData<Res> = (err, res) => resolve({ err, res });
    handler({ request: {} } as ServerUnaryCall<object, Res>, callback);
  });
}

describe('unary', () => {
  it.each([
    ['a rejected promise', () => Promise.reject(new NotFoundError('workload', 'w1'))],
    [
      'a synchronous throw',
      () => {
        throw new NotFoundError('workload', 'w1');
      },
    ],
  ])('maps %s to its gRPC status', async (_name, handler) => {
    const { err } = await invoke(unary(log, 'Get', handler));
    expect(err).toMatchObject({ code: status.NOT_FOUND, details: 'workload "w1" not found' });
  });

  it('passes results through', async () => {
    expect(await invoke(unary(log, 'Get', () => Promise.resolve({ ok: true })))).toEqual({ err: null, res: { ok: true } });
  });
});

describe('connectionFailure', () => {
  const clientError = (code: status, details: string, metadata = new Metadata()): ServiceError => Object.assign(new Error(details), { code, details, metadata });
  it.each([
    ['a refused connection', 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7199. Resolution note: ', 'connection refused'],
    ['a refused IPv6 connection', 'No connection established. Last error: Error: connect ECONNREFUSED ::1:7199. Resolution note: ', 'connection refused'],
    ['an unreachable host', 'No connection established. Last error: Error: connect EHOSTUNREACH 10.0.0.9:7100. Resolution note: ', 'host unreachable'],
    ['an unknown host name', 'Name resolution failed for target dns:nosuch.invalid:7100', 'host name not resolved'],
    ['another cause', 'No connection established. Last error: Error: socket hang up. Resolution note: ', 'socket hang up'],
    ['a resolution note with text', 'No connection established. Last error: Error: boom. Resolution note: try again', 'boom'],
    ['a bare transport message', 'Connection dropped', 'Connection dropped'],
  ])('names %s in a few words', (_name, details, want) => {
    expect(connectionFailure(clientError(status.UNAVAILABLE, details))).toBe(want);
  });

  it('leaves alone what a server answered', () => {
    const fromServer = toServiceError(new UnavailableError('host h1 is down'));
    expect(connectionFailure(clientError(status.UNAVAILABLE, fromServer.details, fromServer.metadata))).toBeUndefined();
    expect(connectionFailure(clientError(status.DEADLINE_EXCEEDED, 'Deadline exceeded after 5.001s'))).toBeUndefined();
  });
});
