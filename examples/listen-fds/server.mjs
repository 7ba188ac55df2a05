// A plain node:http server that knows nothing of overseer, only systemd's socket-activation
// convention. It runs on its own, under systemd, and under `overseer run`:
//
//   node examples/listen-fds/server.mjs                                   # listens on PORT (3000)
//   overseer run -a :3000 -w 2 -- node examples/listen-fds/server.mjs     # zero-downtime restarts
//
// Under overseer (or systemd) the socket is already bound and handed over as fd 3; it tells the
// supervisor it serves with process.send('ready'), and on SIGTERM it drains: no new connections,
// `Connection: close` on every further response, idle keep-alive connections closed once they
// have sat idle, then exit.
import http from 'node:http';
import net from 'node:net';

const FIRST_FD = 3;
/** A keep-alive connection idle this long after the drain began is closed (a busier one gets Connection: close). */
const IDLE_CLOSE_MS = 500;
const GREETING = process.env.GREETING ?? 'Hello World';

// LISTEN_FDS is ours only when LISTEN_PID names this very process (systemd's rule).
const activated = Number(process.env.LISTEN_FDS) > 0 && Number(process.env.LISTEN_PID) === process.pid;

let draining = false;
/** Open connections, and whether each has a request in flight. */
const connections = new Map();

const server = http.createServer((req, res) => {
  const socket = req.socket;
  connections.set(socket, true);
  res.on('finish', () => {
    if (connections.has(socket)) connections.set(socket, false);
  });
  if (draining) res.setHeader('Connection', 'close');
  res.setHeader('x-pid', String(process.pid));
  res.setHeader('x-listen-pid', String(process.env.LISTEN_PID ?? ''));
  res.setHeader('x-generation', String(process.env.OVERSEER_GENERATION ?? ''));
  const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
  setTimeout(() => res.end(`${GREETING} from ${process.pid}\n`), Math.min(delay, 60_000));
});

server.on('connection', (socket) => {
  connections.set(socket, false);
  socket.on('close', () => connections.delete(socket));
});

/** Closes `socket` once nothing has arrived on it and no response is in flight for IDLE_CLOSE_MS. */
function closeWhenIdle(socket) {
  let seen = socket.bytesRead;
  const check = () => {
    if (socket.destroyed) return;
    if (socket.bytesRead !== seen || connections.get(socket)) {
      // In use: its response carries Connection: close, and Node closes it after that.
      seen = socket.bytesRead;
      setTimeout(check, IDLE_CLOSE_MS).unref();
      return;
    }
    socket.end();
  };
  setTimeout(check, IDLE_CLOSE_MS).unref();
}

function drain(why) {
  if (draining) return;
  draining = true;
  console.error(`[${process.pid}] ${why}: draining ${connections.size} connection(s)`);
  // net.Server's close stops accepting; http.Server's would also drop idle keep-alive connections
  // at once, resetting a client that is reusing one at that moment.
  net.Server.prototype.close.call(server, () => {
    console.error(`[${process.pid}] drained, exiting`);
    process.exit(0);
  });
  for (const socket of connections.keys()) closeWhenIdle(socket);
}

process.on('SIGTERM', () => drain('SIGTERM'));
process.on('SIGINT', () => drain('SIGINT'));
// Started by a node supervisor whose process is gone: nobody will ever stop us, so stop now.
process.on('disconnect', () => drain('supervisor gone'));

const where = activated ? { fd: FIRST_FD } : { port: Number(process.env.PORT ?? 3000) };
server.listen(where, () => {
  console.error(`[${process.pid}] listening on ${activated ? `fd ${FIRST_FD} (${process.env.LISTEN_FDNAMES ?? 'unnamed'})` : `port ${where.port}`}`);
  process.send?.('ready');
});
