import { readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

/** How many installed builds' versions are remembered. */
const REMEMBERED = 10;

/**
 * The versions of builds this master installed, kept beside the installed build
 * (`app.versions.json`), so that after the master itself restarts it still knows the running
 * build's version: a release source (a GitHub tag) then does not download the running build again.
 * Keyed by build id, so a build put back by hand or by a rollback finds its own version.
 */
export class InstalledVersions {
  private readonly path: string;

  constructor(installedBuild: string) {
    const ext = extname(installedBuild);
    this.path = join(dirname(installedBuild), `${basename(installedBuild, ext)}.versions.json`);
  }

  async versionOf(buildId: string): Promise<string | undefined> {
    const entries = await this.read();
    return entries.find((entry) => entry.buildId === buildId)?.version;
  }

  /** Remembers `version` for `buildId`; a failure to write costs only that memory, never the upgrade. */
  async remember(buildId: string, version: string | undefined): Promise<void> {
    if (version === undefined) return;
    const entries = [{ buildId, version }, ...(await this.read()).filter((entry) => entry.buildId !== buildId)].slice(0, REMEMBERED);
    const temporary = `${this.path}.tmp`;
    try {
      await writeFile(temporary, `${JSON.stringify(entries, null, 2)}\n`);
      await rename(temporary, this.path);
    } catch {
      // read-only directory, disk full: the next start just does not know the version
    }
  }

  private async read(): Promise<Array<{ buildId: string; version: string }>> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.path, 'utf8'));
      return Array.isArray(parsed) ? parsed.filter((entry) => typeof entry?.buildId === 'string' && typeof entry?.version === 'string') : [];
    } catch {
      return [];
    }
  }
}
