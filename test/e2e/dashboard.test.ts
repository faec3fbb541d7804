import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';

/** Where the screenshots go (ignored by git): test-artifacts/dashboard/ at the repository root. */
const ARTIFACTS = resolve(import.meta.dirname, '..', '..', 'test-artifacts', 'dashboard');
/** Every button that acts (data-action), and their labels: a viewer must see none of them. */
const ACTION_LABELS = /^(New workload|Start|Stop|Pause|Resume|Delete|Migrate|Backup|Cordon|Uncordon|Drain|Undrain|Switch policy)$/;
const SPEC = `name: ui-web
kind: container
image: sim:latest
vcpus: 0.1
memory_mib: 16
`;

// The web dashboard in headless Chromium (Debian's, driven by playwright-core) against a real cluster:
// the coordinator serves it at / and it talks to the cluster only through the token-authenticated API.
describe('web dashboard', () => {
  let cluster: TestCluster;
  let browser: Browser;
  let page: Page;
  let admin: string;
  let viewer: string;
  let workloadId = '';
  const shots: string[] = [];
  const pageErrors: string[] = [];

  const url = (hash = '') => `https://127.0.0.1:${cluster.coordinatorHttpPort}/${hash}`;
  const shot = async (name: string) => {
    const path = join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  };
  const signIn = async (token: string) => {
    await page.goto(url());
    await page.getByTestId('token').fill(token);
    await page.getByTestId('login').click();
    await page.getByTestId('role').waitFor();
  };
  const actionButtons = async () => ({
    byAttribute: await page.locator('[data-action]').count(),
    byLabel: await page.getByRole('button', { name: ACTION_LABELS }).count(),
  });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    await waitForHostsUp(cluster);
    const token = async (role: string) => (await cluster.api.createToken({ role, tenant: '', ttl_seconds: '0', description: `dashboard ${role}`, request_id: '' })).bearer;
    admin = await token('admin');
    viewer = await token('viewer');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    // The cluster's CA is not in Chromium's store.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Uncaught/.test(m.text())) pageErrors.push(m.text());
    });
    page.on('dialog', (d) => void d.accept());
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
    if (shots.length > 0) console.log(`dashboard screenshots:\n  ${shots.join('\n  ')}`);
  });

  it('is served at / and signs in with an admin token', async () => {
    const res = await page.goto(url());
    expect([res?.status(), res?.headers()['content-type']]).toEqual([200, 'text/html; charset=utf-8']);
    await signIn(admin);
    expect(await page.getByTestId('role').textContent()).toBe('admin');
    await page.locator('[data-testid=hosts-table] tr[data-host] [data-state=up]').first().waitFor();
    // The chart has drawn a line: a few reads of the host's usage, 2 s apart.
    await page.locator('.chart[data-points]:not([data-points="0"]):not([data-points="1"]):not([data-points="2"]) canvas').first().waitFor();
    await page.getByTestId('drivers-health').waitFor();
    expect(await page.getByTestId('hosts-up').textContent()).toBe('1/1');
    await shot('1-overview');
  });

  it('creates a workload from a spec and shows it reach running', async () => {
    await page.click('[data-nav=workloads]');
    await page.click('[data-action=create]');
    await page.getByTestId('spec').fill(SPEC);
    await page.getByTestId('submit-spec').click();
    const row = page.locator('tr[data-workload="ui-web"]');
    await row.locator('[data-state=running]').waitFor({ timeout: 30_000 });
    const listed = (await cluster.api.list({})).workloads.find((w) => w.spec?.name === 'ui-web');
    expect(listed?.state, 'the API agrees').toBe('running');
    workloadId = listed!.id;
    await shot('2-workloads');
  });

  it('pauses it from its page and the state_changed event arrives', async () => {
    await page.locator('tr[data-workload="ui-web"] a').click();
    await page.locator('[data-testid=workload-state] [data-state=running]').waitFor();
    await page.locator('[data-testid=explain-table] tbody tr').first().waitFor();
    await page.click('[data-action=pause]');
    await page.locator('[data-testid=workload-state] [data-state=paused]').waitFor();
    expect((await cluster.api.get(workloadId)).state, 'the API agrees').toBe('paused');
    await page.locator('[data-testid=workload-events] tr[data-event-type="workload.state_changed"]', { hasText: 'running → paused' }).waitFor();
    await shot('3-workload-paused');

    await page.click('[data-nav=events]');
    await page.locator('[data-testid=events-table] tr[data-event-type="workload.state_changed"]', { hasText: 'ui-web: running → paused' }).waitFor();
    await shot('4-events');
  });

  it('lets an admin drain a host, with its progress, and undrain it', async () => {
    const hostId = (await cluster.api.hosts()).hosts[0]!.id;
    await page.click('[data-nav=hosts]');
    const row = page.locator(`[data-testid=host-actions-table] tr[data-host="${hostId}"]`);
    await row.locator('[data-action=cordon]').waitFor();
    // The only host: the paused workload has nowhere to go, so the drain ends with it left.
    await row.locator('[data-action=drain]').click();
    await row.locator(`[data-testid="drain-${hostId}"] [data-state=incomplete]`).waitFor({ timeout: 30_000 });
    expect((await cluster.api.hosts()).hosts[0]?.cordoned, 'the API agrees: cordoned').toBe(true);
    await shot('5-hosts-drained');
    await row.locator('[data-action=undrain]').click();
    await row.locator('[data-action=cordon]').waitFor();
    expect((await cluster.api.hosts()).hosts[0]?.cordoned, 'the API agrees: uncordoned').toBe(false);

    await page.click('[data-nav=queue]');
    await page.getByTestId('queue-policy').waitFor();
    expect(await page.locator('[data-action=policy]').count()).toBe(1);
  });

  it('shows a viewer token no action buttons anywhere', async () => {
    await page.getByTestId('logout').click();
    await page.getByTestId('token').waitFor();
    await signIn(viewer);
    expect(await page.getByTestId('role').textContent()).toBe('viewer');
    const pages: { hash: string; loaded: string }[] = [
      { hash: '#/overview', loaded: '[data-testid=hosts-table] tr[data-host]' },
      { hash: '#/workloads', loaded: 'tr[data-workload="ui-web"] [data-state=paused]' },
      { hash: `#/workloads/${workloadId}`, loaded: '[data-testid=workload-state] [data-state=paused]' },
      { hash: '#/queue', loaded: '[data-testid=queue-policy]' },
      { hash: '#/events', loaded: '[data-testid=events-table] tr[data-event-type]' },
      { hash: '#/hosts', loaded: '[data-testid=host-actions-table] tr[data-host]' },
    ];
    const seen: Record<string, { byAttribute: number; byLabel: number }> = {};
    for (const p of pages) {
      await page.goto(url(p.hash));
      await page.locator(p.loaded).first().waitFor();
      seen[p.hash] = await actionButtons();
      if (p.hash.startsWith('#/workloads/')) await shot('6-viewer-workload');
    }
    expect(seen).toEqual(Object.fromEntries(pages.map((p) => [p.hash, { byAttribute: 0, byLabel: 0 }])));
    expect(pageErrors, 'no script errors or CSP violations').toEqual([]);
  });
});
