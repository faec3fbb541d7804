import { once } from 'node:events';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { InvalidArgumentError } from './errors.js';
import { parseRfc3339Nanos } from './events.js';
import type { LogOptions__Output } from './generated/virtfleet/v1/LogOptions.js';

/** Where a piece of a workload's log came from. */
export type LogStream = 'stdout' | 'stderr' | 'console';

export interface LogChunk {
  stream: LogStream;
  data: Buffer;
}

/** What part of a log to read; see LogOptions in types.proto. */
export interface LogRequest {
  follow: boolean;
  /** Lines before the end to start at; undefined: the whole retained log. */
  tailLines?: number;
  /** Containers only: written at or after this time (ms since the epoch). */
  sinceMs?: number;
}

export const MAX_TAIL_LINES = 1_000_000;

/**
 * Validates LogOptions from a request.
 * @throws InvalidArgumentError naming `<prefix>.tail_lines` or `<prefix>.since`
 */
export function parseLogOptions(options: LogOptions__Output | null | undefined, prefix = 'options'): LogRequest {
  const request: LogRequest = { follow: options?.follow ?? false };
  const tail = options?.tail_lines;
  if (tail !== undefined && tail !== null) {
    if (!Number.isInteger(tail) || tail < 0 || tail > MAX_TAIL_LINES) throw new InvalidArgumentError(`${prefix}.tail_lines`, `must be a whole number from 0 to ${MAX_TAIL_LINES}`);
    request.tailLines = tail;
  }
  if (options?.since) {
    const nanos = parseRfc3339Nanos(options.since);
    if (nanos === undefined) throw new InvalidArgumentError(`${prefix}.since`, `must be an RFC 3339 time such as 2025-01-02T15:04:05Z, not ${JSON.stringify(options.since.slice(0, 64))}`);
    request.sinceMs = Number(nanos / 1_000_000n);
  }
  return request;
}

/** The LogOptions message for a request. */
export function toLogOptions(request: LogRequest): { follow: boolean; tail_lines?: number; since: string } {
  return {
    follow: request.follow,
    ...(request.tailLines !== undefined ? { tail_lines: request.tailLines } : {}),
    since: request.sinceMs !== undefined ? new Date(request.sinceMs).toISOString() : '',
  };
}

const DOCKER_STREAMS: Record<number, LogStream | undefined> = { 1: 'stdout', 2: 'stderr' };
const FRAME_HEADER = 8;

/**
 * Splits Docker's multiplexed log stream (a container without a TTY) into
 * chunks: each frame is a stream byte (1 stdout, 2 stderr), three zero
 * bytes, a big-endian 32-bit length, then that many bytes. Frames may
 * straddle the chunks it is given. Stdin frames (0) are dropped.
 */
export async function* demuxDockerLog(chunks: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<LogChunk> {
  let pending = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, Buffer.from(chunk)]);
    while (pending.length >= FRAME_HEADER) {
      const size = pending.readUInt32BE(4);
      if (pending.length < FRAME_HEADER + size) break;
      const stream = DOCKER_STREAMS[pending[0]!];
      const data = pending.subarray(FRAME_HEADER, FRAME_HEADER + size);
      pending = pending.subarray(FRAME_HEADER + size);
      if (stream && data.length > 0) yield { stream, data: Buffer.from(data) };
    }
  }
}

/** The last `lines` lines of `text` (a trailing newline ends the last line, it does not start another). */
export function lastLines(text: Buffer, lines: number): Buffer {
  if (lines <= 0) return Buffer.alloc(0);
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--;
  let start = end;
  let found = 0;
  while (start > 0) {
    const nl = text.lastIndexOf(0x0a, start - 1);
    if (nl < 0) return text;
    found++;
    if (found === lines) return text.subarray(nl + 1);
    start = nl;
  }
  return text;
}

/**
 * Writes each message of `source` to a server stream, waiting for the
 * stream to drain whenever its buffer is full, so a slow reader slows the
 * source rather than growing memory. Stops when the call is cancelled.
 */
export async function pipeToCall<T>(source: AsyncIterable<T>, call: ServerWritableStream<unknown, T>, signal: AbortSignal): Promise<void> {
  for await (const message of source) {
    if (signal.aborted) return;
    if (!call.write(message)) await once(call, 'drain', { signal }).catch(() => undefined);
  }
}

/** An AbortSignal that fires when the server call is cancelled or closed. */
export function callSignal(call: ServerWritableStream<unknown, unknown>): AbortSignal {
  const abort = new AbortController();
  const stop = () => abort.abort();
  call.on('cancelled', stop);
  call.on('close', stop);
  call.on('error', stop);
  return abort.signal;
}
