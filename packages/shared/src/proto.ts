import { credentials, loadPackageDefinition, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtoGrpcType as AgentProto } from './generated/agent.js';
import type { ProtoGrpcType as CoordinatorProto } from './generated/coordinator.js';

/**
 * The one set of proto-loader options. scripts/gen-types.mjs passes the same
 * flags to proto-loader-gen-types, so the generated types match what loads.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** proto/ at the repository root; packages/shared/dist/proto.js is three levels below it. */
export const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'proto');

function load<T>(file: string): T {
  const definition = loadSync(file, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
  return loadPackageDefinition(definition) as unknown as T;
}

let agentProto: AgentProto | undefined;
let coordinatorProto: CoordinatorProto | undefined;

export function loadAgentProto(): AgentProto['virtfleet']['v1'] {
  agentProto ??= load<AgentProto>('virtfleet/v1/agent.proto');
  return agentProto.virtfleet.v1;
}

export function loadCoordinatorProto(): CoordinatorProto['virtfleet']['v1'] {
  coordinatorProto ??= load<CoordinatorProto>('virtfleet/v1/coordinator.proto');
  return coordinatorProto.virtfleet.v1;
}

/** TLS material, as file paths. With none given, the connection is plaintext. */
export interface TlsFiles {
  /** PEM certificate chain presented by this side. */
  cert?: string | undefined;
  /** PEM private key for `cert`. */
  key?: string | undefined;
  /** PEM CA bundle used to verify the other side. */
  ca?: string | undefined;
}

export function serverCredentials(tls: TlsFiles | undefined): ServerCredentials {
  if (!tls?.cert || !tls.key) return ServerCredentials.createInsecure();
  const ca = tls.ca ? readFileSync(tls.ca) : null;
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], ca !== null);
}

export function channelCredentials(tls: TlsFiles | undefined): ChannelCredentials {
  if (!tls?.ca && !tls?.cert) return credentials.createInsecure();
  return credentials.createSsl(
    tls.ca ? readFileSync(tls.ca) : null,
    tls.key ? readFileSync(tls.key) : null,
    tls.cert ? readFileSync(tls.cert) : null,
  );
}
