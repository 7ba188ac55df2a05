// Restart time (signal to the new build's first reply) against bare `node server.js` start-up
// (spawn to first reply), and the manager's memory idle and while it hands over.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { COLD_PEERS, freePort, PEERS, startBare, startPeer, BuildFile } from '../lib/peers.mjs';
import { killGroup, makeTempDir, removeDir } from '../lib/processes.mjs';
import { firstReplyFrom } from '../lib/probe.mjs';
import { mb, median, rssKb, round, sampleRss, sleep, treePssKb } from './stats.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function bareStartups(repeat) {
  const dir = makeTempDir('overseer-bench-startup-');
  const build = new BuildFile(dir);
  const times = [];
  try {
    for (let i = 1; i <= repeat; i++) {
      const port = await freePort();
      build.write(`s${i}`);
      const t0 = Date.now();
      const started = startBare(build, port);
      const at = await firstReplyFrom(port, `s${i}`, { everyMs: 1, timeoutMs: 30_000 });
      times.push(at - t0);
      killGroup((await started).child.pid);
      await sleep(300);
    }
  } finally {
    removeDir(dir);
  }
  return times;
}

/** The whole of a bare `node server.js` idle: its PSS after start-up has settled. */
async function bareIdlePss() {
  const dir = makeTempDir('overseer-bench-pss-');
  const started = startBare(new BuildFile(dir), await freePort());
  try {
    const { child } = await started;
    await sleep(2000);
    return treePssKb(child.pid);
  } finally {
    killGroup((await started).child.pid);
    removeDir(dir);
  }
}

/** Spawn to exit of `node --input-type=module -e <source>`: what loading a module costs a new process. */
async function processLifetimes(source, repeat) {
  const times = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: 'ignore', cwd: ROOT });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`node -e ${JSON.stringify(source)} exited ${code}`);
    times.push(Date.now() - t0);
  }
  return times;
}

export async function measureRestartTime({ repeat, log }) {
  log(`bare node start-up to first reply (${repeat} runs)`);
  const rows = [{ peer: PEERS[0], times: await bareStartups(repeat), groupPssKb: await bareIdlePss() }];
  rows.emptyProcess = await processLifetimes('', repeat);
  rows.importOverseer = await processLifetimes("await import('overseer')", repeat);
  for (const peer of [...PEERS.filter((p) => p.kind !== 'bare'), ...COLD_PEERS]) {
    log(`restart time and manager memory, ${peer.name} (${repeat} runs)`);
    const running = await startPeer(peer);
    try {
      await sleep(2000); // start-up settles: lazy loads, GC
      const idle = [];
      for (let i = 0; i < 100; i++) { idle.push(rssKb(running.managerPid)); await sleep(10); }
      const groupPssKb = treePssKb(running.managerPid);
      const sampler = sampleRss(running.managerPid);
      const times = [];
      for (let i = 1; i <= repeat; i++) {
        running.build.write(`r${i}`);
        const t0 = Date.now();
        const restart = running.restart();
        const at = await firstReplyFrom(running.port, `r${i}`, { everyMs: 1 });
        times.push(at - t0);
        await restart;
        if (running.waitForDrained) await running.waitForDrained(i);
        // Restarts a second apart, not back to back (the restarts section does those): what a
        // deploy sees, and time for overseer's warm spares to boot again.
        await sleep(1000);
      }
      const handoff = sampler.stop();
      rows.push({ peer, times, idleKb: median(idle), peakKb: Math.max(...handoff), groupPssKb });
    } finally {
      await running.stop();
    }
  }
  return rows;
}

export function restartTimeTable(rows, { repeat }) {
  const bare = median(rows[0].times);
  const lines = [
    `Restart time: from the signal (bare node: spawning \`node server.js\`; PM2: the reload call; overseer: SIGUSR2) to the first reply from the new build, ` +
      `polling \`GET /\` on a new connection every 1 ms; ${repeat} runs each, a second apart. overseer keeps a warm spare per worker by default (a node process booted with overseer loaded, waiting to run the build); the \`warmStart: false\` rows start every worker from scratch. ` +
      `Manager memory: RSS of overseer's master or PM2's daemon (God), idle (median over 1 s) and the peak while it hands over (sampled every 10 ms through the ${repeat} restarts). ` +
      `All processes: the PSS (shared pages split between the processes that share them) of the manager and everything under it, idle: workers, overseer's spares, PM2's. MB = 2^20 bytes.`,
    '',
    '| peer | median (ms) | each run (ms) | ratio to bare start-up | overhead (ms) | manager RSS idle (MB) | manager RSS peak in handoffs (MB) | all processes PSS idle (MB) |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const mine = median(r.times);
    const name = r.peer.kind === 'bare' ? 'bare node, start-up' : r.peer.name;
    lines.push(`| ${name} | ${round(mine)} | ${r.times.join(', ')} | ${(mine / bare).toFixed(2)} | ${round(mine - bare)} | ${mb(r.idleKb)} | ${mb(r.peakKb)} | ${mb(r.groupPssKb)} |`);
  }
  if (rows.emptyProcess) {
    lines.push('', `What a new process costs before it serves (spawn to exit, median of ${repeat}): \`node\` with an empty script ${round(median(rows.emptyProcess))} ms ` +
      `(${rows.emptyProcess.join(', ')}); importing overseer, as every overseer worker does, ${round(median(rows.importOverseer))} ms (${rows.importOverseer.join(', ')}).`);
  }
  return lines.join('\n');
}
