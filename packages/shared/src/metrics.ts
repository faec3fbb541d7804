import { InterceptingCall, ServerInterceptingCall, status, type Interceptor, type ServerInterceptor } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { grpcStatusName } from './errors.js';
import type { HttpGuard, HttpRoute } from './http-server.js';

/**
 * Prometheus metrics of one daemon. Every virtfleet metric is named
 * `virtfleet_...` with its unit in the name; process and Node.js metrics
 * (`process_*`, `nodejs_*`) keep prom-client's standard names. Each daemon
 * has its own registry, never prom-client's global one, so two daemons in
 * one process (tests) do not mix.
 */
export function newMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * A gauge with one series per measure (capacity, reserved, allocated, used,
 * ...), read at scrape time from `read`; no series while it has nothing.
 */
export function measureGauge(registry: Registry, name: string, help: string, read: () => Record<string, number> | undefined): Gauge<'measure'> {
  return new Gauge({
    name,
    help,
    labelNames: ['measure'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [measure, value] of Object.entries(read() ?? {})) this.set({ measure }, value);
    },
  });
}

/** `GET /metrics`: the registry in Prometheus text format, for whoever `guard` lets through. */
export function metricsRoute(registry: Registry, guard: HttpGuard): HttpRoute {
  return { method: 'GET', path: '/metrics', guard, handler: async () => ({ contentType: registry.contentType, body: await registry.metrics() }) };
}

/** gRPC call durations: from 0.5 ms (a cached read) to 5 minutes (a stream or a long create). */
const GRPC_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];


/** `/virtfleet.v1.Coordinator/SubmitWorkload` → service and method. */
function splitPath(path: string): { service: string; method: string } {
  const at = path.lastIndexOf('/');
  return { service: path.slice(1, at), method: path.slice(at + 1) };
}

/**
 * Per-call bookkeeping in O(1): the label children of each method and code
 * are made once and kept, so a call costs a map lookup, a histogram observe
 * and a counter increment.
 */
class CallMetrics {
  private readonly timers = new Map<string, { observe(seconds: number): void }>();
  private readonly counters = new Map<string, { inc(): void }>();

  constructor(
    private readonly duration: Histogram<'service' | 'method'>,
    private readonly handled: Counter<'service' | 'method' | 'code'>,
  ) {}

  record(path: string, code: status, seconds: number): void {
    let timer = this.timers.get(path);
    if (!timer) {
      timer = this.duration.labels(splitPath(path));
      this.timers.set(path, timer);
    }
    timer.observe(seconds);
    const key = `${code}${path}`;
    let counter = this.counters.get(key);
    if (!counter) {
      counter = this.handled.labels({ ...splitPath(path), code: grpcStatusName(code) });
      this.counters.set(key, counter);
    }
    counter.inc();
  }
}

/**
 * A server interceptor counting every call by service, method and status
 * code (`virtfleet_grpc_server_handled_total`) and timing it from arrival
 * to status (`virtfleet_grpc_server_handling_seconds`). Put it first in the
 * server's interceptor list: the interceptors after it (authorization)
 * answer through it, so their refusals are counted too. grpc-js answers
 * unknown methods (UNIMPLEMENTED) before any interceptor, so the methods
 * counted are the registered ones.
 */
export function grpcServerMetrics(registry: Registry): ServerInterceptor {
  const calls = new CallMetrics(
    new Histogram({ name: 'virtfleet_grpc_server_handling_seconds', help: 'Time from a gRPC call’s arrival to its status, by method.', labelNames: ['service', 'method'], buckets: GRPC_SECONDS_BUCKETS, registers: [registry] }),
    new Counter({ name: 'virtfleet_grpc_server_handled_total', help: 'gRPC calls answered, by method and status code (CANCELLED: the client went away).', labelNames: ['service', 'method', 'code'], registers: [registry] }),
  );
  return (descriptor, call) => {
    const startedAt = performance.now();
    let done = false;
    const finish = (code: status) => {
      if (done) return;
      done = true;
      calls.record(descriptor.path, code, (performance.now() - startedAt) / 1000);
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => finish(status.CANCELLED) }),
      sendStatus: (outcome, next) => {
        finish(outcome.code);
        next(outcome);
      },
    });
  };
}

/**
 * A client interceptor counting and timing every call a client makes
 * (`virtfleet_grpc_client_handled_total`, `virtfleet_grpc_client_handling_seconds`),
 * retries included in the time. One per registry: share it between clients.
 */
export function grpcClientMetrics(registry: Registry): Interceptor {
  const calls = new CallMetrics(
    new Histogram({ name: 'virtfleet_grpc_client_handling_seconds', help: 'Time from a gRPC call’s start to its status, by method, as the caller measures it.', labelNames: ['service', 'method'], buckets: GRPC_SECONDS_BUCKETS, registers: [registry] }),
    new Counter({ name: 'virtfleet_grpc_client_handled_total', help: 'gRPC calls made and ended, by method and status code.', labelNames: ['service', 'method', 'code'], registers: [registry] }),
  );
  return (options, nextCall) => {
    const startedAt = performance.now();
    const path = options.method_definition.path;
    return new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) =>
        next(metadata, {
          onReceiveStatus: (outcome, nextStatus) => {
            calls.record(path, outcome.code, (performance.now() - startedAt) / 1000);
            nextStatus(outcome);
          },
        }),
    });
  };
}

/**
 * Counts the NATS connection's disconnects and reconnects
 * (`virtfleet_nats_disconnects_total`, `virtfleet_nats_reconnects_total`),
 * and reports its traffic (`virtfleet_nats_{in,out}_{messages,bytes}_total`).
 */
export function watchNats(nc: NatsConnection, registry: Registry): void {
  const disconnects = new Counter({ name: 'virtfleet_nats_disconnects_total', help: 'Times the NATS connection was lost.', registers: [registry] });
  const reconnects = new Counter({ name: 'virtfleet_nats_reconnects_total', help: 'Times the NATS connection was made again after a loss.', registers: [registry] });
  const traffic = (name: string, help: string, read: (s: ReturnType<NatsConnection['stats']>) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read(nc.stats()));
      },
    });
  traffic('virtfleet_nats_in_messages_total', 'Messages received on the NATS connection.', (s) => s.inMsgs);
  traffic('virtfleet_nats_out_messages_total', 'Messages sent on the NATS connection.', (s) => s.outMsgs);
  traffic('virtfleet_nats_in_bytes_total', 'Bytes received on the NATS connection.', (s) => s.inBytes);
  traffic('virtfleet_nats_out_bytes_total', 'Bytes sent on the NATS connection.', (s) => s.outBytes);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') disconnects.inc();
      else if (s.type === 'reconnect') reconnects.inc();
    }
  })();
}
