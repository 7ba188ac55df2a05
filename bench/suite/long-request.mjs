// A long request in flight during a restart: does it finish, and on which build? A light poller
// (new connection per request) counts what failed meanwhile and when the new build first replied.
import { describeKinds } from '../lib/load.mjs';
import { PEERS, startPeer } from '../lib/peers.mjs';
import { probe, startPoller, summarizeOutcomes } from '../lib/probe.mjs';
import { round, sleep } from './stats.mjs';

export async function measureLongRequest({ longMs, log }) {
  const rows = [];
  for (const peer of PEERS) {
    log(`long request (${longMs / 1000} s) across a restart, ${peer.name}`);
    const running = await startPeer(peer);
    try {
      const poller = startPoller(running.port, { concurrency: 2, everyMs: 50 });
      const sent = Date.now();
      const long = probe(running.port, `/slow?ms=${longMs}`, longMs + 60_000).then((reply) => ({ ...reply, took: Date.now() - sent }));
      await sleep(1000);
      running.build.write('v2');
      const restartedAt = Date.now();
      const restart = running.restart();
      const reply = await long;
      await restart;
      await sleep(500);
      await poller.stop();
      const during = poller.outcomes.filter((o) => o.at >= restartedAt);
      const firstNew = during.find((o) => o.build === 'v2');
      rows.push({ peer, reply, polls: summarizeOutcomes(during), newAfter: firstNew ? firstNew.at - restartedAt : undefined });
    } finally {
      await running.stop();
    }
  }
  return rows;
}

export function longRequestTable(rows, { longMs }) {
  const lines = [
    `A ${longMs / 1000} s request sent 1 s before a restart to a new build (v2); meanwhile a client sends \`GET /\` on a new connection every 50 ms from 2 loops.`,
    '',
    '| peer | long request | answered by | took (ms) | polls failed / sent from the restart on | new build first replied (ms after restart) |',
    '|---|---|---|---:|---|---:|',
  ];
  for (const r of rows) {
    const finished = r.reply.status === 200 ? 'finished' : `failed (${r.reply.error ?? `HTTP ${r.reply.status}`})`;
    const by = r.reply.status === 200 ? (r.reply.body === 'v1' ? 'old build (v1)' : `new build (${r.reply.body})`) : '-';
    const kinds = describeKinds(r.polls.kinds);
    lines.push(`| ${r.peer.kind === 'bare' ? 'bare node, stop + start' : r.peer.name} | ${finished} | ${by} | ${round(r.reply.took)} | ${r.polls.failed} / ${r.polls.total}${kinds ? ` (${kinds})` : ''} | ${round(r.newAfter)} |`);
  }
  return lines.join('\n');
}
