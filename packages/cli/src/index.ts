export { EXIT, exitCodeFor } from './exit-codes.js';
export { CoordinatorApi, type ConnectionOptions } from './coordinator-client.js';
