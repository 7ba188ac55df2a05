import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { addControlCommands } from './control-commands.js';
import { addRunCommand } from './run-command.js';

function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** The `overseer` command. Supervision commands (`run`, `restart`, `status`) build on the library. */
export function main(argv: readonly string[] = process.argv): void {
  const program = new Command('overseer')
    .description('Zero-downtime restarts and self-upgrades for Node.js servers.\nLibrary mode: call run({ program, address }) from your entry script and start it with node.')
    .version(packageVersion())
    .showHelpAfterError();
  addControlCommands(program);
  addRunCommand(program);
  program.parse([...argv]);
}
