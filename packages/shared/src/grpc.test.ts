import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from './errors.js';
import { unary } from './grpc.js';
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
