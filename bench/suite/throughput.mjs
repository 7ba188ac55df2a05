// Steady throughput, every peer alive at once and loaded in turn: rounds rotate the order of the
// peers so that drift on a shared machine hits them all alike, and each run follows a warm-up of
// its own (a peer that sat idle while the others ran must not start cold). Each figure is the
// median over rounds, each ratio the median of per-round ratios to bare Node in the same round.
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
    const measure = async (r, pattern, label) => {
      log(`throughput with ${client.key}, ${label}, ${pattern.name}, ${r.peer.name} (1 s warm-up, ${roundSeconds} s)`);
      await client.run(r.port, pattern, 1);
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
        const round = {};
        for (const r of running.map((_, j) => running[(j + i) % running.length])) round[r.peer.key] = await measure(r, pattern, `round ${i + 1}/${rounds}`);
        for (const [key, result] of Object.entries(round)) {
          result.baseline = round.bare;
          ((results[key] ??= {})[pattern.key] ??= []).push(result);
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
    `Steady throughput measured with ${client.name}: ${rounds} rounds of ${roundSeconds} s per peer and pattern, ${connections} connections, peers in turn within each round (rotating order), each run after a 1 s warm-up of its own. ` +
      'req/s: median over rounds (min–max); ratio: median of each round\'s ratio to bare Node in that round (min–max); latencies: median over rounds. ' +
      'CPU per request: user + system CPU time of the server\'s processes (manager and workers; not the load generator) in the round, divided by its requests, median over rounds, ' +
      'and its ratio to bare Node\'s (median of per-round ratios, min–max): the cost of serving a request, which other jobs on the machine move much less than throughput.',
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
