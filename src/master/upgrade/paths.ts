import { basename, dirname, extname, join } from 'node:path';

/**
 * Where an upgrade puts its files: beside the installed build, with the installed build's
 * extension, because Node decides ESM or CommonJS from the extension and resolves imports from the
 * file's directory (`app.next.mjs` beside `app.mjs` behaves exactly like it; `app.mjs.next` would
 * be parsed as CommonJS).
 */
export interface BuildPaths {
  /** The installed build. */
  installed: string;
  /** A download in progress. */
  download: string;
  /** The candidate, decoded (gunzipped) when the download was gzipped. */
  next: string;
  /** The build that ran before the installed one, kept for rollback. */
  previous: string;
}

export function buildPaths(installed: string): BuildPaths {
  const dir = dirname(installed);
  const ext = extname(installed);
  const stem = basename(installed, ext);
  return {
    installed,
    download: join(dir, `${stem}.download${ext}`),
    next: join(dir, `${stem}.next${ext}`),
    previous: join(dir, `${stem}.prev${ext}`),
  };
}
