// Baseline: a plain node:http server, no overseer. Prints its port so the bench can find it.
import http from 'node:http';
import { handler } from './handler.mjs';

const server = http.createServer(handler);
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
