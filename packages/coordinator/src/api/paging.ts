import { InvalidArgumentError } from '@virtfleet/shared';
import type { z } from 'zod';

/** Page size when a list request gives none. */
export const DEFAULT_PAGE_SIZE = 500;
export const MAX_PAGE_SIZE = 5000;

/** A request's page_size: 0 means the default. */
export function pageSizeOf(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0 || requested > MAX_PAGE_SIZE)
    throw new InvalidArgumentError('page_size', `must be a whole number from 0 (default ${DEFAULT_PAGE_SIZE}) to ${MAX_PAGE_SIZE}`);
  return requested === 0 ? DEFAULT_PAGE_SIZE : requested;
}

/** An opaque token that carries where the next page starts. */
export function encodePageToken(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

/**
 * Reads a page token back; '' is the first page.
 * @throws InvalidArgumentError naming page_token when it is not one this server made.
 */
export function decodePageToken<T>(token: string, schema: z.ZodType<T>): T | undefined {
  if (!token) return undefined;
  try {
    return schema.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
  } catch {
    throw new InvalidArgumentError('page_token', 'is not a next_page_token from a previous page of this list');
  }
}
