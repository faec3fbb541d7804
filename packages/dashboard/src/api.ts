import { SseParser, type SseMessage } from './sse.js';
import type { Principal } from './types.js';

/** A refused or failed call: the gateway's `{error: {code, message, field}}` with its HTTP status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'virtfleet.token';

/** The bearer token, kept in sessionStorage: gone when the tab closes. */
export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  save: (token: string): void => sessionStorage.setItem(TOKEN_KEY, token),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

let onUnauthenticated: (() => void) | undefined;
/** What to do when the token stops working (revoked, expired): back to the login page. */
export function whenUnauthenticated(handler: () => void): void {
  onUnauthenticated = handler;
}

function headers(token = session.token()): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function answer<T>(res: Response): Promise<T> {
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? {} : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
    if (res.status === 401) onUnauthenticated?.();
    throw new ApiError(res.status, error?.code ?? `HTTP ${res.status}`, error?.message ?? (text.slice(0, 200) || res.statusText), error?.field);
  }
  return json as T;
}

/** A unary API method, `POST /v1/<method>` with the request message as JSON. */
export async function call<T>(method: string, body: object = {}): Promise<T> {
  const res = await fetch(`/v1/${method}`, { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return answer<T>(res);
}

/** Who the token is, and its role: decides which actions the dashboard offers. */
export async function whoami(token: string): Promise<Principal> {
  return answer<Principal>(await fetch('/v1/whoami', { headers: headers(token) }));
}

/** A fresh request id for a mutating call (exactly-once on the server). */
export function requestId(): string {
  if (typeof crypto.randomUUID === 'function') return `ui-${crypto.randomUUID()}`;
  return `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * A server stream (`GET /v1/<method>?...`, Server-Sent Events) read with
 * fetch(), so the Authorization header goes along. Resolves when the server
 * ends the stream; rejects on a refusal or a broken connection, or when
 * `signal` aborts it.
 */
export async function stream(method: string, params: Record<string, string>, onMessage: (message: SseMessage) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(`/v1/${method}?${new URLSearchParams(params).toString()}`, { headers: { ...headers(), accept: 'text/event-stream' }, signal });
  if (!res.ok || !res.body) {
    await answer(res);
    return;
  }
  const parser = new SseParser(onMessage);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    parser.push(value);
  }
}
