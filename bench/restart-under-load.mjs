// Restart-under-load benchmark: bare node:http vs overseer (steady, and restarting every second),
// each with keep-alive connections and with a new connection per request. Reports, never gates:
// exits 0 whatever the numbers, 1 only if a run crashed.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const DURATION = Number(process.env.BENCH_DURATION ?? 30);
const CONNECTIONS = 50;
const RESTART_EVERY_MS = 1000;
const server = (name) => fileURLToPath(new URL(`servers/${name}.mjs`, import.meta.url));

// `byHand`: what a restart without overseer does (systemctl restart): stop the server, start it again.
const SCENARIOS = [
  { name: 'bare node', file: server('bare') },
  { name: 'bare node, stop + start 1/s', file: server('bare'), restart: true, byHand: true },
  { name: 'overseer, 1 worker, steady', file: server('overseer'), workers: 1 },
  { name: 'overseer, 2 workers, steady', file: server('overseer'), workers: 2 },
  { name: 'overseer, 1 worker, restart 1/s', file: server('overseer'), workers: 1, restart: true },
  { name: 'overseer, 2 workers, restart 1/s', file: server('overseer'), workers: 2, restart: true },
];
const PATTERNS = [
  { name: 'keep-alive', reconnectRate: undefined },
  { name: 'new conn/request', reconnectRate: 1 },
];

// Servers get their own process group so that a master and all its workers die together.
const groups = new Set();
const killGroup = (pid) => {
  try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  groups.delete(pid);
};
process.on('exit', () => groups.forEach(killGroup));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function startServer({ file, workers }, fixedPort) {
  const child = spawn(process.execPath, [file], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BENCH_WORKERS: String(workers ?? 1), ...(fixedPort ? { PORT: String(fixedPort) } : {}) },
  });
  groups.add(child.pid);
  const log = { done: 0, abandoned: 0, warnings: {}, exited: false };
  child.on('exit', () => { log.exited = true; });
  const port = new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => reject(new Error(`${file} exited (${code ?? signal}) before it was ready`)));
    createInterface({ input: child.stdout }).on('line', (line) => /^\d+$/.test(line) && resolve(Number(line)));
    let boundPort;
    createInterface({ input: child.stderr }).on('line', (line) => {
      let entry;
      try { entry = JSON.parse(line); } catch { return void process.stderr.write(`[server] ${line}\n`); }
      const msg = String(entry.msg);
      if (msg === 'bound') boundPort = Number(entry.address.split(':').pop());
      // Wait for a ready worker, so the first requests measure serving and not startup.
      if (msg === 'worker ready' && boundPort) resolve(boundPort);
      if (msg === 'restart done') log.done++;
      if (msg.startsWith('restart abandoned')) log.abandoned++;
      if (entry.level >= 40) log.warnings[msg] = (log.warnings[msg] ?? 0) + 1;
    });
  });
  return { pid: child.pid, child, port, log };
}

// autocannon 8 has two blind spots that matter here, so each client is patched:
// - with reconnectRate it reconnects before emitting `response`, so nothing is counted at all;
// - it ignores `Connection: close` (a draining server sends it) and writes the next request into
//   the closing socket, and when the server closes a socket with a request in flight it silently
//   reconnects, so that request is neither answered nor counted as an error.
// The patch behaves like a real HTTP client and counts requests lost to a close as `unanswered`.
function instrument(client, counts) {
  let last, closeAfter = false, connError = false;
  const { pipelinedRequests: queue } = client;
  const terminate = queue.terminateRequest.bind(queue);
  queue.terminateRequest = () => (last = terminate());
  client.on('response', () => { last = undefined; });
  client.on('headers', (info) => { if (!info.shouldKeepAlive) closeAfter = true; });
  client.on('connError', () => { connError = true; });
  const { _connect: connect, _doRequest: doRequest, _resetConnection: reset } = client;
  client._resetConnection = function () {
    if (last) this.emit('response', last.headers.statusCode, last.bytes, last.duration, this.rate);
    reset.call(this);
  };
  client._doRequest = function () {
    if (!closeAfter) return doRequest.call(this);
    this._resetConnection();
  };
  client._connect = function () {
    if (this.conn) {
      if (!connError) counts.unanswered += queue.size();
      this._destroyConnection(); // also drops the old socket's listeners: a late error there used to open a second connection
    }
    closeAfter = connError = false;
    connect.call(this);
  };
}

function loadTest(url, reconnectRate, duration, counts = { unanswered: 0 }) {
  const latencies = [];
  const errorKinds = {};
  const instance = autocannon({
    url, connections: CONNECTIONS, duration, reconnectRate,
    setupClient: (client) => instrument(client, counts),
  });
  // Sub-millisecond latencies: autocannon's histogram rounds to whole ms, too coarse for a 2x check.
  instance.on('response', (_client, status, _bytes, ms) => { if (status < 300) latencies.push(ms); });
  instance.on('reqError', (err) => { const kind = err.code ?? err.message; errorKinds[kind] = (errorKinds[kind] ?? 0) + 1; });
  return instance.then((result) => ({ result, latencies, errorKinds, unanswered: counts.unanswered }));
}

/** Every second: SIGTERM the server, wait for it to exit, start it again on the same port. */
function restartByHand(first, scenario, port, log) {
  let current = first, stopped = false;
  const cycle = async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, RESTART_EVERY_MS));
      if (stopped) break;
      log.signals++;
      const exited = new Promise((resolve) => current.child.once('exit', resolve));
      process.kill(current.pid, 'SIGTERM');
      await exited;
      groups.delete(current.pid);
      if (stopped) break;
      current = startServer(scenario, port);
      await current.port.catch(() => {});
      log.done++;
    }
  };
  const loop = cycle();
  return { stop: async () => { stopped = true; await loop; return current; } };
}

async function measure(scenario, pattern) {
  let srv = startServer(scenario);
  const log = { signals: 0, done: 0 };
  let timer, byHand;
  try {
    const port = await srv.port;
    const url = `http://127.0.0.1:${port}`;
    await loadTest(url, pattern.reconnectRate, 1); // warm-up: JIT and connection setup
    if (scenario.byHand) byHand = restartByHand(srv, scenario, port, log);
    else if (scenario.restart) timer = setInterval(() => { log.signals++; process.kill(srv.pid, 'SIGUSR2'); }, RESTART_EVERY_MS);
    const run = await loadTest(url, pattern.reconnectRate, DURATION);
    clearInterval(timer);
    if (byHand) srv = await byHand.stop();
    else if (srv.log.exited) throw new Error(`${scenario.name}: server exited during the run`);
    return summarize(scenario, pattern, run, byHand ? { ...srv.log, ...log } : { ...srv.log, signals: log.signals });
  } finally {
    clearInterval(timer);
    await byHand?.stop();
    for (const pid of [...groups]) killGroup(pid);
  }
}

function summarize(scenario, pattern, { result, latencies, errorKinds, unanswered }, log) {
  if (result.requests.sent > 0 && result.requests.total === 0) throw new Error('autocannon counted no responses');
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  const non2xx = Object.entries(result.statusCodeStats).filter(([code]) => !code.startsWith('2'));
  const kinds = { ...errorKinds, ...Object.fromEntries(non2xx.map(([code, { count }]) => [`HTTP ${code}`, count])) };
  if (unanswered) kinds['closed without response'] = unanswered;
  if (result.resets) kinds['autocannon resets'] = result.resets;
  if (result.mismatches) kinds['body mismatch'] = result.mismatches;
  return {
    scenario: scenario.name, pattern: pattern.name, restart: scenario.restart, workers: scenario.workers,
    requests: result.requests.total,
    // autocannon's `errors` already includes `timeouts`, so they are not added twice.
    errors: result.errors + result.non2xx + result.resets + result.mismatches + unanswered,
    kinds, p50: pct(0.5), p99: pct(0.99), max: latencies.at(-1) ?? NaN,
    rps: result.requests.total / result.duration,
    restarts: scenario.restart ? `${log.done}/${log.signals}${log.abandoned ? `, ${log.abandoned} abandoned` : ''}` : '-',
    warnings: log.warnings,
  };
}

const ms = (v) => v.toFixed(2);
const rowOf = (rows, name, pattern) => rows.find((r) => r.scenario === name && r.pattern === pattern);

function report(rows) {
  const lines = [
    '| scenario | connection pattern | requests | errors | p50 (ms) | p99 (ms) | max (ms) | req/s | ratio to bare | restarts done/asked |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const bare = rowOf(rows, 'bare node', r.pattern);
    lines.push(`| ${r.scenario} | ${r.pattern} | ${r.requests} | ${r.errors} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${Math.round(r.rps)} | ${(r.rps / bare.rps).toFixed(3)} | ${r.restarts} |`);
  }
  const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
  const overseer = rows.filter((r) => r.scenario.startsWith('overseer'));
  lines.push('', `Goals (${DURATION} s per run, ${CONNECTIONS} connections):`);
  for (const r of overseer) {
    const detail = Object.entries(r.kinds).map(([k, n]) => `${k}: ${n}`).join(', ');
    lines.push(`- 0 errors, ${r.scenario}, ${r.pattern}: ${verdict(r.errors === 0)}${detail ? ` (${detail})` : ''}`);
  }
  for (const r of overseer.filter((row) => !row.restart)) {
    const ratio = r.rps / rowOf(rows, 'bare node', r.pattern).rps;
    lines.push(`- throughput >= 0.97 x bare, ${r.scenario}, ${r.pattern}: ${verdict(ratio >= 0.97)} (${ratio.toFixed(3)})`);
  }
  for (const r of overseer.filter((row) => row.restart)) {
    const steady = rowOf(rows, `overseer, ${r.workers} worker${r.workers > 1 ? 's' : ''}, steady`, r.pattern);
    lines.push(`- p99 restarting <= 2 x steady, ${r.scenario}, ${r.pattern}: ${verdict(r.p99 <= 2 * steady.p99)} (${ms(r.p99)} vs ${ms(steady.p99)} ms)`);
  }
  lines.push('', 'Restarting every second, against restarting bare node by hand (same rate):');
  for (const r of overseer.filter((row) => row.restart)) {
    const byHand = rowOf(rows, 'bare node, stop + start 1/s', r.pattern);
    const detail = Object.entries(byHand.kinds).map(([k, n]) => `${k}: ${n}`).join(', ');
    lines.push(`- ${r.scenario}, ${r.pattern}: ${r.errors} errors vs ${byHand.errors}${detail ? ` (${detail})` : ''}; throughput ${(r.rps / byHand.rps).toFixed(2)} x`);
  }
  const warnings = overseer.filter((r) => Object.keys(r.warnings).length);
  if (warnings.length) lines.push('', 'Server warnings and errors logged:');
  for (const r of warnings) lines.push(`- ${r.scenario}, ${r.pattern}: ${JSON.stringify(r.warnings)}`);
  return lines.join('\n');
}

try {
  const rows = [];
  for (const pattern of PATTERNS) {
    for (const scenario of SCENARIOS) {
      process.stderr.write(`running ${scenario.name}, ${pattern.name} (${DURATION} s)\n`);
      rows.push(await measure(scenario, pattern));
    }
  }
  const table = report(rows);
  console.log(table);
  const cpus = os.cpus();
  const machine = `${cpus.length} CPUs (${cpus[0]?.model.trim()}), node ${process.version}, ${os.type()} ${os.release()}, ${new Date().toISOString()}`;
  writeFileSync(new URL('results.md', import.meta.url), `# Restart under load\n\n${machine}\n\n${table}\n`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
