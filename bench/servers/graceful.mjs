// A plain node:http server that stops gracefully on `signal`: it stops accepting, answers what
// is in flight with `Connection: close`, closes idle keep-alive sockets, and exits once the last
// connection is gone. Used by the bare-node and PM2 peers (systemd sends SIGTERM, PM2 SIGINT).
import http from 'node:http';

export function gracefulServer(handler, signal) {
  let draining = false;
  const server = http.createServer((req, res) => {
    if (draining) res.setHeader('Connection', 'close');
    handler(req, res);
  });
  process.on(signal, () => {
    draining = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
  return server;
}
