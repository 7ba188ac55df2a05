// Steady throughput, every peer alive at once and loaded in turn, with bare Node measured before
// and after each other peer (bare, A, bare, B, bare, ...): each peer's ratio is to the mean of the
// two bare runs around it, seconds apart, so that a shared machine's drift hits both sides alike.
// Rounds rotate the order of the other peers; each figure is the median over rounds.
import { loadTest, PATTERNS } from '../lib/load.mjs';
import { assertWrk, wrkTest } from '../lib/wrk.mjs';
import { PEERS, startPeer } from '../lib/peers.mjs';
import { median, ms, round, treeCpuMs } from './stats.mjs';
/**
 * The load generators the section runs, each through every round. wrk first: written in C, it
 * leaves the servers most of the machine; autocannon (Node) needs about a core of the two here
 * itself, which matters most where two workers want both cores.
 */
export const CLIENTS = [
  { key: 'wrk', name: 'wrk (C, 1 thread)', run: wrkTest, check: assertWrk },
  { key: 'autocannon', name: 'autocannon (Node)', run: loadTest, check: () => {} },
];

export async function measureThroughput({ rounds, roundSeconds, log, client }) {
  client.check();
  const running = [];
  const results = {};
  try {
    for (const peer of PEERS) running.push(await startPeer(peer));
    for (const pattern of PATTERNS) {
      for (const r of running) await client.run(r.port, pattern, 2); // warm-up: JIT, connection setup
    }
    const [bare, ...others] = running;
    const measure = async (r, pattern, label) => {
      log(`throughput with ${client.key}, ${label}, ${pattern.name}, ${r.peer.name} (${roundSeconds} s)`);
      // The server's side only (manager and workers, not the load generator): CPU per request
      // tells a cost in the serving path apart from a machine that was busier in this round.
      const serverPid = r.managerPid ?? r.pid;
      const cpuBefore = treeCpuMs(serverPid);
      const result = await client.run(r.port, pattern, roundSeconds);
      result.cpuUsPerRequest = ((treeCpuMs(serverPid) - cpuBefore) * 1000) / result.requests;
      return result;
    };
    for (let i = 0; i < rounds; i++) {
      for (const pattern of PATTERNS) {
        const label = `round ${i + 1}/${rounds}`;
        let before = await measure(bare, pattern, label);
        ((results.bare ??= {})[pattern.key] ??= []).push({ ...before, baseline: before });
        for (const r of others.map((_, j) => others[(j + i) % others.length])) {
          const result = await measure(r, pattern, label);
          const after = await measure(bare, pattern, label);
          results.bare[pattern.key].push({ ...after, baseline: after });
          // The bare Node this run is compared with: the mean of the runs just before and after it.
          result.baseline = { rps: (before.rps + after.rps) / 2, cpuUsPerRequest: (before.cpuUsPerRequest + after.cpuUsPerRequest) / 2 };
          ((results[r.peer.key] ??= {})[pattern.key] ??= []).push(result);
          before = after;
        }
      }
    }
  } finally {
    for (const r of running) await r.stop();
  }
  return results;
}

export function throughputRatios(results) {
  const ratios = {};
  for (const peer of PEERS) {
    for (const pattern of PATTERNS) {
      const mine = results[peer.key][pattern.key];
      const perRound = mine.map((r) => r.rps / r.baseline.rps);
      const cpuPerRound = mine.map((r) => r.cpuUsPerRequest / r.baseline.cpuUsPerRequest);
      (ratios[peer.key] ??= {})[pattern.key] = {
        median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound),
        cpu: median(cpuPerRound), cpuMin: Math.min(...cpuPerRound), cpuMax: Math.max(...cpuPerRound),
      };
    }
  }
  return ratios;
}

export function throughputTable(results, { rounds, roundSeconds, connections, client }) {
  const ratios = throughputRatios(results);
  const lines = [
    `Steady throughput measured with ${client.name}: ${rounds} rounds of ${roundSeconds} s per peer and pattern, ${connections} connections; within a round, bare Node runs before and after each other peer. ` +
      'req/s: median over runs (min–max); ratio: median over rounds of the peer\'s req/s to the mean of the bare Node runs just before and after it (min–max); latencies: median over runs. ' +
      'CPU per request: user + system CPU time of the server\'s processes (manager and workers; not the load generator) in the round, divided by its requests, median over runs, ' +
      'and its ratio to bare Node\'s around it (median over rounds, min–max): the cost of serving a request, which other jobs on the machine move much less than throughput.',
    '',
    '| peer | connection pattern | req/s | ratio to bare | CPU per request (µs) | CPU ratio to bare | p50 (ms) | p99 (ms) | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const pattern of PATTERNS) {
    for (const peer of PEERS) {
      const runs = results[peer.key][pattern.key];
      const rps = runs.map((r) => r.rps);
      const ratio = ratios[peer.key][pattern.key];
      lines.push(`| ${peer.name} | ${pattern.name} | ${round(median(rps))} (${round(Math.min(...rps))}–${round(Math.max(...rps))}) | ` +
        `${ratio.median.toFixed(3)} (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}) | ${median(runs.map((r) => r.cpuUsPerRequest)).toFixed(1)} | ` +
        `${ratio.cpu.toFixed(3)} (${ratio.cpuMin.toFixed(2)}–${ratio.cpuMax.toFixed(2)}) | ${ms(median(runs.map((r) => r.p50)))} | ` +
        `${ms(median(runs.map((r) => r.p99)))} | ${runs.reduce((n, r) => n + r.errors, 0)} |`);
    }
  }
  return lines.join('\n');
}
