// Hono on Node (@hono/node-server) under overseer: `node examples/frameworks/hono.mjs`, then
// `kill -USR2 <master pid>` restarts it with no failed request. ADDRESS (default :3000) says where to listen.
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3000',
  workers: 2,
  program: async (state) => {
    const app = new Hono();
    app.get('/', (c) => {
      c.header('x-generation', String(state.generation));
      return c.text(`Hello from Hono, generation ${state.generation}\n`);
    });
    // createAdaptorServer() builds the node:http server that serve() would listen with, without
    // listening: state.serve() listens on state.listener and drains it on restart.
    await state.serve(createAdaptorServer({ fetch: app.fetch }));
  },
});
