export { EXIT, exitCodeFor } from './exit-codes.js';
export { CoordinatorApi, CoordinatorUnreachableError, type ConnectionOptions, type WatchRequest } from './coordinator-client.js';
