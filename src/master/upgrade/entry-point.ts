import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ArchiveError, describeError } from '../../errors.js';

interface PackageJson {
  name?: unknown;
  main?: unknown;
  bin?: unknown;
}

/**
 * The entry point of an extracted app, as an absolute path inside `releaseDir`.
 *
 * The app's directory is the release itself, or its single top-level directory when the archive
 * wraps the app in one (`app-1.2.3/`) and holds nothing else. `configured`, when
 * given, is taken relative to the app's directory (then to the release) and must exist inside
 * the release. Otherwise the app's `package.json` says: `main` (a file, `main.js` or
 * `main/index.js`, as Node resolves it), else its only `bin` entry.
 */
export async function resolveEntryPoint(releaseDir: string, configured?: string): Promise<string> {
  const appDir = await findAppDir(releaseDir);
  if (configured !== undefined) {
    const candidates = appDir === releaseDir ? [appDir] : [appDir, releaseDir];
    for (const base of candidates) {
      const found = await existingFile(releaseDir, resolve(base, configured));
      if (found) return found;
    }
    throw new ArchiveError(`the configured entry point "${configured}" is not a file inside the release "${releaseDir}": give a path relative to the app's directory ("${appDir}")`);
  }
  const pkgPath = join(appDir, 'package.json');
  const pkg = await readPackageJson(pkgPath);
  if (typeof pkg.main === 'string' && pkg.main !== '') {
    const main = resolve(appDir, pkg.main);
    for (const candidate of [main, `${main}.js`, join(main, 'index.js')]) {
      const found = await existingFile(releaseDir, candidate);
      if (found) return found;
    }
    throw new ArchiveError(`"main" in "${pkgPath}" is "${pkg.main}", which is not a file inside the release: fix "main" or configure the entry point`, 'package.json');
  }
  const bin = binEntries(pkg.bin);
  if (bin.length === 1) {
    const [name, path] = bin[0] as [string, string];
    const found = await existingFile(releaseDir, resolve(appDir, path));
    if (found) return found;
    throw new ArchiveError(`"bin" entry "${name}" in "${pkgPath}" is "${path}", which is not a file inside the release: fix "bin" or configure the entry point`, 'package.json');
  }
  if (bin.length > 1) {
    throw new ArchiveError(`"${pkgPath}" has no "main" and ${bin.length} "bin" entries (${bin.map(([name]) => name).join(', ')}), so the entry point is ambiguous: set "main" or configure the entry point`, 'package.json');
  }
  throw new ArchiveError(`"${pkgPath}" says neither "main" nor "bin", so the app's entry point is unknown: set "main" in package.json or configure the entry point`, 'package.json');
}

/** The release, or the single directory it holds when the archive wrapped the app in one. */
async function findAppDir(releaseDir: string): Promise<string> {
  const entries = await readdir(releaseDir, { withFileTypes: true });
  const only = entries[0];
  if (entries.length === 1 && only?.isDirectory()) return join(releaseDir, only.name);
  return releaseDir;
}

async function readPackageJson(path: string): Promise<PackageJson> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ArchiveError(`the app has no readable "${path}" (${describeError(error)}), so its entry point is unknown: add a package.json with "main", or configure the entry point`, 'package.json');
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as PackageJson;
  } catch (error) {
    throw new ArchiveError(`"${path}" is not valid JSON (${describeError(error)}): fix it, or configure the entry point`, 'package.json');
  }
  throw new ArchiveError(`"${path}" is not a JSON object: fix it, or configure the entry point`, 'package.json');
}

function binEntries(bin: unknown): Array<[string, string]> {
  if (typeof bin === 'string' && bin !== '') return [['(bin)', bin]];
  if (bin === null || typeof bin !== 'object') return [];
  return Object.entries(bin).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[1] !== '');
}

/**
 * `path` when it is a file whose real location is inside the release; a path that leaves it
 * (`../x`, or a link out) is refused rather than looked for elsewhere.
 */
async function existingFile(releaseDir: string, path: string): Promise<string | undefined> {
  const [realRelease, realPath] = await Promise.all([realpath(releaseDir), realpath(path).catch(() => undefined)]);
  if (realPath === undefined) return undefined;
  const inside = relative(realRelease, realPath);
  if (inside === '') return undefined; // the release itself, a directory
  if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw new ArchiveError(`the entry point "${path}" lies outside the release "${releaseDir}": it must be a file inside the app`);
  }
  const stats = await stat(realPath);
  return stats.isFile() ? path : undefined;
}
