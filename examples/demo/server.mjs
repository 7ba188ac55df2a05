// The demo behind `npm start`: a node:http server under an overseer master that upgrades itself
// from a build dropped into examples/demo/incoming/ (`npm run demo:publish` makes one).
// `kill -USR2 <master pid>` restarts onto the installed build; Ctrl-C drains and stops.
import http from 'node:http';
import { pino } from 'pino';
import pretty from 'pino-pretty';
import { FileFetcher, run } from 'overseer';

const GREETING = 'Hello World';
const port = Number(process.env.PORT ?? 3000);

run({
  address: `:${port}`,
  workers: 2,
  terminateTimeout: 15_000,
  // New builds appear here; each is checked, installed over this file and restarted onto.
  fetcher: new FileFetcher({ path: new URL('../incoming/server.mjs', import.meta.url).pathname }),
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
