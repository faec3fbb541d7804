import './styles.css';
import 'uplot/dist/uPlot.min.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, session, whenUnauthenticated, whoami } from './api.js';
import { describeError, PrincipalContext, Toasts } from './components.js';
import { feed } from './feed.js';
import { useRoute } from './hooks.js';
import { Events } from './pages/events.js';
import { Hosts } from './pages/hosts.js';
import { Overview } from './pages/overview.js';
import { Queue } from './pages/queue.js';
import { WorkloadDetail } from './pages/workload-detail.js';
import { Workloads } from './pages/workloads.js';
import type { Principal } from './types.js';

function Login({ onLogin, notice }: { onLogin: (token: string, principal: Principal) => void; notice: string | undefined }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    try {
      onLogin(t, await whoami(t));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? `this token is not accepted: ${err.message}` : describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login">
      <form class="card login-card" onSubmit={(e) => void submit(e)}>
        <h1>virtfleet</h1>
        <p class="sub">
          Sign in with an API token (<code>virtfleet token create --role viewer|operator|admin</code>; <code>npm run cluster</code> puts an admin token in <code>~/.config/virtfleet/cli.yaml</code>).
        </p>
        <input class="input" type="password" name="token" placeholder="vft_…" autocomplete="off" data-testid="token" value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        {error ? <div class="error">{error}</div> : null}
        <button type="submit" class="btn btn-primary" data-testid="login" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}

const PAGES: { path: string; label: string }[] = [
  { path: 'overview', label: 'Overview' },
  { path: 'workloads', label: 'Workloads' },
  { path: 'queue', label: 'Queue' },
  { path: 'events', label: 'Events' },
  { path: 'hosts', label: 'Hosts' },
];

function Page({ route }: { route: string[] }) {
  const [page, arg] = route;
  switch (page) {
    case 'workloads':
      return arg ? <WorkloadDetail key={arg} id={arg} /> : <Workloads />;
    case 'queue':
      return <Queue />;
    case 'events':
      return <Events />;
    case 'hosts':
      return <Hosts />;
    default:
      return <Overview />;
  }
}

function App() {
  const [principal, setPrincipal] = useState<Principal | undefined>(undefined);
  const [checking, setChecking] = useState(session.token() !== null);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const route = useRoute();

  const logout = (why?: string) => {
    session.clear();
    feed.stop();
    setPrincipal(undefined);
    setNotice(why);
  };

  useEffect(() => {
    whenUnauthenticated(() => logout('the token is no longer accepted (revoked or expired): sign in again'));
    const token = session.token();
    if (!token) return;
    whoami(token)
      .then((p) => {
        setPrincipal(p);
        feed.start();
      })
      .catch((err: unknown) => logout(describeError(err)))
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <p class="sub center">checking the token…</p>;
  if (!principal)
    return (
      <>
        <Login
          notice={notice}
          onLogin={(token, p) => {
            session.save(token);
            setNotice(undefined);
            setPrincipal(p);
            feed.start();
          }}
        />
        <Toasts />
      </>
    );
  const current = route[0] ?? 'overview';
  return (
    <PrincipalContext.Provider value={principal}>
      <header class="top">
        <a class="brand" href="#/overview">
          virtfleet
        </a>
        <nav>
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} class={current === p.path ? 'active' : ''} data-nav={p.path}>
              {p.label}
            </a>
          ))}
        </nav>
        <div class="who" data-testid="whoami">
          <span class={`role role-${principal.role}`} data-testid="role">
            {principal.role}
          </span>
          <span class="sub">
            {principal.kind === 'token' ? `token ${principal.id}` : principal.kind === 'certificate' ? `certificate ${principal.id}` : 'anonymous'}
            {principal.tenant ? `, tenant ${principal.tenant}` : ''}
          </span>
          <button type="button" class="btn" data-testid="logout" onClick={() => logout()}>
            Sign out
          </button>
        </div>
      </header>
      <main>
        <Page route={route} />
      </main>
      <Toasts />
    </PrincipalContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
