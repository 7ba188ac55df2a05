import type { TestApp } from './app.js';
import { startMaster, type MasterProcess } from './processes.js';

/** Starts `app`'s master and waits until it serves and watches its source. */
export async function startWatching(app: TestApp | string) {
  const master = startMaster(typeof app === 'string' ? app : app.path);
  const port = await master.port();
  await master.waitForLog('worker ready');
  await master.waitForLog('watching for new builds');
  return { master, port };
}

/** Waits for the `count`-th upgrade that ended (done, skipped, rejected or rolled back) and returns its line. */
export function upgradeEnded(master: MasterProcess, count = 1) {
  return master.waitForLog('upgrade ', { count, where: (line) => /^upgrade (done|skipped|rejected|rolled back)/.test(line.msg), timeoutMs: 20_000 });
}
