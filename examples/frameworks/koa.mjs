// Koa under overseer: `node examples/frameworks/koa.mjs`, then `kill -USR2 <master pid>`
// restarts it with no failed request. ADDRESS (default :3000) says where to listen.
import http from 'node:http';
import Koa from 'koa';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3000',
  workers: 2,
  program: async (state) => {
    const app = new Koa();
    app.use(async (ctx) => {
      ctx.set('x-generation', String(state.generation));
      ctx.body = `Hello from Koa, generation ${state.generation}\n`;
    });
    // app.callback() is the request handler app.listen() would have used.
    await state.serve(http.createServer(app.callback()));
  },
});
