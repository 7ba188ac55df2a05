// The demo behind `npm start`: a node:http server under an overseer master.
// Edit the GREETING below, then run `kill -USR2 <master pid>`: new requests get the new text,
// requests already in flight finish on the old code, and the master's pid stays the same.
import http from 'node:http';
import { pino } from 'pino';
import pretty from 'pino-pretty';
import { run } from 'overseer';

const GREETING = 'Hello World';
const port = Number(process.env.PORT ?? 3000);

// Code above run() runs in the master and in every worker; OVERSEER_WORKER tells them apart.
if (process.env.OVERSEER_WORKER !== '1') {
  process.stdout.write(
    `\nDemo on http://localhost:${port}, master pid ${process.pid}\n` +
      `  curl localhost:${port}                 # which worker and build answers\n` +
      `  curl 'localhost:${port}/?delay=5000'   # a slow request: start it, then restart\n` +
      `  edit GREETING in examples/demo/server.mjs, then:\n` +
      `  kill -USR2 ${process.pid}                  # zero-downtime restart onto the code on disk\n` +
      `  Ctrl-C                                   # drain and stop\n\n`,
  );
}

run({
  address: `:${port}`,
  workers: 2,
  terminateTimeout: 15_000,
  // Any pino logger fits; overseer's default is JSON lines on stderr.
  logger: pino(pretty({ sync: true, destination: 2, ignore: 'hostname,name,buildId', translateTime: 'HH:MM:ss.l', singleLine: true })),
  program: async (state) => {
    const server = http.createServer((req, res) => {
      const delay = Number(new URL(req.url ?? '/', 'http://demo').searchParams.get('delay') ?? 0);
      setTimeout(() => {
        res.end(`${GREETING} from worker ${process.pid}, generation ${state.generation}, build ${state.id.slice(0, 12)}\n`);
      }, Math.min(delay, 60_000));
    });
    await state.serve(server);
  },
});
