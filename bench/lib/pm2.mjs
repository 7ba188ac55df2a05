// PM2 as a peer: a daemon of its own (PM2_HOME in a temp dir) running the graceful app in cluster
// mode with PM2's documented zero-downtime settings. Reloads go through PM2's programmatic API,
// the call `pm2 reload <name>` makes, so the CLI's own start-up (~0.3 s of CPU) is not counted.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killGroup, makeTempDir, onExit, removeDir } from './processes.mjs';

const require = createRequire(import.meta.url);
const PM2_CLI = require.resolve('pm2/bin/pm2');
const APP = fileURLToPath(new URL('../servers/pm2-app.mjs', import.meta.url));

/** The settings PM2's docs give for zero-downtime reloads; kill_timeout as overseer's terminateTimeout. */
export const PM2_SETTINGS = {
  exec_mode: 'cluster',
  wait_ready: true,
  listen_timeout: 10_000,
  // PM2's docs show 3000 (default 1600); overseer lets old workers drain for 30 s, so PM2 gets as long.
  kill_timeout: 30_000,
};

// The daemon inherits these: no banner, no version check over the network, no pm2.io agent.
Object.assign(process.env, {
  PM2_PROGRAMMATIC: 'true',
  PM2_DISABLE_VERSION_CHECK: 'true',
  PM2_NO_INTERACTION: 'true',
  PM2_DISCRETE_MODE: 'true',
});
delete process.env.PM2_HOME; // the daemon takes PM2_HOME from our environment over its option

const call = (api, method, ...args) =>
  new Promise((resolve, reject) => api[method](...args, (error, result) => (error ? reject(error instanceof Error ? error : new Error(JSON.stringify(error))) : resolve(result))));

/** `pm2 kill`, synchronously (for exit paths), then the daemon's whole process group. */
function killDaemonSync(home, godPid) {
  spawnSync(process.execPath, [PM2_CLI, 'kill'], { env: { ...process.env, PM2_HOME: home }, stdio: 'ignore', timeout: 10_000 });
  if (godPid) killGroup(godPid);
  removeDir(home);
}

/** Starts a PM2 daemon and `instances` workers of the graceful app on `port`. */
export async function startPm2({ name, instances, port, env }) {
  const home = makeTempDir('overseer-bench-pm2-');
  writeFileSync(join(home, 'touch'), String(Date.now())); // PM2 prints a banner and phones home until this exists
  const PM2 = require('pm2');
  const api = new PM2.custom({ pm2_home: home });
  let godPid;
  const removeHook = onExit(() => killDaemonSync(home, godPid));
  await call(api, 'connect');
  godPid = Number(readFileSync(join(home, 'pm2.pid'), 'utf8'));
  await call(api, 'start', {
    name, script: APP, instances, ...PM2_SETTINGS,
    env: { ...env, PORT: String(port) },
    out_file: '/dev/null', error_file: join(home, 'app-errors.log'),
  });
  return {
    godPid,
    home,
    reload: () => call(api, 'reload', name),
    async stop() {
      try {
        await Promise.race([call(api, 'killDaemon'), new Promise((resolve) => setTimeout(resolve, 10_000))]);
      } catch { /* the group kill below ends it anyway */ }
      api.disconnect?.(() => {});
      removeHook();
      killGroup(godPid);
      removeDir(home);
    },
  };
}
