// `npm run bench`: every benchmark in one run, on one machine, against the same peers (bare
// `node server.js`, PM2 in cluster mode, overseer; 1 and 2 workers), written to bench/results.md.
// Reports, never gates: exits 0 whatever the numbers, 1 only if a run crashed.
//   BENCH_DURATION  seconds of each restart-every-second run and of the bad-build watch (30)
//   BENCH_ROUNDS, BENCH_ROUND  throughput rounds (10) and seconds per round (BENCH_DURATION / 10)
//   BENCH_REPEAT    restarts timed per peer, and upgrade runs (5)
//   BENCH_LONG_MS   the long request (10000)
//   BENCH_ONLY      comma-separated sections: throughput,restarts,long,bad-build,restart-time,upgrade
//   BENCH_OUT       file name under bench/ (results.md)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { CONNECTIONS } from './lib/load.mjs';
import { PM2_SETTINGS } from './lib/pm2.mjs';
import { killEverything } from './lib/processes.mjs';
import { badBuildTable, measureBadBuild } from './suite/bad-build.mjs';
import { longRequestTable, measureLongRequest } from './suite/long-request.mjs';
import { measureRestarts, restartsTable } from './suite/restarts.mjs';
import { measureRestartTime, restartTimeTable } from './suite/restart-time.mjs';
import { median, verdict } from './suite/stats.mjs';
import { CLIENTS, measureThroughput, throughputRatios, throughputTable } from './suite/throughput.mjs';

const env = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const DURATION = env('BENCH_DURATION', 30);
const options = {
  duration: DURATION,
  window: DURATION,
  // Many short rounds: a peer's ratio to bare Node comes from runs seconds apart, not minutes.
  rounds: env('BENCH_ROUNDS', 10),
  roundSeconds: env('BENCH_ROUND', Math.max(1, Math.round(DURATION / 10))),
  repeat: env('BENCH_REPEAT', 5),
  longMs: env('BENCH_LONG_MS', 10_000),
  connections: CONNECTIONS,
};
const ONLY = process.env.BENCH_ONLY?.split(',');
const wanted = (section) => !ONLY || ONLY.includes(section);
const OUT = process.env.BENCH_OUT ?? 'results.md';
const started = Date.now();
const log = (line) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const load = () => os.loadavg().map((v) => v.toFixed(2)).join(', ');
const require = createRequire(import.meta.url);

function wrkVersion() {
  // `wrk --version` prints its banner and exits 1.
  const result = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  return result.error ? 'wrk not installed' : (result.stdout.split('\n')[0] ?? 'wrk').replace(/ \[.*\].*$/, '').trim();
}

function header(loadAtStart) {
  const cpus = os.cpus();
  return [
    '# Benchmarks',
    '',
    `- machine: ${cpus.length} cores, ${cpus[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    `- Node ${process.version}; PM2 ${require('pm2/package.json').version}; autocannon ${require('autocannon/package.json').version}; ${wrkVersion()}`,
    `- date: ${new Date(started).toISOString()}; took ${Math.round((Date.now() - started) / 60_000)} min; load average (1, 5, 15 min) at the start ${loadAtStart}, at the end ${load()}`,
    `- the machine is shared: other jobs may have run at the same time`,
    `- PM2: cluster mode, \`wait_ready: true\`, \`listen_timeout: ${PM2_SETTINGS.listen_timeout}\` (its docs' example), \`kill_timeout: ${PM2_SETTINGS.kill_timeout}\` ` +
      "(overseer's terminateTimeout; PM2's default 1600 and its docs' 3000 would cut the long request); the app calls `process.send('ready')` once listening and drains on SIGINT. " +
      "Reloads call PM2's API (what `pm2 reload <name>` does) from the bench, so the CLI's start-up is not counted.",
    `- overseer: defaults (readyTimeout and terminateTimeout 30 s)`,
    '- every server runs the same handler (`bench/servers/handler.mjs`), and replies with the build it runs in an `x-build` header',
  ].join('\n');
}

function goals(sections) {
  const lines = ['## Goals', ''];
  if (sections.restarts) {
    for (const r of sections.restarts.filter((row) => row.peer.kind === 'overseer')) {
      lines.push(`- 0 errors restarting every second, ${r.peer.name}, ${r.pattern.name}: ${verdict(r.errors === 0)} (${r.errors})`);
    }
  }
  if (sections.badBuild) {
    for (const r of sections.badBuild.filter((row) => row.peer.kind === 'overseer')) {
      lines.push(`- 0 errors and still up after a bad build, ${r.peer.name}: ${verdict(r.during.failed === 0 && r.up)} (${r.during.failed} failed, ${r.up ? 'up' : 'down'})`);
    }
  }
  for (const client of CLIENTS) {
    if (!sections.throughput?.[client.key]) continue;
    const ratios = throughputRatios(sections.throughput[client.key]);
    for (const key of ['overseer-1', 'overseer-2']) {
      for (const [pattern, ratio] of Object.entries(ratios[key])) {
        lines.push(`- steady throughput >= 0.97 x bare (${client.key}), ${key.replace('-', ', ')} worker(s), ${pattern}: ${verdict(ratio.median >= 0.97)} (${ratio.median.toFixed(3)}, rounds ${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}; ` +
          `CPU per request ${ratio.cpu.toFixed(3)} x bare's)`);
      }
    }
  }
  if (sections.restartTime) {
    const bare = median(sections.restartTime[0].times);
    for (const r of sections.restartTime.filter((row) => row.peer.kind === 'overseer')) {
      const overhead = median(r.times) - bare;
      lines.push(`- restart within 50 ms of bare start-up, ${r.peer.name}: ${verdict(overhead <= 50)} (${Math.round(median(r.times))} vs ${Math.round(bare)} ms, +${Math.round(overhead)} ms)`);
    }
  }
  return lines.join('\n');
}

try {
  const loadAtStart = load();
  log(`load average ${loadAtStart}`);
  const sections = {};
  const body = [];
  const section = (title, table) => body.push(`## ${title}\n\nLoad average when the section began: ${sectionLoad}.\n\n${table}`);
  let sectionLoad;
  const begin = () => { sectionLoad = load(); log(`load average ${sectionLoad}`); };
  if (wanted('throughput')) {
    sections.throughput = {};
    for (const client of CLIENTS) {
      begin();
      sections.throughput[client.key] = await measureThroughput({ ...options, log, client });
      section(`Throughput, steady, load from ${client.key}`, throughputTable(sections.throughput[client.key], { ...options, client }));
    }
  }
  // The sections after throughput: each measured, then written as its table.
  const SECTIONS = [
    { only: 'restarts', key: 'restarts', title: 'Restarting every second under load', measure: measureRestarts, table: restartsTable },
    { only: 'long', key: 'long', title: 'A long request across a restart', measure: measureLongRequest, table: longRequestTable },
    { only: 'bad-build', key: 'badBuild', title: 'A restart to a build that throws at start', measure: measureBadBuild, table: badBuildTable },
    { only: 'restart-time', key: 'restartTime', title: 'Restart time and manager memory', measure: measureRestartTime, table: restartTimeTable },
  ];
  for (const { only, key, title, measure, table } of SECTIONS.filter((entry) => wanted(entry.only))) {
    begin();
    sections[key] = await measure({ ...options, log });
    section(title, table(sections[key], options));
  }
  if (wanted('upgrade')) {
    begin();
    const { runUpgradeBench } = await import('./upgrade.mjs');
    section('Self-upgrade (overseer only)', (await runUpgradeBench({ log })).replace(/^Goals:$/m, 'Upgrade goals:'));
  }
  const text = [header(loadAtStart), goals(sections), ...body].join('\n\n');
  console.log(text);
  writeFileSync(new URL(OUT, import.meta.url), `${text}\n`);
  log(`wrote bench/${OUT}`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  killEverything();
  // PM2's API client keeps sockets open after the daemon is gone: leave without waiting on them.
  process.exit();
}
