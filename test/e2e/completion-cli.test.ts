import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, runCli } from '../support/processes.js';

// The built CLI (npx tsc -b); no coordinator is involved.
describe('virtfleet completion', () => {
  it('bash: source <(virtfleet completion bash) registers it, and "virtfleet wor" completes to workload', () => {
    const cli = `'${process.execPath}' '${CLI_ENTRY}'`;
    const out = execFileSync('bash', ['-c', `source <(${cli} completion bash) && complete -p virtfleet && COMP_WORDS=(virtfleet wor) && COMP_CWORD=1 && _virtfleet && echo "\${COMPREPLY[*]}"`], {
      encoding: 'utf8',
      env: { ...process.env, VIRTFLEET_CLI_CONFIG: '/dev/null' },
    });
    expect(out.split('\n')).toEqual(['complete -o default -F _virtfleet virtfleet', 'workload', '']);
  });

  it('exits 2 for a shell it does not know', async () => {
    const r = await runCli(['completion', 'fish']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bash, zsh');
    expect(r.stdout).toBe('');
  });
});
