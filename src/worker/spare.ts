// A warm spare: a node process that has booted and loaded overseer ahead of time, so that a restart
// only has to load the user's build. The master sends `start` with the environment and argv a
// worker spawned at that moment would get; the spare takes them on and runs the entry script as
// its main module, exactly as `node <script>` would (require.main, import.meta, process.argv).
import Module from 'node:module';
import { asStartMessage, type SpareReadyMessage } from '../protocol.js';
// What every worker loads first; a worker importing 'overseer' from the same place finds it cached.
import '../index.js';

/** node's own entry-point runner (`node <script>` uses it): resolves the script, runs ESM or CommonJS as main. */
const runMain = (Module as unknown as { runMain?: (main?: string) => void }).runMain;

function send(message: SpareReadyMessage): void {
  process.send?.(message);
}

if (typeof runMain !== 'function' || !process.send) {
  send({ overseer: 'spare-ready', supported: false });
  process.exit(0);
}

// Until it becomes a worker a spare has nothing to drain: the master's going away ends it. Signals
// meant for the group (Ctrl-C, a restart signal sent to the group) are the master's to act on; the
// worker runtime ignores them too, so the no-op handlers stay, covering the script's loading.
const ignoredSignals = (process.argv[2] ?? 'SIGINT').split(',') as NodeJS.Signals[];
const ignore = () => {};
for (const signal of ignoredSignals) process.on(signal, ignore);
const onDisconnect = () => process.exit(0);
process.on('disconnect', onDisconnect);

const onMessage = (message: unknown) => {
  const start = asStartMessage(message);
  if (!start) return;
  process.off('message', onMessage);
  process.off('disconnect', onDisconnect);
  for (const key of Object.keys(process.env)) if (!(key in start.env)) delete process.env[key];
  Object.assign(process.env, start.env);
  process.argv = [process.argv[0]!, ...start.argv];
  runMain!(start.argv[0]);
};
process.on('message', onMessage);
send({ overseer: 'spare-ready', supported: true });
