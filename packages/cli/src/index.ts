export { EXIT, exitCodeFor } from './exit-codes.js';
export { CoordinatorApi, CoordinatorUnreachableError, type ConnectionOptions, type WatchRequest } from './coordinator-client.js';
export { initCa, issueCertificate, describeCertificate, CA_CERT_FILE, CA_KEY_FILE, RENEW_WITHIN_DAYS, type IssuedFiles, type IssueOptions } from './pki.js';
export { issueNatsUser, revokeNatsUser, listNatsUsers, natsSeedFile, NATS_AUTHORIZATION_FILE, NATS_USERS_FILE, type IssuedNatsUser, type NatsUser } from './nats-users.js';
