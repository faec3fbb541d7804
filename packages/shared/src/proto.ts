import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
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
