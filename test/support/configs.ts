import { loadAgentConfig, type AgentConfig } from '@virtfleet/agent';
import { loadCoordinatorConfig, type CoordinatorConfig } from '@virtfleet/coordinator';
import type { ManagedProcess } from './processes.js';

/** The `--config` file a daemon was started with. */
function configFileOf(p: ManagedProcess): string {
  const args = p.child.spawnargs;
  const at = args.indexOf('--config');
  const file = at >= 0 ? args[at + 1] : undefined;
  if (!file) throw new Error(`${p.name} was started without --config`);
  return file;
}

/** The configuration a coordinator process runs with: its config file through the coordinator's own loader, defaults included. */
export const coordinatorConfigOf = (p: ManagedProcess): CoordinatorConfig => loadCoordinatorConfig(configFileOf(p));

/** The configuration an agent process runs with: its config file through the agent's own loader, defaults included. */
export const agentConfigOf = (p: ManagedProcess): AgentConfig => loadAgentConfig(configFileOf(p));
