import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { InvalidArgumentError, errorMessage } from './errors.js';
import { parseOrThrow } from './validation.js';
import { MAX_YAML_DEPTH, yamlNestedDeeperThan } from './yaml-depth.js';

/**
 * Reads a YAML or JSON document (JSON is YAML) from `path`.
 * @throws InvalidArgumentError naming the file and, for syntax errors, the line.
 */
export function readDocument(path: string): unknown {
  return parseDocument(readTextFile(path), path);
}

/**
 * Reads a UTF-8 file given by an operator.
 * @throws InvalidArgumentError naming the file when it cannot be read.
 */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(path, `cannot read file: ${errorMessage(err)}`, { cause: err });
  }
}

export function parseDocument(text: string, source: string): unknown {
  if (yamlNestedDeeperThan(text)) throw new InvalidArgumentError(source, `malformed YAML/JSON: nested deeper than ${MAX_YAML_DEPTH} levels`);
  try {
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const at = err.linePos?.[0];
      // prettyErrors appends " at line L, column C:" and an excerpt to the reason; the position goes first instead.
      const reason = err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').split('\n')[0]?.trim() || err.code;
      throw new InvalidArgumentError(source, `malformed YAML/JSON${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${reason}`, { cause: err });
    }
    throw new InvalidArgumentError(source, `malformed YAML/JSON: ${errorMessage(err)}`, { cause: err });
  }
}

/** Loads and validates a config file; an absent path yields the schema's defaults. */
export function loadConfig<T extends z.ZodType>(schema: T, path: string | undefined, overrides: Record<string, unknown> = {}): z.output<T> {
  const fromFile = path ? readDocument(path) : {};
  if (fromFile !== null && (typeof fromFile !== 'object' || Array.isArray(fromFile))) throw new InvalidArgumentError(path ?? 'config', 'must be a mapping');
  return parseOrThrow(schema, deepMerge((fromFile ?? {}) as Record<string, unknown>, overrides), path ? `${path}:` : 'config:');
}

function deepMerge(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] =
      isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Mutual TLS material as PEM file paths: this side's certificate and key, and the cluster CA (see `virtfleet pki`). */
export const tlsFilesSchema = z
  .object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1) })
  .strict();

/**
 * A gRPC section's own check: mutual TLS is on unless `insecure: true` says
 * otherwise, by name. Use with `.superRefine` (and `.prefault`, so that a
 * section left out is checked too).
 */
export function requireTlsOrInsecure(section: { tls?: unknown; insecure?: boolean | undefined }, ctx: z.RefinementCtx): void {
  if (section.tls && section.insecure) ctx.addIssue({ code: 'custom', path: ['insecure'], message: 'set either tls or insecure: true, not both' });
  else if (!section.tls && !section.insecure)
    ctx.addIssue({ code: 'custom', path: ['tls'], message: 'required: gRPC links use mutual TLS (certificates from `virtfleet pki issue`); set insecure: true to run without it' });
}

export const hostPortSchema = z.string().regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, 'must be host:port');

const DEFAULT_NATS_SERVERS = ['nats://127.0.0.1:4222'];
/**
 * The `nats` section both daemons share. A daemon connects as its own NATS
 * user (`nkeySeedFile`, from `virtfleet nats issue`) unless `anonymous: true`
 * says by name that the server takes connections without credentials.
 */
export const natsConfigSchema = z
  .object({
    servers: z
      .array(z.string().regex(/^((nats|tls|ws|wss):\/\/)?[^\s/?#]+(:\d{1,5})?$/, 'must be a NATS server URL such as nats://127.0.0.1:4222 or host:port'))
      .min(1)
      .default(DEFAULT_NATS_SERVERS),
    /** This process's NATS user: the nkey seed file `virtfleet nats issue` wrote (readable by the daemon only). */
    nkeySeedFile: z.string().min(1).optional(),
    /** Connect without credentials, to a nats-server without authorization. */
    anonymous: z.boolean().optional(),
    /** TLS to nats-server: the CA of its certificate, and this side's certificate and key when the server asks for one. */
    tls: z
      .object({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
      .strict()
      .refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'cert and key go together', path: ['cert'] })
      .optional(),
  })
  .strict()
  .superRefine((section, ctx) => {
    if (section.nkeySeedFile && section.anonymous) ctx.addIssue({ code: 'custom', path: ['anonymous'], message: 'set either nkeySeedFile or anonymous: true, not both' });
    else if (!section.nkeySeedFile && !section.anonymous)
      ctx.addIssue({ code: 'custom', path: ['nkeySeedFile'], message: 'required: each daemon connects to NATS as its own user (a seed from `virtfleet nats issue`); set anonymous: true for a server without authorization' });
  })
  .prefault({});

export type NatsConfig = z.output<typeof natsConfigSchema>;
