// `npm start`: installs the demo server as examples/demo/live/server.mjs (so upgrades replace that
// copy, never the file in the repository) and runs it under an overseer master.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
rmSync(here('./live'), { recursive: true, force: true });
rmSync(here('./incoming'), { recursive: true, force: true });
mkdirSync(here('./live'));
mkdirSync(here('./incoming'));
copyFileSync(here('./server.mjs'), here('./live/server.mjs'));

const port = Number(process.env.PORT ?? 3000);
const master = spawn(process.execPath, [here('./live/server.mjs')], { stdio: 'inherit' });
process.stdout.write(
  `\nDemo on http://localhost:${port}, master pid ${master.pid}\n` +
    `  curl localhost:${port}                 # which worker, generation and build answers\n` +
    `  curl 'localhost:${port}/?delay=5000'   # a slow request: start it, then upgrade\n` +
    `  npm run demo:publish                   # publish a new build: live within about a second\n` +
    `  npm run demo:publish -- --broken       # publish one that crashes at start: rolled back, no request lost\n` +
    `  kill -USR2 ${master.pid}                  # restart onto the installed build\n` +
    `  Ctrl-C                                 # drain and stop\n\n`,
);
// Ctrl-C reaches the master too (same terminal); this process just waits for it to finish draining.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => master.kill(signal));
master.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
