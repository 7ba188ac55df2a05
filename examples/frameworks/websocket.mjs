// WebSockets (ws) under overseer: `node examples/frameworks/websocket.mjs`, then
// `kill -USR2 <master pid>`: every open socket is closed with 1012 ("service restart") after its
// queued messages, and clients reconnect, to the new generation. ADDRESS (default :3000).
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { run } from 'overseer';

const SERVICE_RESTART = 1012;

run({
  address: process.env.ADDRESS ?? ':3000',
  workers: 2,
  program: async (state) => {
    const server = http.createServer((req, res) => {
      res.setHeader('x-generation', String(state.generation));
      res.end(`Hello, generation ${state.generation}; WebSockets on this port too\n`);
    });
    const wss = new WebSocketServer({ server });
    const restarting = (ws) => ws.close(SERVICE_RESTART, 'service restart');

    wss.on('connection', (ws) => {
      // A connection accepted just as the drain began is told to go elsewhere at once.
      if (state.gracefulShutdown.aborted) return restarting(ws);
      ws.send(JSON.stringify({ hello: state.generation }));
      // An echo service: every message comes back with the generation that answered it.
      ws.on('message', (data) => ws.send(JSON.stringify({ echo: String(data), generation: state.generation })));
    });

    // Upgraded sockets are the application's: overseer's drain neither counts them idle nor cuts
    // them. Ask each client to reconnect; ws sends the close frame after the messages queued
    // before it, so nothing already answered is lost, and the drain ends when the sockets close.
    state.gracefulShutdown.addEventListener('abort', () => {
      for (const ws of wss.clients) restarting(ws);
    });

    await state.serve(server);
  },
});
