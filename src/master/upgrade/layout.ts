import { lstatSync } from 'node:fs';
import { join, sep } from 'node:path';

/**
 * How app archives are laid out: `<root>/releases/<id>/` holds each extracted release and
 * `<root>/current` is a symlink to the live one. A master runs from this layout when it was started
 * through the link (`node <root>/current/<entry>`), so that each new generation starts from
 * whatever `current` points at then.
 */
export interface ReleaseLayout {
  root: string;
  /** The entry script's path inside a release, as the master was started (`server.mjs`, `dist/main.js`). */
  entry: string;
}

/** The layout `scriptPath` (absolute, symlinks not resolved) runs from, if it runs through a `current` link. */
export function releaseLayoutOf(scriptPath: string): ReleaseLayout | undefined {
  const parts = scriptPath.split(sep);
  for (let i = parts.length - 2; i > 0; i--) {
    if (parts[i] !== 'current') continue;
    const root = parts.slice(0, i).join(sep) || sep;
    try {
      if (lstatSync(join(root, 'current')).isSymbolicLink()) return { root, entry: parts.slice(i + 1).join(sep) };
    } catch {
      // not there: keep looking further up
    }
  }
  return undefined;
}
