import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempMarker } from './processes.js';

function leftovers(): string[] {
  try {
    const out = execFileSync('pgrep', ['-af', tempMarker()], { encoding: 'utf8' });
    return out.split('\n').filter((line) => line.trim() !== '' && !line.includes('pgrep'));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

export function setup(): void {
  // Test files run in child processes, which inherit this: their temporary directories carry it.
  process.env.OVERSEER_TEST_RUN = String(process.pid);
  if (!existsSync(join(import.meta.dirname, '..', '..', 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  }
}

/** A test run that leaves a process behind is a bug: fail the run and name the process. */
export function teardown(): void {
  const left = leftovers();
  if (left.length === 0) return;
  for (const line of left) {
    const pid = Number(line.split(' ')[0]);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`tests left processes running (now killed):\n${left.join('\n')}`);
}
