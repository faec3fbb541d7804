export { startAgent, AGENT_VERSION, type RunningAgent } from './agent.js';
export { runFencer } from './fencing/fencer.js';
export { agentConfigSchema, loadAgentConfig, defaultHostId, type AgentConfig } from './config.js';
export type { Driver, DriverFingerprint, DriverWorkload, DriverContext, DriverFactory, StopOptions, WorkloadUsage } from './drivers/driver.js';
export { createDriver, DRIVER_NAMES, type DriverConfigs, type DriverName } from './drivers/catalog.js';
