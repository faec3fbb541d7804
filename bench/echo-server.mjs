// Baseline for the dispatch benchmark: a bare grpc-js unary echo with no
// protobuf, no validation and no application logic. Prints its port.
import { Server, ServerCredentials } from '@grpc/grpc-js';

const identity = (b) => b;
const server = new Server();
server.addService(
  { Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
  { Echo: (call, callback) => callback(null, call.request) },
);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${port}\n`);
});
process.on('SIGTERM', () => server.forceShutdown());
