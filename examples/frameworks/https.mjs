// node:https under overseer: `TLS_KEY=key.pem TLS_CERT=cert.pem node examples/frameworks/https.mjs`,
// then `kill -USR2 <master pid>` restarts it with no failed request. ADDRESS (default :3443).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3443',
  workers: 2,
  program: async (state) => {
    // Read the key and certificate in the worker: a new generation picks up renewed files.
    const tls = { key: readFileSync(process.env.TLS_KEY ?? 'key.pem'), cert: readFileSync(process.env.TLS_CERT ?? 'cert.pem') };
    const server = https.createServer(tls, (req, res) => {
      res.setHeader('x-generation', String(state.generation));
      res.end(`Hello over TLS, generation ${state.generation}\n`);
    });
    await state.serve(server);
  },
});
