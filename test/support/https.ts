import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { MutualTlsFiles } from '@virtfleet/shared';

export interface HttpsOptions {
  /** The CA the server's certificate must come from. */
  ca: string;
  /** A client certificate to present. */
  client?: MutualTlsFiles;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

function options(port: number, path: string, o: HttpsOptions): RequestOptions {
  return {
    host: '127.0.0.1',
    port,
    path,
    method: o.method ?? 'GET',
    ca: readFileSync(o.ca),
    ...(o.client ? { cert: readFileSync(o.client.cert), key: readFileSync(o.client.key) } : {}),
    headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
    agent: false,
  };
}

/** One request over HTTPS to 127.0.0.1:`port`, its whole answer read. */
export function httpsRequest(port: number, path: string, o: HttpsOptions): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(options(port, path, o), (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A response whose body is read as it comes (Server-Sent Events), until `close`. */
export function httpsStream(port: number, path: string, o: HttpsOptions): Promise<{ status: number; headers: IncomingMessage['headers']; text: () => string; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request(options(port, path, o), (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('error', () => undefined);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text: () => text, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}
