import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { DIST_INDEX } from './processes.js';

/**
 * Source of a fetcher a user could write in twenty lines, steered by a control file: each time the
 * control file's `n` changes it answers as `mode` says (`build`: hand over the file `build`, with
 * `sha256` and the text of the file `signature` when given; `fail`: throw; `hang`: never answer).
 * Put it in a test app's `top` and use `globalThis.controlledFetcher` as its fetcher.
 */
export function controlledFetcherSource(controlPath: string): string {
  return `
import { createReadStream, readFileSync } from 'node:fs';
import { FetchError } from ${JSON.stringify(DIST_INDEX)};
class ControlledFetcher {
  source = 'test:controlled';
  interval = 100;
  seen = 0;
  async fetch(signal) {
    let control;
    try { control = JSON.parse(readFileSync(${JSON.stringify(controlPath)}, 'utf8')); } catch { return undefined; }
    if (control.n === this.seen) return undefined;
    if (control.mode === 'fail') throw new FetchError(this.source, 'the source answered 500 Internal Server Error');
    if (control.mode === 'hang') return new Promise(() => {});
    this.seen = control.n;
    const signature = control.signature ? readFileSync(control.signature, 'utf8') : undefined;
    return { stream: createReadStream(control.build), sha256: control.sha256, signature, version: 'v' + control.n, name: control.name };
  }
}
globalThis.controlledFetcher = new ControlledFetcher();
`;
}

/** Writes the control file that `controlledFetcherSource` reads. */
export class FetcherControl {
  private n = 0;

  constructor(private readonly controlPath: string) {}

  /** Hands over the file at `buildPath`, with its real SHA-256 unless `sha256` says otherwise. */
  offer(buildPath: string, options: { sha256?: string | null; signature?: string; name?: string } = {}): void {
    this.n += 1;
    const sha256 = options.sha256 === undefined ? createHash('sha256').update(readFileSync(buildPath)).digest('hex') : (options.sha256 ?? undefined);
    writeFileSync(this.controlPath, JSON.stringify({ n: this.n, mode: 'build', build: buildPath, sha256, signature: options.signature, name: options.name }));
  }

  misbehave(mode: 'fail' | 'hang'): void {
    this.n += 1;
    writeFileSync(this.controlPath, JSON.stringify({ n: this.n, mode }));
  }
}
