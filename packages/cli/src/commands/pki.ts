import type { Command } from 'commander';
import { defaultHostId } from '@virtfleet/agent';
import { InvalidArgumentError, ROLES, describeIdentity, type Role } from '@virtfleet/shared';
import { print, table, type OutputFormat } from '../output.js';
import { DEFAULT_CA_DAYS, DEFAULT_CERT_DAYS, describeCertificate, initCa, issueCertificate, RENEW_WITHIN_DAYS, type CertificateSummary, type IssuedFiles } from '../pki.js';

/** Where `virtfleet pki` keeps the CA unless --dir or VIRTFLEET_PKI_DIR says otherwise. */
export const DEFAULT_PKI_DIR = '/etc/virtfleet/pki';

const collect = (value: string, previous: string[]) => [...previous, value];

// -o json|yaml: snake_case keys, as every other output of the CLI and the API.
const issuedJson = (i: IssuedFiles) => ({ cert: i.cert, key: i.key, ca: i.ca, identity: i.identity, not_after: i.notAfter.toISOString() });
const summaryJson = (s: CertificateSummary) => ({
  file: s.file,
  identity: s.identity,
  subject: s.subject,
  issuer: s.issuer,
  not_before: s.notBefore.toISOString(),
  not_after: s.notAfter.toISOString(),
  days_left: s.daysLeft,
  renew_now: s.renewNow,
  alt_names: s.altNames,
});

function days(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('--days', 'must be a whole number of days');
  return n;
}

export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description('the cluster CA and the certificates of coordinators, agents and operators (mutual TLS on every gRPC link)');
  const dirOption = (cmd: Command) => cmd.option('--dir <dir>', `the PKI directory holding ca.crt and ca.key (default: $VIRTFLEET_PKI_DIR or ${DEFAULT_PKI_DIR})`);
  const dirOf = (opts: { dir?: string }) => opts.dir ?? process.env.VIRTFLEET_PKI_DIR ?? DEFAULT_PKI_DIR;

  dirOption(pki.command('init').description('create the cluster CA; a directory that already has one keeps it'))
    .option('--days <n>', `how long the CA is valid (default: ${DEFAULT_CA_DAYS})`)
    .action(async (opts: { dir?: string; days?: string }, cmd: Command) => {
      const ca = await initCa(dirOf(opts), { days: days(opts.days, DEFAULT_CA_DAYS) });
      print(cmd.optsWithGlobals<{ output: OutputFormat }>().output, ca, () => (ca.created ? `created the cluster CA: ${ca.cert} (key ${ca.key}, root only)` : `kept the cluster CA already in ${ca.cert}`));
    });

  dirOption(pki.command('issue').description('issue (or renew: same --out) a certificate signed by the cluster CA'))
    .requiredOption('--role <role>', `${ROLES.join(', ')}`)
    .option('--name <name>', 'coordinator id, agent host id or operator name (default for coordinator and agent: this machine\'s short hostname)')
    .option('--dns <name>', 'another DNS name the certificate is good for (repeatable)', collect, [])
    .option('--ip <address>', 'another IP address the certificate is good for (repeatable)', collect, [])
    .option('--days <n>', `how long it is valid (default: ${DEFAULT_CERT_DAYS})`)
    .option('--out <prefix>', 'write PREFIX.crt and PREFIX.key (default: DIR/ROLE-NAME)')
    .action(async (opts: { dir?: string; role: string; name?: string; dns: string[]; ip: string[]; days?: string; out?: string }, cmd: Command) => {
      const role = ROLES.find((r) => r === opts.role);
      if (!role) throw new InvalidArgumentError('--role', `must be one of ${ROLES.join(', ')}`);
      const name = opts.name ?? defaultName(role);
      const issued = await issueCertificate(dirOf(opts), { role, name, dns: opts.dns, ips: opts.ip, days: days(opts.days, DEFAULT_CERT_DAYS), ...(opts.out ? { out: opts.out } : {}) });
      print(cmd.optsWithGlobals<{ output: OutputFormat }>().output, issuedJson(issued), () => `issued ${describeIdentity(issued.identity)}: ${issued.cert} and ${issued.key}, valid until ${issued.notAfter.toISOString()}; CA ${issued.ca}`);
    });

  pki
    .command('show')
    .description(`what certificates say about themselves; exits 1 if any has fewer than ${RENEW_WITHIN_DAYS} days left`)
    .argument('<file...>', 'PEM certificate files')
    .action((files: string[], _opts: unknown, cmd: Command) => {
      const summaries = files.map((f) => describeCertificate(f));
      print(cmd.optsWithGlobals<{ output: OutputFormat }>().output, summaries.map(summaryJson), () =>
        table(
          ['file', 'identity', 'not after', 'days left', ''],
          summaries.map((s) => [s.file, s.identity ? `${s.identity.role}/${s.identity.name}` : '-', s.notAfter.toISOString(), String(s.daysLeft), s.renewNow ? 'RENEW NOW' : '']),
        ),
      );
      if (summaries.some((s) => s.renewNow)) process.exitCode = 1;
    });
}

function defaultName(role: Role): string {
  if (role === 'operator') throw new InvalidArgumentError('--name', 'is required for an operator certificate');
  return defaultHostId();
}
