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
    // fastify.listen() takes a port or a path, not an inherited { fd }: load the plugins and
    // routes with ready(), then hand Fastify's own http.Server to state.serve(). (For a server
    // of your own, https or http2, build it with Fastify's serverFactory option and do the same.)
    await app.ready();
    await state.serve(app.server);
  },
});
