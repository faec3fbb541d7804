import { randomUUID } from 'node:crypto';
import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '@virtfleet/shared';

/** Most the API sends in one page. */
const MAX_PAGE_SIZE = 5000;

export interface PageOptions {
  limit?: number;
  pageToken?: string;
  all?: boolean;
}

/** Adds --limit, --page-token and --all to a list command. */
export function withPageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--limit <n>', `at most this many rows per page, 1-${MAX_PAGE_SIZE} (default 500)`).argParser(parseLimit))
    .option('--page-token <token>', 'continue from where the previous page ended (printed on stderr when more rows follow)')
    .option('--all', 'fetch every page');
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) throw new InvalidArgumentError('--limit', `must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  return n;
}

/**
 * Reads one page, or every page with --all. Returns the rows and the token
 * of the next page ('' when none is left).
 */
export async function readPages<T>(opts: PageOptions, fetch: (page: { page_size: number; page_token: string }) => Promise<{ items: T[]; next: string }>): Promise<{ items: T[]; next: string }> {
  const items: T[] = [];
  let token = opts.pageToken ?? '';
  for (;;) {
    const page = await fetch({ page_size: opts.limit ?? 0, page_token: token });
    items.push(...page.items);
    token = page.next;
    if (!token || !opts.all) return { items, next: token };
  }
}

/** Tells on stderr how to read on, so stdout stays the rows alone. */
export function noteMorePages(next: string): void {
  if (next) process.stderr.write(`more rows follow: add --page-token ${next} (or --all)\n`);
}

/** The request id the operator gave, or a fresh one so that the CLI's own retries act once. */
export function requestIdOf(opts: { requestId?: string }): string {
  return opts.requestId ?? randomUUID();
}
