import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';

/**
 * The web dashboard (packages/dashboard) served as static files at `/`.
 * The files hold no data and are open to anyone; everything the dashboard
 * shows comes from the token-authenticated API under /v1/.
 */

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** Everything from this origin only; no inline scripts. uPlot and Preact set styles through the DOM, which style-src does not govern. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** The dashboard's built files (`@virtfleet/dashboard`'s dist/), or undefined when the package is not installed. */
export function dashboardDistDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@virtfleet/dashboard/package.json')), 'dist');
  } catch {
    return undefined;
  }
}

/**
 * The file under `root` that a URL path names, or undefined when it names
 * none safely: a path that is not absolute, holds `..`, a backslash, a NUL
 * or a malformed escape (before or after decoding), or that resolves
 * outside `root`. `/` is index.html.
 */
export function staticFileOf(root: string, urlPath: string): string | undefined {
  if (!urlPath.startsWith('/')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  for (const p of [urlPath, decoded]) if (p.includes('\0') || p.includes('\\') || p.split('/').some((part) => part === '..' || part === '.') || /%2e|%2f|%5c|%00/i.test(p)) return undefined;
  const file = resolve(root, `.${decoded === '/' ? '/index.html' : decoded}`);
  const inside = relative(resolve(root), file);
  if (inside === '' || inside.startsWith('..') || inside.startsWith(sep)) return undefined;
  return file;
}

async function fileOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    if (!(await stat(path)).isFile()) return undefined;
    return await readFile(path);
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, method: string, status: number, type: string, body: Buffer | string, cache: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': cache, ...SECURITY_HEADERS });
  res.end(method === 'HEAD' ? undefined : body);
}

/**
 * Serves the dashboard: a file of `root` by its path, and index.html for `/`
 * and for any other path a browser navigates to (its `accept` names
 * text/html) so the app's own routes load. Answers GET and HEAD only, never
 * under /v1/; resolves false to leave a request to the 404. When `root`
 * holds no build (undefined, or no index.html) `/` answers 503 saying how to
 * build it.
 */
export async function serveDashboard(root: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') return false;
  // The path as sent, before URL parsing would resolve its dot segments: a `..` is refused, not followed.
  const path = (req.url ?? '/').split(/[?#]/)[0] ?? '/';
  if (path.startsWith('/v1/')) return false;
  const wantsPage = path === '/' || /\btext\/html\b/.test(req.headers.accept ?? '');
  const index = root ? await fileOrUndefined(join(root, 'index.html')) : undefined;
  if (!index) {
    if (!wantsPage) return false;
    send(res, method, 503, 'text/plain; charset=utf-8', 'The web dashboard is not built: run `npm run build` (or `npm run build -w @virtfleet/dashboard`) and reload.\n', 'no-store');
    return true;
  }
  const file = root ? staticFileOf(root, path) : undefined;
  const body = file ? await fileOrUndefined(file) : undefined;
  if (file && body) {
    send(res, method, 200, CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream', body, 'no-cache');
    return true;
  }
  if (!wantsPage || file === undefined) return false;
  send(res, method, 200, CONTENT_TYPES['.html']!, index, 'no-cache');
  return true;
}
