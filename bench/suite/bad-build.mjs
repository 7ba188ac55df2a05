// A restart to a build that throws at start, under a light load: how many requests fail in the
// next `window` seconds, and is the service still up at the end?
import { describeKinds } from '../lib/load.mjs';
import { PEERS, startPeer } from '../lib/peers.mjs';
import { probe, startPoller, summarizeOutcomes } from '../lib/probe.mjs';
import { round, sleep } from './stats.mjs';

const CONCURRENCY = 4;
const EVERY_MS = 20;

export async function measureBadBuild({ window, log }) {
  const rows = [];
  for (const peer of PEERS) {
    log(`bad build, ${peer.name} (${window} s)`);
    const running = await startPeer(peer);
    try {
      const poller = startPoller(running.port, { concurrency: CONCURRENCY, everyMs: EVERY_MS });
      await sleep(1000);
      running.build.writeBroken();
      const restartedAt = Date.now();
      const restart = running.restart();
      await sleep(window * 1000);
      await poller.stop();
      const finals = [];
      for (let i = 0; i < 3; i++) { finals.push(await probe(running.port)); await sleep(100); }
      const up = finals.every((f) => f.status === 200);
      await Promise.race([restart, sleep(15_000)]);
      const during = summarizeOutcomes(poller.outcomes.filter((o) => o.at >= restartedAt));
      rows.push({ peer, during, up, finalBuild: finals.at(-1).build, finalError: finals.at(-1).error, restartedAt });
    } finally {
      await running.stop();
    }
  }
  return rows;
}

export function badBuildTable(rows, { window }) {
  const lines = [
    `A restart to a build that throws at start (bare node: stopped, then started on it; PM2: \`pm2 reload\`; overseer: SIGUSR2), under ${CONCURRENCY} loops each sending \`GET /\` on a new connection every ${EVERY_MS} ms, watched for ${window} s.`,
    '',
    '| peer | requests failed / sent | first failure (s after restart) | last success (s after restart) | up at the end | errors by kind |',
    '|---|---|---:|---:|---|---|',
  ];
  const seconds = (at, r) => (at === undefined ? '-' : ((at - r.restartedAt) / 1000).toFixed(1));
  for (const r of rows) {
    const end = r.up ? `yes (build ${r.finalBuild})` : `no (${r.finalError ?? 'not 200'})`;
    lines.push(`| ${r.peer.kind === 'bare' ? 'bare node, stop + start' : r.peer.name} | ${r.during.failed} / ${r.during.total} | ${seconds(r.during.firstFailureAt, r)} | ${seconds(r.during.lastOkAt, r)} | ${end} | ${describeKinds(r.during.kinds) || '-'} |`);
  }
  return lines.join('\n');
}
