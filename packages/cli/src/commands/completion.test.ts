import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../program.js';
import { bashCompletion, completionModel, zshCompletion } from './completion.js';

const dir = mkdtempSync(join(tmpdir(), 'virtfleet-completion-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scriptFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const bashScript = scriptFile('virtfleet.bash', bashCompletion(completionModel(buildProgram())));
const zshAvailable = spawnSync('zsh', ['--version']).status === 0;

/** What bash completes for the words typed so far (the last one is under the cursor), through the generated function. */
function bashComplete(script: string, words: string[]): string[] {
  const quotedWords = words.map((w) => `'${w}'`).join(' ');
  const out = execFileSync('bash', ['-c', `source '${script}'; COMP_WORDS=(${quotedWords}); COMP_CWORD=${words.length - 1}; _virtfleet; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '');
}

/** The same through the zsh function, with compadd and _files recording what they are given (zsh's compadd filters by prefix itself). */
function zshComplete(script: string, words: string[]): string[] {
  const quotedWords = words.map((w) => `'${w}'`).join(' ');
  const program = `compdef() { : }; compadd() { [[ $1 == -- ]] && shift; reply+=("$@") }; _files() { reply+=('<files>') }
source '${script}'; words=(${quotedWords}); CURRENT=${words.length}; reply=(); _virtfleet; print -l -- $reply`;
  const out = execFileSync('zsh', ['-f', '-c', program], { cwd: dir, encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '');
}

writeFileSync(join(dir, 'spec.yaml'), 'name: x\n');

describe('virtfleet completion bash', () => {
  it('registers the function for virtfleet', () => {
    const out = execFileSync('bash', ['-c', `source '${bashScript}'; complete -p virtfleet`], { encoding: 'utf8' });
    expect(out.trim()).toBe('complete -o default -F _virtfleet virtfleet');
  });

  it.each([
    { name: 'a command by its prefix', words: ['virtfleet', 'wor'], want: ['workload'] },
    { name: 'every top-level command', words: ['virtfleet', ''], want: expect.arrayContaining(['host', 'workload', 'queue', 'image', 'backup', 'simulate', 'rebalance', 'completion', 'events']) as string[] },
    { name: 'a subcommand', words: ['virtfleet', 'workload', 'mi'], want: ['migrate'] },
    { name: 'a subcommand through an alias', words: ['virtfleet', 'wl', 'cr'], want: ['create'] },
    { name: 'past global flags and their values', words: ['virtfleet', '--coordinator', 'x:7100', '-o', 'json', 'host', 'dr'], want: ['drain', 'drain-status'] },
    { name: "a command's flags and the global ones", words: ['virtfleet', 'workload', 'create', '--'], want: expect.arrayContaining(['--file', '--wait', '--request-id', '--output', '--coordinator', '--help']) as string[] },
    { name: 'the values of -o', words: ['virtfleet', '-o', ''], want: ['table', 'wide', 'json', 'yaml'] },
    { name: 'the values of a global flag after the command', words: ['virtfleet', 'host', 'ls', '--output', 'y'], want: ['yaml'] },
    { name: "the values of a command's flag", words: ['virtfleet', 'host', 'drain', 'h1', '--mode', ''], want: ['live', 'cold', 'auto'] },
    { name: 'files for a file flag', words: ['virtfleet', 'workload', 'create', '-f', 'sp'], want: ['spec.yaml'] },
    { name: 'files for a file argument', words: ['virtfleet', 'rebalance', 'apply', 'sp'], want: ['spec.yaml'] },
    { name: "an argument's choices", words: ['virtfleet', 'completion', ''], want: ['bash', 'zsh'] },
    { name: 'nothing it does not know', words: ['virtfleet', 'nosuch'], want: [] },
  ])('completes $name', ({ words, want }) => {
    expect(bashComplete(bashScript, words)).toEqual(want);
  });

  it('covers a command added to the program without other changes', () => {
    const program = buildProgram();
    program.command('frobnicate').command('twiddle').option('--level <n>', 'how much').addOption(buildProgram().options.find((o) => o.long === '--output')!);
    const script = scriptFile('extended.bash', bashCompletion(completionModel(program)));
    expect(bashComplete(script, ['virtfleet', 'frob'])).toEqual(['frobnicate']);
    expect(bashComplete(script, ['virtfleet', 'frobnicate', 'tw'])).toEqual(['twiddle']);
    expect(bashComplete(script, ['virtfleet', 'frobnicate', 'twiddle', '--l'])).toEqual(['--level']);
  });
});

describe('virtfleet completion zsh', () => {
  const zshScript = scriptFile('_virtfleet', zshCompletion(completionModel(buildProgram())));

  it(`parses with zsh -n and completes as bash does${zshAvailable ? '' : ' (zsh is not installed here: only the script is checked)'}`, () => {
    const script = zshCompletion(completionModel(buildProgram()));
    expect(script.startsWith('#compdef virtfleet\n')).toBe(true);
    expect(script).toContain('compdef _virtfleet virtfleet');
    if (!zshAvailable) return;
    const parsed = spawnSync('zsh', ['-n', zshScript], { encoding: 'utf8' });
    expect(parsed.status, parsed.stderr).toBe(0);
    expect(zshComplete(zshScript, ['virtfleet', 'wl', 'cr'])).toEqual(expect.arrayContaining(['create', 'migrate']));
    expect(zshComplete(zshScript, ['virtfleet', '-o', ''])).toEqual(['table', 'wide', 'json', 'yaml']);
    expect(zshComplete(zshScript, ['virtfleet', 'host', 'drain', 'h1', '--mode', ''])).toEqual(['live', 'cold', 'auto']);
    expect(zshComplete(zshScript, ['virtfleet', 'workload', 'create', '-f', ''])).toEqual(['<files>']);
    expect(zshComplete(zshScript, ['virtfleet', 'completion', ''])).toEqual(['bash', 'zsh']);
  });
});
