import { status, type Client, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall, type Server, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import { hostname } from 'node:os';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check';
import { z } from 'zod';
import { ERROR_METADATA, InternalError, isServiceError, toServiceError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * The largest message a virtfleet gRPC server takes (`grpc.maxMessageBytes`
 * of the coordinator and agent configs); a bigger one is refused with
 * RESOURCE_EXHAUSTED before any handler sees it. The smallest allowed value
 * leaves room for the biggest pieces virtfleet itself streams: 1 MiB of a
 * workload's state (migration, restore) and 256 KiB of an image import.
 */
export const GRPC_MESSAGE_LIMITS = {
  /** grpc-js's own default. @default 4194304 (4 MiB) */
  defaultBytes: 4 * 1024 * 1024,
  minBytes: 2 * 1024 * 1024,
  maxBytes: 64 * 1024 * 1024,
} as const;

/** `grpc.maxMessageBytes` of a daemon's config. */
export const grpcMaxMessageBytesSchema = z
  .number()
  .int('must be a whole number of bytes')
  .min(GRPC_MESSAGE_LIMITS.minBytes, `must be at least ${GRPC_MESSAGE_LIMITS.minBytes} (2 MiB: migrations and restores stream 1 MiB pieces)`)
  .max(GRPC_MESSAGE_LIMITS.maxBytes, `must be at most ${GRPC_MESSAGE_LIMITS.maxBytes} (64 MiB)`)
  .default(GRPC_MESSAGE_LIMITS.defaultBytes);

/**
 * The largest reply a virtfleet client takes: above any server's request
 * limit, because a reply may hold many records (a page of 5000 workloads, an
 * agent's every workload) where a request holds one. grpc-js would stop at 4 MiB.
 */
export const CLIENT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Adapts an async handler to grpc-js's callback style. Thrown errors become
 * gRPC statuses through the error table in errors.ts.
 */
export function unary<Req, Res>(log: Logger, method: string, handler: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => answer(log, method, () => handler(call.request, call), callback);
}

/** Like `unary`, for a method whose client streams its request: the handler reads the call (an async iterable of messages). */
export function clientStream<Req, Res>(log: Logger, method: string, handler: (call: ServerReadableStream<Req, Res>) => Promise<Res>) {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>): void => answer(log, method, () => handler(call), callback);
}

function answer<Res>(log: Logger, method: string, handle: () => Promise<Res>, callback: sendUnaryData<Res>): void {
  // Through an async function so that a synchronous throw becomes a rejection too.
  (async () => handle())().then(
    (response) => callback(null, response),
    (err: unknown) => {
      const serviceError = toServiceError(err);
      log.debug({ method, code: serviceError.code, err: serviceError.details }, 'request failed');
      callback(serviceError);
    },
  );
}

export function serverStream<Req, Res>(log: Logger, method: string, handler: (call: ServerWritableStream<Req, Res>) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    (async () => handler(call))().then(
      () => call.end(),
      (err: unknown) => {
        const serviceError = toServiceError(err);
        log.debug({ method, code: serviceError.code, err: serviceError.details }, 'stream failed');
        call.emit('error', serviceError);
      },
    );
  };
}

/** Registers grpc.health.v1.Health, reporting SERVING for the overall server and each named service. */
export function addHealthService(server: Server, services: string[]): HealthImplementation {
  const statusMap: ServingStatusMap = { '': 'SERVING' };
  for (const s of services) statusMap[s] = 'SERVING';
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);
  return health;
}

/**
 * Registers gRPC server reflection (v1 and v1alpha) for `definition`, so that
 * grpcurl-style tools can list and call the services; it answers whoever
 * the server's interceptors let through, as any other method.
 */
export function addReflectionService(server: Server, definition: PackageDefinition): void {
  new ReflectionService(definition).addToServer(server);
}

/** Binds a server and resolves to the port actually bound (useful with port 0). */
export function bindServer(server: Server, address: string, creds: Parameters<Server['bindAsync']>[1]): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** Stops accepting calls, lets running ones finish for up to `graceMs`, then cuts the rest off. */
export function shutdownServer(server: Server, graceMs = 5_000): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/** The address to give others for a server listening on `listen`: 0.0.0.0 and [::] cannot be dialled, so the host's name stands in. */
export function dialableAddress(listen: string, port: number): string {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return `${host === '0.0.0.0' || host === '[::]' || host === '' ? hostname() : host}:${port}`;
}

type UnaryMethod<Res> = (request: object, options: { deadline: Date }, callback: (err: ServiceError | null, res?: Res) => void) => void;

/**
 * Calls a unary method of a generated client by name, with a deadline.
 * `mapError` turns the client's ServiceError into the error the caller throws.
 */
export function callUnary<Res>(client: Client, method: string, request: object, deadline: Date, mapError: (err: ServiceError) => Error): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, UnaryMethod<Res> | undefined>)[method];
    if (!fn) {
      reject(new InternalError(`unknown method ${method}`));
      return;
    }
    fn.call(client, request, { deadline }, (err, res) => {
      if (!err) resolve(res as Res);
      else reject(isServiceError(err) ? mapError(err) : err);
    });
  });
}

/** Socket error codes a failed connection attempt reports, in words. */
const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
};

/**
 * Why a call never reached a server: `connection refused`, `host name not
 * resolved`, ... for an UNAVAILABLE raised by the client's own transport (a
 * virtfleet server always sets its trailers). Undefined for a server's answer.
 */
export function connectionFailure(err: ServiceError): string | undefined {
  if (err.code !== status.UNAVAILABLE || (err.metadata?.get(ERROR_METADATA.retryable).length ?? 0) > 0) return undefined;
  const details = err.details ?? '';
  if (details.startsWith('Name resolution failed')) return 'host name not resolved';
  const code = /\b(E[A-Z]{3,})\b/.exec(details)?.[1];
  if (code && SOCKET_ERRORS[code]) return SOCKET_ERRORS[code];
  // grpc-js: "No connection established. Last error: Error: <cause>. Resolution note: <often nothing>"
  const last = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(details)?.[1];
  return (last || details.replace(/\.?\s*Resolution note:\s*$/, '')).trim() || 'no connection';
}
