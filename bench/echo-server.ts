// The benchmark's backend: a TCP echo server, run as the container command of the bench StatefulSet's pod.
// A chunk ending in 0x04 (EOT) is echoed and then the server closes, so in the connection-rate workload
// the backend closes first and TIME_WAIT stays in the pod's network namespace, not on the client's ports.
import { createServer } from 'node:net';

const EOT = 0x04;
const port = Number(process.argv[2] ?? '8273');
const server = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    socket.write(chunk);
    if (chunk[chunk.length - 1] === EOT) socket.end();
  });
});
server.listen({ port, host: '0.0.0.0', backlog: 4096 });
process.on('SIGTERM', () => process.exit(0));
