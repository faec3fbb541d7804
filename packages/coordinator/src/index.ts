export { startCoordinator, type RunningCoordinator } from './coordinator.js';
export { coordinatorConfigSchema, loadCoordinatorConfig, type CoordinatorConfig } from './config.js';
export { AgentClient, AgentClientPool, type AgentAction, type AgentClientOptions } from './dispatch/agent-client.js';
export type { Scheduler, HostSnapshot, PlacementRecord, PlacementRequest, CandidateRecord, ResourceVector } from './scheduler/scheduler.js';
export { assume, release, demandOf } from './scheduler/scheduler.js';
export { createScheduler, type SchedulerSettings } from './scheduler/create-scheduler.js';
export { AdmissionQueue, type AdmissionQueueOptions, type QueueEntry, type PassResult } from './scheduler/admission-queue.js';
export { QUEUE_POLICIES, PLACEMENT_POLICIES, type QueuePolicy, type PlacementPolicy } from './scheduler/catalog.js';
export { snapshotOf } from './scheduler/snapshots.js';
