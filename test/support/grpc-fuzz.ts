import { once } from 'node:events';
import { status, type Client, type MethodDefinition, type ServiceDefinition, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import type fc from 'fast-check';
import { ERROR_METADATA } from '@virtfleet/shared';

/*
 * Fuzzing a gRPC service over a real connection (issue 12, "Hardening the
 * inputs"): each generated object goes on the wire as it is, through a raw
 * grpc-js client of the service definition, and what comes back is the
 * server's own answer.
 */

/** What the fuzz does with one method of a service. */
export interface MethodFuzz {
  /** One generated call: the request, or for a client stream its messages in order. */
  input: fc.Arbitrary<unknown>;
  /**
   * Every generated input is built to be refused: it names nothing that
   * exists, or breaks a rule the method documents. An OK answer to one is a
   * failure (a rule the server does not enforce). Reads, and changes whose
   * generated inputs that may pass change nothing, say false.
   */
  refusedByConstruction: boolean;
  /** Codes besides OK and REFUSALS the method may answer with, and why. */
  alsoExpected?: status[];
}

/** How a server refuses a request it understood: never UNKNOWN or INTERNAL. */
export const REFUSALS: readonly status[] = [status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.ALREADY_EXISTS, status.RESOURCE_EXHAUSTED, status.PERMISSION_DENIED];

export interface Outcome {
  method: string;
  input: unknown;
  code: status;
  details: string;
  /** The field an INVALID_ARGUMENT names (the virtfleet-field trailer). */
  field: string;
  /** A unary reply, or a server stream's messages. */
  reply: unknown;
}

/** A call's input for a failure message: long strings and bytes cut short. */
export function preview(value: unknown, max = 600): string {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string') return v.length > 80 ? `${v.slice(0, 80)}…(${v.length} chars)` : v;
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    if (typeof v === 'bigint') return String(v);
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return `<${((v as { data?: unknown[] }).data ?? []).length} bytes>`;
    if (Array.isArray(v) && v.length > 8) return [...v.slice(0, 8), `…(${v.length} items)`];
    return v;
  });
  return text === undefined ? String(value) : text.length > max ? `${text.slice(0, max)}…` : text;
}

function fieldOf(metadata: StatusObject['metadata'] | undefined): string {
  return String(metadata?.get(ERROR_METADATA.field)[0] ?? '');
}

/** A server stream that asks to follow stays open: the test cancels it after this long, and counts it answered. */
const OPEN_STREAM_MS = 250;

/**
 * Calls `method` of `client` with `input` as the service definition says it
 * is called (unary, server stream, client stream) and resolves to the status
 * it ended with; never rejects.
 */
export function callRaw(client: Client, definition: MethodDefinition<unknown, unknown>, method: string, input: unknown, deadlineMs: number): Promise<Outcome> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  if (!fn) return Promise.resolve({ method, input, code: status.UNIMPLEMENTED, details: `the client has no method ${method}`, field: '', reply: undefined });
  const deadline = new Date(Date.now() + deadlineMs);
  const ended = (err: ServiceError | null, reply: unknown): Outcome =>
    err ? { method, input, code: err.code, details: err.details ?? err.message, field: fieldOf(err.metadata), reply } : { method, input, code: status.OK, details: '', field: '', reply };

  if (!definition.requestStream && !definition.responseStream) {
    return new Promise((resolve) => fn.call(client, input, { deadline }, (err: ServiceError | null, reply: unknown) => resolve(ended(err, reply))));
  }
  if (definition.responseStream) {
    return new Promise((resolve) => {
      const call = fn.call(client, input, { deadline }) as NodeJS.EventEmitter & { cancel(): void };
      const messages: unknown[] = [];
      let cancelledOpen = false;
      const req = input as { follow?: boolean; options?: { follow?: boolean } | null };
      const timer = req.follow || req.options?.follow ? setTimeout(() => ((cancelledOpen = true), call.cancel()), OPEN_STREAM_MS) : undefined;
      call.on('data', (m: unknown) => messages.push(m));
      // The status below says everything; an 'error' event without a listener would throw.
      call.on('error', () => undefined);
      call.on('status', (s: StatusObject) => {
        clearTimeout(timer);
        if (cancelledOpen && s.code === status.CANCELLED) resolve({ method, input, code: status.OK, details: 'open stream, cancelled by the test', field: '', reply: messages });
        else resolve({ method, input, code: s.code, details: s.details, field: fieldOf(s.metadata), reply: messages });
      });
    });
  }
  return new Promise((resolve) => {
    let answered = false;
    const call = fn.call(client, { deadline }, (err: ServiceError | null, reply: unknown) => {
      answered = true;
      resolve(ended(err, reply));
    }) as NodeJS.EventEmitter & { write(message: unknown): boolean; end(): void };
    call.on('error', () => undefined);
    const messages = Array.isArray(input) ? (input as unknown[]) : [input];
    void (async () => {
      for (const m of messages) {
        if (answered) return;
        // A server that refused at the first message answers before the rest is written; stop writing then.
        if (!call.write(m)) await Promise.race([once(call, 'drain'), once(call, 'status'), new Promise((r) => setTimeout(r, deadlineMs))]);
      }
      if (!answered) call.end();
    })();
  });
}

/** The methods of a service definition and whether each streams its request or its reply. */
export function shapesOf(service: ServiceDefinition): Record<string, string> {
  return Object.fromEntries(Object.entries(service).map(([name, d]) => [name, `${d.requestStream ? 'stream ' : ''}request, ${d.responseStream ? 'stream ' : ''}reply`]));
}

/** Runs `tasks` with at most `limit` under way at once, answers in order. */
export async function bounded<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** Counts of outcomes, per method and in all. */
export class Tally {
  readonly perMethod = new Map<string, { calls: number; ok: number; invalid: number; codes: Map<string, number> }>();
  calls = 0;
  invalidWithField = 0;

  add(o: Outcome): void {
    const m = this.perMethod.get(o.method) ?? { calls: 0, ok: 0, invalid: 0, codes: new Map<string, number>() };
    this.perMethod.set(o.method, m);
    m.calls++;
    this.calls++;
    if (o.code === status.OK) m.ok++;
    if (o.code === status.INVALID_ARGUMENT && o.field) {
      m.invalid++;
      this.invalidWithField++;
    }
    const name = status[o.code] ?? String(o.code);
    m.codes.set(name, (m.codes.get(name) ?? 0) + 1);
  }

  minPerMethod(): number {
    return Math.min(...[...this.perMethod.values()].map((m) => m.calls));
  }

  /** One line per method: calls and how they ended. */
  report(): string {
    return [...this.perMethod.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, m]) => `${name.padEnd(26)} ${String(m.calls).padStart(5)}  ${[...m.codes.entries()].map(([c, n]) => `${c} ${n}`).join(', ')}`)
      .join('\n');
  }
}
