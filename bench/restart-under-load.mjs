// The core's restart-under-load benchmark on its own: steady throughput and restarts every second
// under 50 connections, keep-alive and a new connection per request, against bare node (and PM2),
// as ratios measured in the same run. `npm run bench` runs it with every other benchmark.
process.env.BENCH_ONLY ??= 'throughput,restarts';
process.env.BENCH_OUT ??= 'results-restart-under-load.md';
await import('./run-all.mjs');
