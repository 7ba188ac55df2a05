// Express under overseer: `node examples/frameworks/express.mjs`, then `kill -USR2 <master pid>`
// restarts it with no failed request. ADDRESS (default :3000) says where to listen.
import http from 'node:http';
import express from 'express';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3000',
  workers: 2,
  program: async (state) => {
    const app = express();
    app.get('/', (req, res) => {
      res.set('x-generation', String(state.generation)).send(`Hello from Express, generation ${state.generation}\n`);
    });
    // An Express app is a request handler: give state.serve() the http.Server around it, so
    // that overseer listens on state.listener and drains the server on restart. (app.listen(state.listener)
    // would listen too, but nothing would drain it.)
    await state.serve(http.createServer(app));
  },
});
