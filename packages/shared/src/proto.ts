import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
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

export const AGENT_PROTO_FILE = 'virtfleet/v1/agent.proto';
export const COORDINATOR_PROTO_FILE = 'virtfleet/v1/coordinator.proto';
const definitions = new Map<string, PackageDefinition>();

/** A proto file's package definition, loaded once: what the services and server reflection are built from. */
export function protoDefinition(file: typeof AGENT_PROTO_FILE | typeof COORDINATOR_PROTO_FILE): PackageDefinition {
  let definition = definitions.get(file);
  if (!definition) {
    definition = loadSync(file, { ...PROTO_LOADER_OPTIONS, includeDirs: [PROTO_ROOT] });
    definitions.set(file, definition);
  }
  return definition;
}

let agentProto: AgentProto | undefined;
let coordinatorProto: CoordinatorProto | undefined;

export function loadAgentProto(): AgentProto['virtfleet']['v1'] {
  agentProto ??= loadPackageDefinition(protoDefinition(AGENT_PROTO_FILE)) as unknown as AgentProto;
  return agentProto.virtfleet.v1;
}

export function loadCoordinatorProto(): CoordinatorProto['virtfleet']['v1'] {
  coordinatorProto ??= loadPackageDefinition(protoDefinition(COORDINATOR_PROTO_FILE)) as unknown as CoordinatorProto;
  return coordinatorProto.virtfleet.v1;
}
