import { join } from 'node:path';
import { initCa, issueCertificate } from '@virtfleet/cli';
import type { MutualTlsFiles, Role } from '@virtfleet/shared';

/** Tests' CLI processes read no CLI config: the machine's own (`npm run cluster` writes one, with a token) is for another cluster. */
export const NO_CLI_CONFIG = { VIRTFLEET_CLI_CONFIG: '/dev/null' } as const;

/** A cluster CA of a test's own, and the certificates it issued, each issued once. */
export interface TestPki {
  dir: string;
  ca: string;
  /** The certificate of `role`/`name`, issued on first use. */
  issue(role: Role, name: string): Promise<MutualTlsFiles>;
  /** grpc.tls of a simulated fleet: a certificate for each of `hostIds`, found through `{host}` in the paths. */
  fleetTls(hostIds: string[]): Promise<MutualTlsFiles>;
  /** VIRTFLEET_CA/_CERT/_KEY for a CLI process, as operator `name`. */
  cliEnv(name?: string): Promise<Record<string, string>>;
}

/** Creates a CA in `dir` with the CLI's own PKI code (`virtfleet pki`), as an operator would. */
export async function createTestPki(dir: string): Promise<TestPki> {
  const ca = await initCa(dir);
  const issued = new Map<string, Promise<MutualTlsFiles>>();
  const pki: TestPki = {
    dir,
    ca: ca.cert,
    issue(role, name) {
      const key = `${role}/${name}`;
      let files = issued.get(key);
      if (!files) {
        files = issueCertificate(dir, { role, name, out: join(dir, `${role}-${name}`) }).then((f) => ({ cert: f.cert, key: f.key, ca: f.ca }));
        issued.set(key, files);
      }
      return files;
    },
    async fleetTls(hostIds) {
      for (const id of hostIds) await pki.issue('agent', id);
      return { cert: join(dir, 'agent-{host}.crt'), key: join(dir, 'agent-{host}.key'), ca: ca.cert };
    },
    async cliEnv(name = 'e2e') {
      const files = await pki.issue('operator', name);
      return { ...NO_CLI_CONFIG, VIRTFLEET_CA: files.ca, VIRTFLEET_CERT: files.cert, VIRTFLEET_KEY: files.key };
    },
  };
  return pki;
}
