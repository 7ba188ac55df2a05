// Fastify under overseer: `node examples/frameworks/fastify.mjs`, then `kill -USR2 <master pid>`
// restarts it with no failed request. ADDRESS (default :3000) says where to listen.
import Fastify from 'fastify';
import { run } from 'overseer';

run({
  address: process.env.ADDRESS ?? ':3000',
  workers: 2,
  program: async (state) => {
    const app = Fastify();
    app.get('/', async (request, reply) => {
      reply.header('x-generation', String(state.generation));
      return `Hello from Fastify, generation ${state.generation}\n`;
    });
    // Load the plugins and routes with ready(), then hand Fastify's own http.Server to
    // state.serve(), which listens on state.listener and drains it on restart. (app.listen(state.listener)
    // would listen as well, but app.close() closes idle keep-alive sockets at once, which resets a
    // client that was just reusing one.) For https or http2, build the server with Fastify's
    // https/http2 options or its serverFactory, and do the same.
    await app.ready();
    await state.serve(app.server);
  },
});
