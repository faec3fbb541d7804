import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveDashboard, staticFileOf } from './dashboard-static.js';

describe('staticFileOf', () => {
  const root = '/srv/dist';
  it.each([
    { path: '/', want: '/srv/dist/index.html' },
    { path: '/app.js', want: '/srv/dist/app.js' },
    { path: '/assets/a%20b.css', want: '/srv/dist/assets/a b.css' },
    { path: '/../etc/passwd', want: undefined },
    { path: '/assets/../../etc/passwd', want: undefined },
    { path: '/%2e%2e/etc/passwd', want: undefined },
    { path: '/%2E%2E%2Fetc%2Fpasswd', want: undefined },
    { path: '/%252e%252e/etc/passwd', want: undefined },
    { path: '/..%2fetc/passwd', want: undefined },
    { path: '/..%5c..%5cetc', want: undefined },
    { path: '/a\\..\\..\\etc', want: undefined },
    { path: '/app.js%00.html', want: undefined },
    { path: '/%E0%A4%A', want: undefined },
    { path: '/./app.js', want: undefined },
    { path: 'app.js', want: undefined },
  ])('$path → $want', ({ path, want }) => {
    expect(staticFileOf(root, path)).toBe(want);
  });
});

describe('serveDashboard', () => {
  let dir: string;
  let server: Server;
  let root: string | undefined;
  const get = (path: string, accept = '*/*', method = 'GET') =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path, method, headers: { accept } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
      });
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dashboard-static-'));
    mkdirSync(join(dir, 'dist'));
    writeFileSync(join(dir, 'dist', 'index.html'), '<!doctype html><title>vf</title>');
    writeFileSync(join(dir, 'dist', 'app.js'), 'console.log(1)');
    writeFileSync(join(dir, 'dist', 'app.css'), 'body{}');
    writeFileSync(join(dir, 'secret.txt'), 'outside');
    root = join(dir, 'dist');
    server = createServer((req, res) => {
      void serveDashboard(root, req, res).then((answered) => {
        if (!answered) res.writeHead(404).end('not found');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    { name: 'the app at /', path: '/', status: 200, type: 'text/html; charset=utf-8', body: /<title>vf/ },
    { name: 'its script', path: '/app.js', status: 200, type: 'text/javascript; charset=utf-8', body: /console/ },
    { name: 'its styles', path: '/app.css', status: 200, type: 'text/css; charset=utf-8', body: /body/ },
    { name: 'an app route a browser opens', path: '/workloads/web', accept: 'text/html,application/xhtml+xml', status: 200, type: 'text/html; charset=utf-8', body: /<title>vf/ },
    { name: 'an unknown file a program asks for', path: '/nope.js', status: 404, body: /not found/ },
    { name: 'the API, never', path: '/v1/Nothing', accept: 'text/html', status: 404, body: /not found/ },
    { name: 'a way out by ..', path: '/../secret.txt', accept: 'text/html', status: 404, body: /not found/ },
    { name: 'a way out by %2e%2e', path: '/%2e%2e/secret.txt', status: 404, body: /not found/ },
    { name: 'a way out by %2e%2e%2f', path: '/%2e%2e%2fsecret.txt', accept: 'text/html', status: 404, body: /not found/ },
    { name: 'a way out, double-encoded', path: '/%252e%252e/secret.txt', status: 404, body: /not found/ },
    { name: 'a POST', path: '/', method: 'POST', status: 404, body: /not found/ },
  ])('$name: $path → $status', async ({ path, accept, method, status, type, body }) => {
    const r = await get(path, accept, method);
    expect([r.status, type ? r.type : undefined], r.body).toEqual([status, type]);
    expect(r.body).toMatch(body);
    expect(r.body).not.toContain('outside');
  });

  it('answers 503 at / with how to build it when the dashboard is not built', async () => {
    const was = root;
    root = join(dir, 'missing');
    try {
      const r = await get('/');
      expect([r.status, r.body]).toEqual([503, expect.stringMatching(/npm run build/)]);
      expect((await get('/app.js')).status, 'a file a program asks for: 404').toBe(404);
    } finally {
      root = was;
    }
  });
});
