export { startCoordinator, type RunningCoordinator } from './coordinator.js';
export { coordinatorConfigSchema, loadCoordinatorConfig, type CoordinatorConfig } from './config.js';
export { AgentClient, AgentClientPool, type AgentAction, type AgentClientOptions } from './dispatch/agent-client.js';
export type { Scheduler, HostSnapshot, PlacementDecision, PlacementRequest, CandidateVerdict } from './scheduler/scheduler.js';
export { FirstFitScheduler } from './scheduler/first-fit-scheduler.js';
