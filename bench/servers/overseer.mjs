// The same handler under overseer. The master logs `bound` with the chosen port on stderr.
import http from 'node:http';
import { run } from 'overseer';
import { handler } from './handler.mjs';

await run({
  address: '127.0.0.1:0',
  workers: Number(process.env.BENCH_WORKERS ?? 1),
  program: async (state) => {
    await state.serve(http.createServer(handler));
  },
});
