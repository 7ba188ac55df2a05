// Everything a bench starts dies with it: servers run in their own process groups, killed whole;
// temp dirs are removed; exit hooks (PM2's daemon) run on a normal end, a crash and SIGINT/TERM/HUP.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

const groups = new Set();
const tempDirs = new Set();
const exitHooks = new Set();

export function killGroup(pid) {
  try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  groups.delete(pid);
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.delete(dir);
}

export function makeTempDir(prefix = 'overseer-bench-') {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Runs `hook` synchronously when the bench exits, however it exits; returns its remover. */
export function onExit(hook) {
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

/** `node file` in a process group of its own, so that it and every child die together. */
export function spawnNode(file, env = {}) {
  const child = spawn(process.execPath, [file], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  groups.add(child.pid);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return child;
}

export function killEverything() {
  for (const hook of [...exitHooks]) {
    try { hook(); } catch (error) { process.stderr.write(`cleanup: ${error.message}\n`); }
    exitHooks.delete(hook);
  }
  groups.forEach(killGroup);
  tempDirs.forEach(removeDir);
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping every server the bench started\n`);
    process.exit(130);
  });
}
