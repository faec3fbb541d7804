import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage, type Logger, type PublishedPort } from '@virtfleet/shared';

const run = promisify(execFile);
const COMMENT_PREFIX = 'virtfleet:';

/** One VM's published ports, to its address on the host network. */
export interface Forward {
  workloadId: string;
  address: string;
  ports: readonly PublishedPort[];
}

/** An iptables rule: its table, chain, and match and target arguments. */
export interface Rule {
  table: 'nat' | 'filter';
  chain: string;
  args: string[];
}

/**
 * The rules that publish `forward`: DNAT of the host's own addresses' port
 * (arriving, and from the host itself) to the VM, and a FORWARD accept ahead
 * of the host network's own rules, which refuse new connections inward.
 * Each carries a comment naming the workload, so they are found again.
 */
export function rulesOf(forward: Forward): Rule[] {
  const comment = ['-m', 'comment', '--comment', `${COMMENT_PREFIX}${forward.workloadId}`];
  return forward.ports.flatMap((p) => {
    const dnat = ['-p', p.protocol, '--dport', String(p.host_port), '-m', 'addrtype', '--dst-type', 'LOCAL', ...comment, '-j', 'DNAT', '--to-destination', `${forward.address}:${p.port}`];
    return [
      { table: 'nat' as const, chain: 'PREROUTING', args: dnat },
      { table: 'nat' as const, chain: 'OUTPUT', args: dnat },
      { table: 'filter' as const, chain: 'FORWARD', args: ['-d', `${forward.address}/32`, '-p', p.protocol, '--dport', String(p.port), ...comment, '-j', 'ACCEPT'] },
    ];
  });
}

const ruleKey = (r: Rule) => `${r.table} ${r.chain} ${r.args.join(' ')}`;

/**
 * Keeps the host's iptables rules for VMs' published ports equal to what
 * is wanted (`sync`), touching only rules with its own comment. Runs
 * iptables in `netns` when given (the namespace the host network lives in:
 * the playground's hosts), else in the agent's own.
 */
export class PortForwarder {
  /** The rules this forwarder put in place, by key. */
  private readonly installed = new Map<string, Rule>();
  private syncing: Promise<void> = Promise.resolve();
  /** Whether the rules a previous run left have been taken up. */
  private loaded = false;

  constructor(
    private readonly netns: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Makes the rules those of `forwards`, and only those; one sync at a time. */
  sync(forwards: readonly Forward[]): Promise<void> {
    this.syncing = this.syncing.then(() => this.apply(forwards)).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'updating published ports failed'));
    return this.syncing;
  }

  /** Rules with the forwarder's comment found in the tables now (from any run). */
  async present(): Promise<Rule[]> {
    const rules: Rule[] = [];
    for (const table of ['nat', 'filter'] as const) {
      const { stdout } = await this.iptables('iptables-save', ['-t', table]);
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('-A ') || !line.includes(COMMENT_PREFIX)) continue;
        const [, chain = '', ...args] = splitRule(line);
        rules.push({ table, chain, args });
      }
    }
    return rules;
  }

  private async apply(forwards: readonly Forward[]): Promise<void> {
    const wanted = new Map(forwards.flatMap(rulesOf).map((r) => [ruleKey(r), r]));
    // Taken up from the tables once, so a restarted agent removes what it no longer wants.
    if (!this.loaded) {
      for (const r of await this.present()) this.installed.set(ruleKey(r), r);
      this.loaded = true;
    }
    for (const [key, rule] of this.installed) {
      if (wanted.has(key)) continue;
      await this.iptables('iptables', ['-t', rule.table, '-D', rule.chain, ...rule.args]).catch((err: unknown) => this.log.warn({ rule: key, err: errorMessage(err) }, 'removing a published port rule failed'));
      this.installed.delete(key);
    }
    for (const [key, rule] of wanted) {
      if (this.installed.has(key)) continue;
      // FORWARD accepts go first: the host network's own rules reject new inbound connections.
      const position = rule.chain === 'FORWARD' ? ['-I', rule.chain, '1'] : ['-A', rule.chain];
      await this.iptables('iptables', ['-t', rule.table, ...position, ...rule.args]);
      this.installed.set(key, rule);
      this.log.info({ rule: key }, 'published port rule added');
    }
  }

  private iptables(command: 'iptables' | 'iptables-save', args: string[]): Promise<{ stdout: string }> {
    const [file, argv] = this.netns ? ['nsenter', [`--net=${this.netns}`, command, '-w', ...args]] : [command, ['-w', ...args]];
    // iptables-save takes no -w.
    const finalArgs = command === 'iptables-save' ? argv.filter((a) => a !== '-w') : argv;
    return run(file, finalArgs, { timeout: 30_000 });
  }
}

/** An iptables-save line's words, with quoted comments kept whole. */
export function splitRule(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|(\S+)/g)) words.push(m[1] ?? m[2]!);
  return words;
}
