export { startAgent, startHost, AGENT_VERSION, type HostDeps, type RunningAgent } from './agent.js';
export { startSimulatedFleet, simulatedHostConfigs, type RunningFleet } from './simulation/fleet.js';
export { runFencer } from './fencing/fencer.js';
export { agentConfigSchema, loadAgentConfig, defaultHostId, simulatedHostId, MAX_SIMULATED_HOSTS, type AgentConfig } from './config.js';
export type { Driver, DriverFingerprint, DriverWorkload, DriverContext, DriverFactory, StopOptions, WorkloadUsage } from './drivers/driver.js';
export { createDriver, DRIVER_NAMES, type DriverConfigs, type DriverName } from './drivers/catalog.js';
