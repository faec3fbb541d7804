import { Argument, type Command, type Option } from 'commander';
import { write } from '../output.js';

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** What completion knows of one command, keyed by its path from the root (`virtfleet workload create`). */
export interface CommandWords {
  /** Subcommands, aliases included. */
  subcommands: string[];
  /** Every flag, short and long, --help included. */
  options: string[];
  /** Flags that take a value (the next word is the value, not a command). */
  valueOptions: string[];
  /** Flag → the values it accepts, where commander knows them. */
  choices: Record<string, string[]>;
  /** Flags whose value is a file or directory. */
  fileOptions: string[];
  /** The command's arguments are files (`image import FILE`, `rebalance apply PLAN`). */
  fileArguments: boolean;
  /** The values its arguments accept, where commander knows them (`completion bash|zsh`). */
  argumentChoices: string[];
}

export interface CompletionModel {
  root: string;
  /** The root's flags that every command takes (-o, --coordinator, ...). */
  globalOptions: string[];
  commands: Record<string, CommandWords>;
  /** `<parent path> <alias>` → the subcommand's name. */
  aliases: Record<string, string>;
}

const FILE_VALUE = /<(file|dir|prefix|path|plan)\b[^>]*>/i;
const FILE_ARGUMENT = /^(file|plan)/;

/**
 * Walks the program's commands recursively, so that a verb or flag added to
 * the CLI is completed without touching this file.
 */
export function completionModel(program: Command): CompletionModel {
  const root = program.name();
  const commands: Record<string, CommandWords> = {};
  const aliases: Record<string, string> = {};
  const visit = (cmd: Command, path: string): void => {
    const visible = cmd.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden);
    const options = (cmd.options as readonly Option[]).filter((o) => !o.hidden);
    const flags = (o: Option) => [o.short, o.long].filter((f): f is string => Boolean(f));
    commands[path] = {
      subcommands: visible.flatMap((c) => [c.name(), ...c.aliases()]),
      options: [...options.flatMap(flags), '--help', ...(cmd === program ? ['--version'] : [])],
      valueOptions: options.filter((o) => o.required || o.optional).flatMap(flags),
      choices: Object.fromEntries(options.filter((o) => o.argChoices).flatMap((o) => flags(o).map((f) => [f, [...o.argChoices!]]))),
      fileOptions: options.filter((o) => FILE_VALUE.test(o.flags)).flatMap(flags),
      fileArguments: cmd.registeredArguments.some((a) => FILE_ARGUMENT.test(a.name())),
      argumentChoices: cmd.registeredArguments.flatMap((a) => a.argChoices ?? []),
    };
    for (const c of visible) {
      for (const alias of c.aliases()) aliases[`${path} ${alias}`] = c.name();
      visit(c, `${path} ${c.name()}`);
    }
  };
  visit(program, root);
  const globalOptions = commands[root]!.options.filter((f) => !['-h', '--help', '-V', '--version'].includes(f));
  return { root, globalOptions, commands, aliases };
}

/** A shell word in single quotes. */
const quoted = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const words = (list: readonly string[]) => quoted([...new Set(list)].join(' '));

/** The model as associative-array assignments, the same in bash and zsh. */
function tables(m: CompletionModel, fn: string): string {
  const entries = Object.entries(m.commands);
  // One assignment a line through a variable: bash and zsh read a quoted subscript differently, an expanded one alike.
  const assign = (name: string, pairs: [string, string][]) => pairs.map(([k, v]) => `${fn}_k=${quoted(k)}; ${fn}_${name}[$${fn}_k]=${v}`).join('\n');
  return [
    assign('subs', entries.filter(([, c]) => c.subcommands.length > 0).map(([p, c]) => [p, words(c.subcommands)])),
    assign('opts', entries.map(([p, c]) => [p, words(c.options)])),
    assign('values', entries.filter(([, c]) => c.valueOptions.length > 0).map(([p, c]) => [p, words(c.valueOptions)])),
    assign('choices', entries.flatMap(([p, c]) => Object.entries(c.choices).map(([flag, values]): [string, string] => [`${p} ${flag}`, words(values)]))),
    assign('files', entries.flatMap(([p, c]) => c.fileOptions.map((flag): [string, string] => [`${p} ${flag}`, '1']))),
    assign('fileargs', entries.filter(([, c]) => c.fileArguments).map(([p]) => [p, '1'])),
    assign('alias', Object.entries(m.aliases).map(([k, v]) => [k, quoted(v)])),
    assign('args', entries.filter(([, c]) => c.argumentChoices.length > 0).map(([p, c]) => [p, words(c.argumentChoices)])),
    `${fn}_global=${words(m.globalOptions)}`,
    `unset ${fn}_k`,
  ].join('\n');
}

const NAMES = ['subs', 'opts', 'values', 'choices', 'files', 'fileargs', 'alias', 'args'];

/**
 * The walk both shells share: from the first word after the command, skip
 * flags (and the value of a flag that takes one), follow subcommands and
 * aliases; `cmdpath` ends as the path of the command being completed and
 * `skip` is 1 when the word under the cursor is a flag's value.
 */
function walk(fn: string, root: string, first: string, words: string): string {
  return `  local cmdpath=${quoted(root)} w skip=0 i
  for (( i = ${first}; i < ${words}; i++ )); do
    w=\${WORDS_[i]}
    if (( skip )); then skip=0; continue; fi
    case $w in
      --*=*) continue ;;
      -*)
        if [[ " \${${fn}_values[$cmdpath]} \${${fn}_values[${root}]} " == *" $w "* ]]; then skip=1; fi
        continue ;;
    esac
    if [[ -n \${${fn}_alias[$cmdpath $w]} ]]; then w=\${${fn}_alias[$cmdpath $w]}; fi
    if [[ " \${${fn}_subs[$cmdpath]} " == *" $w "* ]]; then cmdpath="$cmdpath $w"; fi
  done`;
}

/** A bash completion script: `source <(virtfleet completion bash)`. Needs bash 4.2 or later. */
export function bashCompletion(m: CompletionModel): string {
  const fn = `_${m.root.replace(/\W/g, '_')}`;
  return `# bash completion for ${m.root}, generated by \`${m.root} completion bash\` from its commands.
# Load it with: source <(${m.root} completion bash)   (or save it in /etc/bash_completion.d/${m.root})
declare -gA ${NAMES.map((n) => `${fn}_${n}`).join(' ')}
${tables(m, fn)}

${fn}() {
  local -a WORDS_=("\${COMP_WORDS[@]}")
${walk(fn, m.root, '1', 'COMP_CWORD')}
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} list
  COMPREPLY=()
  if (( skip )); then
    list=\${${fn}_choices[$cmdpath $prev]:-\${${fn}_choices[${m.root} $prev]}}
    if [[ -n $list ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$list" -- "$cur")
    elif [[ -n \${${fn}_files[$cmdpath $prev]}\${${fn}_files[${m.root} $prev]} ]]; then
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
    return 0
  fi
  if [[ $cur == -* ]]; then
    list=\${${fn}_opts[$cmdpath]}
    if [[ $cmdpath != ${quoted(m.root)} ]]; then list+=" $${fn}_global"; fi
    mapfile -t COMPREPLY < <(compgen -W "$list" -- "$cur")
  elif [[ -n \${${fn}_subs[$cmdpath]} ]]; then
    mapfile -t COMPREPLY < <(compgen -W "\${${fn}_subs[$cmdpath]}" -- "$cur")
  elif [[ -n \${${fn}_args[$cmdpath]} ]]; then
    mapfile -t COMPREPLY < <(compgen -W "\${${fn}_args[$cmdpath]}" -- "$cur")
  elif [[ -n \${${fn}_fileargs[$cmdpath]} ]]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
  return 0
}
complete -o default -F ${fn} ${m.root}
`;
}

/** A zsh completion script: `source <(virtfleet completion zsh)` after compinit, or saved as `_virtfleet` in $fpath. */
export function zshCompletion(m: CompletionModel): string {
  const fn = `_${m.root.replace(/\W/g, '_')}`;
  return `#compdef ${m.root}
# zsh completion for ${m.root}, generated by \`${m.root} completion zsh\` from its commands.
# Load it with: source <(${m.root} completion zsh)   (after compinit), or save it as ${fn} in a directory of $fpath.
typeset -gA ${NAMES.map((n) => `${fn}_${n}`).join(' ')}
${tables(m, fn)}

${fn}() {
  local -a WORDS_
  WORDS_=("\${(@)words}")
${walk(fn, m.root, '2', 'CURRENT')}
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]} list
  if (( skip )); then
    list=\${${fn}_choices[$cmdpath $prev]:-\${${fn}_choices[${m.root} $prev]}}
    if [[ -n $list ]]; then
      compadd -- \${=list}
    elif [[ -n \${${fn}_files[$cmdpath $prev]}\${${fn}_files[${m.root} $prev]} ]]; then
      _files
    fi
    return 0
  fi
  if [[ $cur == -* ]]; then
    compadd -- \${=${fn}_opts[$cmdpath]}
    if [[ $cmdpath != ${quoted(m.root)} ]]; then compadd -- \${=${fn}_global}; fi
  elif [[ -n \${${fn}_subs[$cmdpath]} ]]; then
    compadd -- \${=${fn}_subs[$cmdpath]}
  elif [[ -n \${${fn}_args[$cmdpath]} ]]; then
    compadd -- \${=${fn}_args[$cmdpath]}
  elif [[ -n \${${fn}_fileargs[$cmdpath]} ]]; then
    _files
  fi
  return 0
}

if [[ \${funcstack[1]} == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${m.root}
fi
`;
}

/** The root of the command tree `cmd` belongs to. */
function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/** `virtfleet completion bash|zsh`. */
export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script for bash or zsh: source <(virtfleet completion bash)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(COMPLETION_SHELLS))
    .action((shell: CompletionShell, _opts: unknown, cmd: Command) => {
      const model = completionModel(rootOf(cmd));
      write(shell === 'bash' ? bashCompletion(model) : zshCompletion(model));
    });
}
