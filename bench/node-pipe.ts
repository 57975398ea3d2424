// The Node.js floor of the benchmark: the least a Node.js TCP proxy does (accept, dial, pipe both ways,
// half-close forwarded), with no routing, logs or metrics, so the gateway's cost can be split into Node's
// own socket work and the gateway's. Usage: node bench/node-pipe.ts LISTEN_PORT=HOST:PORT [...]
import { connect, createServer } from 'node:net';

for (const mapping of process.argv.slice(2)) {
  const match = /^(\d+)=(.+):(\d+)$/.exec(mapping);
  if (!match) throw new Error(`expected LISTEN_PORT=HOST:PORT, got ${mapping}`);
  const [, listenPort, host, port] = match;
  // The same socket options as the gateway's listener and dial (src/proxy/listener.ts).
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const backend = connect({ host: host!, port: Number(port), allowHalfOpen: true, noDelay: true });
    const destroy = () => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', destroy);
    backend.on('error', destroy);
    client.pipe(backend);
    backend.pipe(client);
  });
  server.listen({ host: '127.0.0.1', port: Number(listenPort), backlog: 4096 });
}
process.on('SIGTERM', () => process.exit(0));
