// Upgrade benchmark: how long a new build takes to serve (restart by signal, FileFetcher with and
// without its filesystem watch, HTTPFetcher), and how much the master's memory grows while it
// installs a 200 MB build. Reports, never gates: exits 0 whatever the numbers, 1 only if a run crashed.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FileFetcher } from '../dist/fetchers/index.js';

const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const HTTP_INTERVAL_MS = 1000;
const POLL_EVERY_MS = 5;
const BIG_BUILD_BYTES = 200 * 1024 * 1024;
/** The same build without its padding: what an upgrade costs whatever the size. */
const SMALL_BUILD_BYTES = 4 * 1024;
const MB = 1024 * 1024;
const DIST_INDEX = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const FILE_DEFAULTS = new FileFetcher({ path: 'defaults-probe' });

// Masters get their own process group so that a master and all its workers die together.
const groups = new Set();
const tempDirs = new Set();
const killGroup = (pid) => {
  try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  groups.delete(pid);
};
const removeDir = (dir) => {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
};
process.on('exit', () => {
  groups.forEach(killGroup);
  tempDirs.forEach(removeDir);
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));

function makeTempDir() {
  const dir = mkdtempSync(join(os.tmpdir(), 'overseer-bench-upgrade-'));
  tempDirs.add(dir);
  return dir;
}

/** An overseer app replying `reply` on every request; `fetcher` is an expression for the option. */
function appSource({ reply, fetcher }) {
  return `import http from 'node:http';
import { run, FileFetcher, HTTPFetcher } from ${JSON.stringify(DIST_INDEX)};

/** A FileFetcher that never hears from the filesystem: only its polls find builds. */
class PollOnlyFileFetcher extends FileFetcher {
  watch() {
    return () => {};
  }
}

const REPLY = ${JSON.stringify(reply)};

run({
  address: '127.0.0.1:0',
  workers: 1,
  ${fetcher ? `fetcher: ${fetcher},` : ''}
  program: async (state) => {
    await state.serve(http.createServer((req, res) => res.end(REPLY)));
  },
});
`;
}

/** A master started from `script`, with its JSON log lines kept in order. */
class Master {
  constructor(script) {
    this.child = spawn(process.execPath, [script], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.child.pid;
    groups.add(this.pid);
    this.lines = [];
    this.other = [];
    this.waiters = new Set();
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? signal)));
    this.exited.then((how) => {
      const error = new Error(`master exited (${how}); last output: ${this.other.slice(-5).join(' | ')}`);
      for (const waiter of this.waiters) waiter.reject(error);
    });
    this.child.stdout.resume();
    createInterface({ input: this.child.stderr }).on('line', (line) => {
      let entry;
      try { entry = JSON.parse(line); } catch { this.other.push(line); return; }
      this.lines.push(entry);
      if (entry.level >= 40) this.other.push(`${entry.msg}: ${entry.reason ?? entry.err?.message ?? ''}`);
      for (const waiter of this.waiters) waiter.check(entry);
    });
  }

  /** The first line from index `from` on that `matches`, waiting for it up to `timeoutMs`. */
  waitFor(what, matches, { from = 0, timeoutMs = 30_000 } = {}) {
    const found = this.lines.slice(from).find(matches);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no "${what}" in the master's log within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        check: (entry) => {
          if (!matches(entry)) return;
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(entry);
        },
        reject: (error) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  waitForMsg(msg, options) {
    return this.waitFor(msg, (entry) => entry.msg === msg, options);
  }

  /** Resolves with the port once a worker is ready (and, with a fetcher, the fetcher is watching). */
  async ready({ fetching }) {
    const bound = await this.waitForMsg('bound');
    await this.waitForMsg('worker ready');
    if (fetching) this.watching = await this.waitForMsg('watching for new builds');
    return Number(String(bound.address).split(':').pop());
  }

  async stop() {
    killGroup(this.pid);
    await this.exited;
  }
}

/** Polls `GET /` on a new connection every few ms until the body is `expected`; resolves with when. */
function firstReply(port, expected, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    let failures = 0;
    let finished = false;
    const deadline = setTimeout(() => {
      finished = true;
      reject(new Error(`the server did not reply "${expected}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const next = () => void (finished || setTimeout(poll, POLL_EVERY_MS));
    const poll = () => {
      const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (body += chunk));
        response.on('error', () => { failures++; next(); });
        response.on('end', () => {
          if (body !== expected) return next();
          finished = true;
          clearTimeout(deadline);
          resolve({ at: Date.now(), failures });
        });
      });
      request.setTimeout(2000, () => request.destroy(new Error('no answer within 2 s')));
      request.on('error', () => { failures++; next(); });
    };
    poll();
  });
}

/** Writes `source` beside `path` and renames it into place, as a build tool does; returns when the rename began. */
function publishFile(path, source) {
  const temp = `${path}.tmp`;
  writeFileSync(temp, source);
  const at = Date.now();
  renameSync(temp, path);
  return at;
}

/** Serves one build with an ETag from the bench process; `build` can be swapped at any time. */
async function startBuildServer(build) {
  const server = {
    build,
    etag: '',
    set(bytes) {
      this.build = bytes;
      this.etag = `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"`;
      return Date.now();
    },
  };
  server.set(build);
  const httpServer = http.createServer((req, res) => {
    if (req.headers['if-none-match'] === server.etag) return void res.writeHead(304, { etag: server.etag }).end();
    res.writeHead(200, { etag: server.etag, 'content-length': server.build.length, 'content-type': 'text/javascript' });
    res.end(server.build);
  });
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  server.url = `http://127.0.0.1:${httpServer.address().port}/app.mjs`;
  server.close = () => new Promise((resolve) => { httpServer.closeAllConnections(); httpServer.close(resolve); });
  return server;
}

/** Log steps of an upgrade, in order; worker steps are the new generation's. */
const STEPS = [
  ['found', 'upgrade: new build found, downloading'],
  ['downloaded', 'upgrade: build downloaded'],
  ['sanity', 'upgrade: sanity check passed'],
  ['installed', 'upgrade: build installed'],
  ['begun', 'restart begun'],
  ['started', 'worker started'],
  ['ready', 'worker ready'],
  ['done', 'restart done'],
  ['upgraded', 'upgrade done'],
];

/** Each step's time (ms after `t0`) in the log lines from index `from` on. */
function stepTimes(master, from, t0) {
  const lines = master.lines.slice(from);
  const generation = lines.find((line) => line.msg === 'restart begun')?.generation;
  const times = {};
  for (const [key, msg] of STEPS) {
    const line = lines.find((l) => l.msg === msg && (key !== 'started' && key !== 'ready' ? true : l.generation === generation));
    if (line) times[key] = line.time - t0;
  }
  return times;
}

const ENDED = /^upgrade (done|skipped|rejected|rolled back)/;

/**
 * One scenario: a master running `setup`'s app; REPEAT times, a new version appears through
 * `publish` (which returns the moment the clock starts) and the bench waits to be served it.
 */
async function measureLatency(scenario) {
  const dir = makeTempDir();
  const appPath = join(dir, 'app.mjs');
  const incoming = join(dir, 'incoming');
  mkdirSync(incoming);
  const buildPath = join(incoming, 'build.mjs');
  const buildServer = scenario.kind === 'http' ? await startBuildServer(Buffer.alloc(0)) : undefined;
  const fetcher = {
    signal: undefined,
    file: `new FileFetcher({ path: ${JSON.stringify(buildPath)} })`,
    'poll-only': `new PollOnlyFileFetcher({ path: ${JSON.stringify(buildPath)} })`,
    http: `new HTTPFetcher({ url: ${JSON.stringify(buildServer?.url)}, interval: ${HTTP_INTERVAL_MS} })`,
  }[scenario.kind];
  const source = (reply) => appSource({ reply, fetcher });
  writeFileSync(appPath, source('hello v0'));
  // The source starts out serving the running build: the master's first fetch finds it and skips it.
  buildServer?.set(readFileSync(appPath));
  const master = new Master(appPath);
  const runs = [];
  try {
    const port = await master.ready({ fetching: fetcher !== undefined });
    if (buildServer) await master.waitFor('first fetch skipped', (line) => line.msg === 'upgrade skipped');
    await sleep(1000);
    for (let i = 1; i <= REPEAT; i++) {
      // Past the first poll after the last upgrade (before it, the last fetch started long ago and
      // a watch event fetches at once, which is not the steady state), then a random point of the
      // poll cycle.
      await sleep(1500 + Math.random() * 1000);
      const reply = `hello ${scenario.key}${i}`;
      const from = master.lines.length;
      const seen = firstReply(port, reply);
      let t0;
      if (scenario.kind === 'signal') {
        writeFileSync(appPath, source(reply));
        t0 = Date.now();
        process.kill(master.pid, 'SIGUSR2');
      } else if (buildServer) {
        t0 = buildServer.set(Buffer.from(source(reply)));
      } else {
        t0 = publishFile(buildPath, source(reply));
      }
      const { at, failures } = await seen;
      if (scenario.kind === 'signal') {
        await master.waitForMsg('restart done', { from });
      } else {
        const ended = await master.waitFor('upgrade ended', (line) => ENDED.test(line.msg), { from });
        if (ended.msg !== 'upgrade done') throw new Error(`${scenario.name}: ${ended.msg}: ${ended.reason}`);
      }
      // Start the next run from a quiet master: the old generation gone.
      await master.waitForMsg('generation drained', { from });
      const steps = stepTimes(master, from, t0);
      runs.push({ ms: at - t0, failures, steps });
      const timeline = STEPS.filter(([key]) => steps[key] !== undefined).map(([key]) => `${key} ${steps[key]}`).join(', ');
      process.stderr.write(`  ${scenario.key}${i}: ${at - t0} ms (${timeline})\n`);
    }
    return { scenario, runs, minFetchInterval: master.watching?.minFetchInterval };
  } finally {
    await master.stop();
    await buildServer?.close();
    removeDir(dir);
  }
}

function vmRssKb(pid) {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** Peak RSS since the last reset; resetting needs Linux 4.0+ and may be refused, then it stays undefined. */
function resetPeak(pid) {
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); return true; } catch { return false; }
}
function vmHwmKb(pid) {
  const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** Writes a native build: a shell script that execs node on `appPath`, padded to `bytes` after an `exit` line. */
function writeBigBuild(path, appPath, bytes) {
  const head = Buffer.from(`#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(appPath)} "$@"\nexit\n`);
  const line = `# ${'padding '.repeat(7)}\n`;
  const chunk = Buffer.from(line.repeat(Math.ceil(MB / line.length))).subarray(0, MB);
  const fd = openSync(path, 'w', 0o644);
  try {
    writeSync(fd, head);
    let left = bytes - head.length;
    while (left > 0) left -= writeSync(fd, chunk, 0, Math.min(chunk.length, left));
  } finally {
    closeSync(fd);
  }
}

/** Stages of an upgrade, by the log steps that bound them, for the RSS peak in each. */
const MEMORY_STAGES = [
  ['fetch, settle', undefined, 'found'],
  ['download + hash', 'found', 'downloaded'],
  ['sanity check', 'downloaded', 'sanity'],
  ['install', 'sanity', 'installed'],
  ['hash build, restart begun', 'installed', 'begun'],
  ['new worker to restart done', 'begun', 'upgraded'],
];

/**
 * The master's RSS idle, then while it takes a native build of `bytes` through FileFetcher:
 * overall and per stage of the upgrade.
 */
async function measureMemory(bytes) {
  const dir = makeTempDir();
  const appPath = join(dir, 'app.mjs');
  const bigApp = join(dir, 'big-build-app.mjs');
  const incoming = join(dir, 'incoming');
  mkdirSync(incoming);
  const buildPath = join(incoming, 'build');
  const fetcher = `new FileFetcher({ path: ${JSON.stringify(buildPath)} })`;
  writeFileSync(appPath, appSource({ reply: 'hello small', fetcher }));
  writeFileSync(bigApp, appSource({ reply: 'hello big build', fetcher }));
  const master = new Master(appPath);
  let sampler;
  try {
    const port = await master.ready({ fetching: true });
    await sleep(3000); // start-up settles: first fetch, lazy loads, GC
    const idleSamples = [];
    for (let i = 0; i < 100; i++) {
      idleSamples.push(vmRssKb(master.pid));
      await sleep(10);
    }
    const idleKb = median(idleSamples);

    const temp = join(incoming, 'build.tmp');
    writeBigBuild(temp, bigApp, bytes);
    const peakReset = resetPeak(master.pid);
    const samples = [];
    sampler = setInterval(() => {
      try { samples.push({ at: Date.now(), kb: vmRssKb(master.pid) }); } catch { /* exiting */ }
    }, 10);
    const from = master.lines.length;
    const t0 = Date.now();
    renameSync(temp, buildPath);
    const ended = await master.waitFor('upgrade ended', (line) => ENDED.test(line.msg), { from, timeoutMs: 180_000 });
    clearInterval(sampler);
    const hwmKb = peakReset ? vmHwmKb(master.pid) : undefined;
    if (ended.msg !== 'upgrade done') throw new Error(`${bytes} byte build: ${ended.msg}: ${ended.reason}`);
    await firstReply(port, 'hello big build', 10_000);
    const steps = stepTimes(master, from, t0);
    const stagePeaks = MEMORY_STAGES.map(([name, start, end]) => {
      const inStage = samples.filter(({ at }) => at - t0 >= (start ? steps[start] : 0) && at - t0 <= steps[end]);
      return [name, inStage.length ? Math.max(...inStage.map((s) => s.kb)) : undefined];
    });
    return { bytes, idleKb, peakKb: Math.max(...samples.map((s) => s.kb)), hwmKb, samples: samples.length, steps, stagePeaks };
  } finally {
    clearInterval(sampler);
    await master.stop();
    removeDir(dir);
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const cell = (value) => (value === undefined || Number.isNaN(value) ? '-' : String(Math.round(value)));
const medianOf = (runs, pick) => {
  const values = runs.map(pick).filter((v) => v !== undefined && !Number.isNaN(v));
  return values.length ? median(values) : undefined;
};
const mb = (kb) => (kb / 1024).toFixed(1);

function report(results, memory) {
  const settle = FILE_DEFAULTS.settle;
  const lines = [
    `Time from a new build appearing to the first reply from it (a client polling \`GET /\` every ${POLL_EVERY_MS} ms, new connection each time), ${REPEAT} runs each, 1 worker:`,
    '',
    '| scenario | clock starts | median (ms) | max (ms) | min (ms) | each run (ms) | failed polls |',
    '|---|---|---:|---:|---:|---|---:|',
  ];
  for (const { scenario, runs } of results) {
    const ms = runs.map((r) => r.ms);
    lines.push(`| ${scenario.name} | ${scenario.clock} | ${cell(median(ms))} | ${cell(Math.max(...ms))} | ${cell(Math.min(...ms))} | ${ms.join(', ')} | ${runs.reduce((n, r) => n + r.failures, 0)} |`);
  }
  const minFetch = results.find((r) => r.minFetchInterval !== undefined)?.minFetchInterval;
  lines.push(
    '',
    `FileFetcher defaults: interval ${FILE_DEFAULTS.interval} ms, settle ${settle} ms; master minFetchInterval ${minFetch} ms (default). ` +
      `HTTPFetcher's default interval is 60 s; its row uses ${HTTP_INTERVAL_MS / 1000} s.`,
    '',
    "Where the time goes: median ms after the clock started at which the master logged each step (log `time`, ms resolution):",
    '',
    '| scenario | build found | downloaded | sanity check passed | installed | restart begun | new worker started | new worker ready | restart done | first new reply | upgrade done |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const { scenario, runs } of results) {
    const at = (key) => cell(medianOf(runs, (r) => r.steps[key]));
    lines.push(`| ${scenario.name} | ${['found', 'downloaded', 'sanity', 'installed', 'begun', 'started', 'ready', 'done'].map(at).join(' | ')} | ${cell(median(runs.map((r) => r.ms)))} | ${at('upgraded')} |`);
  }
  lines.push(
    '',
    `Median length of each stage (ms); for FileFetcher, "waiting for a fetch" is build found − ${settle} ms settle − clock start:`,
    '',
    '| scenario | waiting for a fetch | settle | download + hash | sanity check | install | hash build, restart begun | worker start to ready | ready to restart done |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const { scenario, runs } of results) {
    const isFile = scenario.kind === 'file' || scenario.kind === 'poll-only';
    const gap = (a, b) => cell(medianOf(runs, (r) => (r.steps[b] ?? NaN) - (a ? r.steps[a] ?? NaN : 0)));
    const wait = scenario.kind === 'signal' ? '-' : cell(medianOf(runs, (r) => r.steps.found - (isFile ? settle : 0)));
    const begun = scenario.kind === 'signal' ? gap(undefined, 'begun') : gap('installed', 'begun');
    lines.push(`| ${scenario.name} | ${wait} | ${isFile ? settle : '-'} | ${gap('found', 'downloaded')} | ${gap('downloaded', 'sanity')} | ${gap('sanity', 'installed')} | ${begun} | ${gap('started', 'ready')} | ${gap('ready', 'done')} |`);
  }

  const [big] = memory;
  const growthKb = (m) => m.peakKb - m.idleKb;
  const size = (bytes) => (bytes >= MB ? `${bytes / MB} MB` : `${bytes / 1024} KB`);
  lines.push(
    '',
    'Master memory while it installs a native build through FileFetcher: VmRSS of a fresh, idle master (median over 1 s), ' +
      "then sampled every 10 ms from the rename until `upgrade done`; the small build shows the cost that does not grow with size. MB = 2^20 bytes.",
    '',
    `| build | idle RSS (MB) | peak RSS (MB) | growth (MB) | kernel peak, VmHWM reset at the rename (MB) | samples | upgrade took (ms) | ${MEMORY_STAGES.map(([name]) => `peak in ${name} (MB)`).join(' | ')} |`,
    `|---|---:|---:|---:|---:|---:|---:|${MEMORY_STAGES.map(() => '---:').join('|')}|`,
  );
  for (const m of memory) {
    const stages = m.stagePeaks.map(([, kb]) => (kb === undefined ? '-' : mb(kb))).join(' | ');
    lines.push(`| ${size(m.bytes)} | ${mb(m.idleKb)} | ${mb(m.peakKb)} | ${mb(growthKb(m))} | ${m.hwmKb === undefined ? '-' : mb(m.hwmKb)} | ${m.samples} | ${cell(m.steps.upgraded)} | ${stages} |`);
  }
  lines.push('', `Steps of the ${size(big.bytes)} upgrade (ms after the rename): ${STEPS.filter(([key]) => big.steps[key] !== undefined).map(([key, msg]) => `${msg.replace('upgrade: ', '')} ${cell(big.steps[key])}`).join(', ')}.`);

  const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
  const file = results.find((r) => r.scenario.kind === 'file');
  const fileMs = file.runs.map((r) => r.ms);
  const worstKb = Math.max(growthKb(big), big.hwmKb === undefined ? -Infinity : big.hwmKb - big.idleKb);
  lines.push(
    '',
    'Goals:',
    `- FileFetcher, default interval: serving within 1.5 s of the file appearing, median: ${verdict(median(fileMs) < 1500)} (${cell(median(fileMs))} ms)`,
    `- FileFetcher, default interval: serving within 1.5 s of the file appearing, max: ${verdict(Math.max(...fileMs) < 1500)} (${cell(Math.max(...fileMs))} ms)`,
    `- master memory growth under 20 MB while installing a ${BIG_BUILD_BYTES / MB} MB build: ${verdict(worstKb < 20 * 1024)} (${mb(worstKb)} MB, the larger of sampled and kernel peak; a ${size(memory[1].bytes)} build grew it ${mb(growthKb(memory[1]))} MB)`,
  );
  return lines.join('\n');
}

const SCENARIOS = [
  { key: 'a', kind: 'signal', name: 'a. restart by signal (SIGUSR2)', clock: 'the signal' },
  { key: 'b', kind: 'file', name: 'b. FileFetcher, default interval', clock: 'the rename' },
  { key: 'c', kind: 'poll-only', name: 'c. FileFetcher, polling only (watch off), default interval', clock: 'the rename' },
  { key: 'd', kind: 'http', name: `d. HTTPFetcher, interval ${HTTP_INTERVAL_MS / 1000} s (default 60 s)`, clock: 'the server serves it' },
];

/** Runs every upgrade scenario and the memory measurement; resolves with the Markdown tables. */
export async function runUpgradeBench({ log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const results = [];
  for (const scenario of SCENARIOS) {
    log(`upgrade: ${scenario.name} (${REPEAT} runs)`);
    results.push(await measureLatency(scenario));
  }
  const memory = [];
  for (const bytes of [BIG_BUILD_BYTES, SMALL_BUILD_BYTES]) {
    log(`upgrade: master memory while installing a ${bytes} byte build`);
    memory.push(await measureMemory(bytes));
  }
  return report(results, memory);
}

// Run on its own (`npm run bench:upgrade`), it writes results-upgrade.md; `npm run bench` imports it.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const table = await runUpgradeBench();
    console.log(table);
    const cpus = os.cpus();
    const machine = `${cpus.length} CPUs (${cpus[0]?.model.trim()}), node ${process.version}, ${os.type()} ${os.release()}, ${new Date().toISOString()}`;
    writeFileSync(new URL('results-upgrade.md', import.meta.url), `# Upgrade\n\n${machine}\n\n${table}\n`);
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  }
}
