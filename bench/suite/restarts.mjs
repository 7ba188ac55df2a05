// Restarting every second under load: each peer restarted its own way (bare Node stopped and
// started, PM2 reloaded, overseer signalled) while 50 connections keep sending requests.
import { describeKinds, loadTest, PATTERNS } from '../lib/load.mjs';
import { PEERS, restartEvery, startPeer } from '../lib/peers.mjs';
import { ms, round } from './stats.mjs';

const RESTART_EVERY_MS = 1000;

export async function measureRestarts({ duration, log }) {
  const rows = [];
  for (const pattern of PATTERNS) {
    for (const peer of PEERS) {
      log(`restart 1/s, ${pattern.name}, ${peer.name} (${duration} s)`);
      const running = await startPeer(peer);
      try {
        await loadTest(running.port, pattern, 1); // warm-up
        const restarts = restartEvery(running, RESTART_EVERY_MS);
        let result;
        try {
          result = await loadTest(running.port, pattern, duration);
        } finally {
          await restarts.stop();
        }
        if (running.alive && !running.alive()) throw new Error(`${peer.name}: the master exited during the run`);
        const done = running.log?.done ?? running.counts.done;
        rows.push({ peer, pattern, ...result, done, ticks: restarts.ticks.count, failedRestarts: running.counts.failed ?? 0, warnings: running.log?.warnings ?? {} });
      } finally {
        await running.stop();
      }
    }
  }
  return rows;
}

export function restartsTable(rows, { duration, connections }) {
  const lines = [
    `Restarting every second for ${duration} s, ${connections} connections (bare node: SIGTERM, wait for exit, start again on the same port; ` +
      'PM2: `pm2 reload`; overseer: SIGUSR2). A restart still running when the next second comes absorbs it: "done/asked" counts restarts completed and seconds ticked.',
    '',
    '| peer | connection pattern | requests | errors | p50 (ms) | p99 (ms) | max (ms) | req/s | restarts done/asked | errors by kind |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    const name = r.peer.kind === 'bare' ? 'bare node, stop + start' : r.peer.name;
    lines.push(`| ${name} | ${r.pattern.name} | ${r.requests} | ${r.errors} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${round(r.rps)} | ${r.done}/${r.ticks}${r.failedRestarts ? `, ${r.failedRestarts} failed` : ''} | ${describeKinds(r.kinds) || '-'} |`);
  }
  const warned = rows.filter((r) => Object.keys(r.warnings).length);
  if (warned.length) lines.push('', 'overseer warnings logged:', ...warned.map((r) => `- ${r.peer.name}, ${r.pattern.name}: ${JSON.stringify(r.warnings)}`));
  return lines.join('\n');
}
