import { Parser, type CST } from 'yaml';

/**
 * How deep a YAML (or JSON) document given by a user may nest collections.
 * yaml composes a document recursively, and near the stack limit V8 may abort
 * the whole process ("RegExpCompiler Allocation failed - process out of
 * memory") instead of throwing a RangeError, so deeper documents are refused
 * before they are composed. Real specs, configs and cloud-init data nest a
 * handful of levels.
 */
export const MAX_YAML_DEPTH = 64;

/** Whether `text` nests collections deeper than `max`. Reads yaml's CST, whose parser keeps its own stack, so this never recurses. */
export function yamlNestedDeeperThan(text: string, max = MAX_YAML_DEPTH): boolean {
  const stack: { token: CST.Token | null | undefined; depth: number }[] = [];
  for (const token of new Parser().parse(text)) stack.push({ token, depth: 0 });
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { token, depth } = next;
    if (token?.type === 'document') stack.push({ token: token.value, depth });
    else if (token?.type === 'block-map' || token?.type === 'block-seq' || token?.type === 'flow-collection') {
      if (depth + 1 > max) return true;
      for (const item of token.items) stack.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
    }
  }
  return false;
}
