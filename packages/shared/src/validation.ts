import { z } from 'zod';
import { InvalidArgumentError } from './errors.js';

/** RFC 1123 label: what workload names must be, so they are safe in XML, shell, paths and DNS. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Host ids appear in NATS subjects, so no dots, wildcards or spaces. */
export const HOST_ID = /^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/** Ids chosen by the coordinator or a client: command ids, request ids, workload ids. */
export const OPAQUE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export const hostIdSchema = z.string().regex(HOST_ID, 'must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric');
export const opaqueIdSchema = z.string().regex(OPAQUE_ID, 'must be 1-128 characters of letters, digits, "_", ".", ":" or "-"');

/** Turns the first zod issue into an InvalidArgumentError naming the field by its dotted path. */
export function zodToInvalidArgument(error: z.ZodError, prefix = ''): InvalidArgumentError {
  const issue = error.issues[0];
  if (!issue) return new InvalidArgumentError(prefix, 'invalid');
  // A prefix ending in ':' names a file ("agent.yaml: grpc.listen"); otherwise it is a parent field.
  const inner = issue.path.map(String).join('.');
  const path = prefix.endsWith(':') ? `${prefix} ${inner || '(document)'}` : [prefix, inner].filter((p) => p !== '').join('.');
  // zod reports a bad record key as "Invalid key in record" with the key's own issue nested inside.
  const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem${error.issues.length > 2 ? 's' : ''})` : '';
  return new InvalidArgumentError(path, message + more, { cause: error });
}

/** Parses `input` with `schema`, throwing InvalidArgumentError that names the offending field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, prefix = ''): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw zodToInvalidArgument(result.error, prefix);
  return result.data;
}

export function requireId(schema: z.ZodType<string>, value: unknown, field: string): string {
  return parseOrThrow(schema, value, field);
}

/** Workload ids are `<name>-<8 hex>`, chosen by the coordinator; safe as container and domain names. */
export const WORKLOAD_ID = /^[a-z0-9]([-a-z0-9]{0,78}[a-z0-9])?$/;
export const workloadIdSchema = z.string().regex(WORKLOAD_ID, 'must be 1-80 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');
