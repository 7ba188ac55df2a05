// The same server under overseer. The master logs `bound` with the chosen port on stderr.
import http from 'node:http';
import { run } from 'overseer';
import { createHandler, loadBuild } from './handler.mjs';

await run({
  address: `127.0.0.1:${process.env.PORT ?? 0}`,
  workers: Number(process.env.BENCH_WORKERS ?? 1),
  warmStart: process.env.BENCH_WARM_START !== 'false',
  program: async (state) => {
    await state.serve(http.createServer(createHandler(await loadBuild())));
  },
});
