import { z } from 'zod';
import { InvalidArgumentError, printableAscii } from './errors.js';

/** RFC 1123 label: what workload names must be, so they are safe in XML, shell, paths and DNS. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The role of a file of a workload's carried state: `disk:NAME` (a VM's disk), `memory` (a VM's saved memory), `image` (a container's layer). */
export const STATE_FILE_ROLE = /^(disk:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?|memory|image)$/;

/** Host ids appear in NATS subjects, so no dots, wildcards or spaces. */
export const HOST_ID = /^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/** Ids chosen by the coordinator or a client: command ids, request ids, workload ids. */
export const OPAQUE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export const hostIdSchema = z.string().regex(HOST_ID, 'must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric');
export const opaqueIdSchema = z.string().regex(OPAQUE_ID, 'must be 1-128 characters of letters, digits, "_", ".", ":" or "-"');

/** One bad field: its dotted path (`spec.memory_mib`) and what is wrong with it. */
export interface FieldProblem {
  field: string;
  reason: string;
}

/**
 * The most characters of problems a message lists; the rest are counted. A
 * gRPC status's message travels in a trailer, and one of megabytes (a map
 * with a hundred thousand bad keys) never reached the caller.
 */
const MAX_LISTED_CHARS = 4096;

/**
 * A request or file with one or more bad fields. The message lists every
 * problem, separated by "; ", after the file when there is one:
 * `web.yaml: vcpus: must be greater than 0; memory_mib: is required`, up to
 * MAX_LISTED_CHARS, then how many more there are; `problems` holds them all.
 * `field` is the first problem's, so a caller that reads one field finds it.
 */
export class InvalidFieldsError extends InvalidArgumentError {
  constructor(
    readonly problems: FieldProblem[],
    /** The file the fields come from, if any. */
    readonly source = '',
    options?: { cause?: unknown },
  ) {
    const [first = { field: '', reason: 'invalid' }, ...rest] = problems;
    const listed = [first.reason];
    let chars = first.reason.length;
    for (const [i, p] of rest.entries()) {
      const text = `${p.field || '(document)'}: ${p.reason}`;
      chars += text.length + 2;
      if (chars > MAX_LISTED_CHARS) {
        listed.push(`and ${rest.length - i} more problem${rest.length - i === 1 ? '' : 's'}`);
        break;
      }
      listed.push(text);
    }
    super(source ? `${source}: ${first.field || '(document)'}` : first.field, listed.join('; '), options);
  }
}

/**
 * Turns every zod issue into a problem naming its field by its dotted path.
 * `prefix` ending in ':' names a file ("agent.yaml:"), otherwise a parent
 * field ("spec"). Given the parsed `input`, a missing field is reported as such.
 */
export function zodToInvalidArgument(error: z.ZodError, prefix = '', input?: { value: unknown }): InvalidFieldsError {
  const source = prefix.endsWith(':') ? prefix.slice(0, -1) : '';
  const parent = source ? '' : prefix;
  // An empty key (a map's "" or an unknown "" field) is shown quoted, so the message still points at it;
  // a key from the input is cut short and shown in printable ASCII, as the field travels in a gRPC trailer.
  const fieldName = (path: PropertyKey[]) => [...(parent ? [parent] : []), ...path.map(fieldPathSegment)].join('.');
  const problems: FieldProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ field: fieldName([...issue.path, key]), reason: 'unknown field' });
    } else if (issue.code === 'invalid_key') {
      // zod reports a bad record key as "Invalid key in record" with the key's own issue nested inside.
      problems.push({ field: fieldName(issue.path), reason: issue.issues[0]?.message ?? issue.message });
    } else if (issue.code === 'invalid_type' && input && valueAt(input.value, issue.path) === undefined) {
      problems.push({ field: fieldName(issue.path), reason: 'is required' });
    } else {
      problems.push({ field: fieldName(issue.path), reason: issue.message });
    }
  }
  return new InvalidFieldsError(problems, source, { cause: error });
}

/** Characters of a map key a field path shows, at most. */
const MAX_KEY_SHOWN = 80;

/** A key as a field path shows it: "" quoted, cut after MAX_KEY_SHOWN characters, in printable ASCII. */
export function fieldPathSegment(key: PropertyKey): string {
  if (key === '') return '""';
  const text = String(key);
  return printableAscii(text.length > MAX_KEY_SHOWN ? `${text.slice(0, MAX_KEY_SHOWN)}...` : text);
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let current = input;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** Parses `input` with `schema`, throwing InvalidFieldsError that names every offending field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, prefix = ''): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw zodToInvalidArgument(result.error, prefix, { value: input });
  return result.data;
}

export function requireId(schema: z.ZodType<string>, value: unknown, field: string): string {
  return parseOrThrow(schema, value, field);
}

/** Workload ids are `<name>-<8 hex>`, chosen by the coordinator; safe as container and domain names. */
export const WORKLOAD_ID = /^[a-z0-9]([-a-z0-9]{0,78}[a-z0-9])?$/;
export const workloadIdSchema = z.string().regex(WORKLOAD_ID, 'must be 1-80 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');
