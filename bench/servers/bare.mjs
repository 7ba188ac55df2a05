// Baseline: a plain node:http server, no overseer. Prints its port so the bench can find it.
// PORT pins the port, for the restart-by-hand row; SIGTERM stops it gracefully, as systemd would.
import http from 'node:http';
import { handler } from './handler.mjs';

const server = http.createServer(handler);
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
