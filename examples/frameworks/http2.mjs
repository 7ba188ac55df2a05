// node:http2 under overseer: `TLS_KEY=key.pem TLS_CERT=cert.pem node examples/frameworks/http2.mjs`,
// then `kill -USR2 <master pid>` restarts it with no failed request. ADDRESS (default :3443).
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3443',
  workers: 2,
  program: async (state) => {
    const tls = { key: readFileSync(process.env.TLS_KEY ?? 'key.pem'), cert: readFileSync(process.env.TLS_CERT ?? 'cert.pem') };
    // allowHTTP1: clients that do not speak h2 get HTTP/1.1 on the same port.
    const server = http2.createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => {
      res.setHeader('x-generation', String(state.generation));
      res.end(`Hello over HTTP/${req.httpVersion}, generation ${state.generation}\n`);
    });
    // On restart, state.serve() sends every HTTP/2 session GOAWAY: the streams it accepted
    // finish, and clients open their next streams on a new connection, to the new generation.
    await state.serve(server);
  },
});
