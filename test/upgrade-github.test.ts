import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { FakeGitHub, OWNER, REPO, release, withChecksums } from './helpers/fake-github.js';
import { get, startLoad } from './helpers/load.js';
import { cleanupAll } from './helpers/processes.js';
import { startWatching, upgradeEnded } from './helpers/upgrades.js';

const TOKEN = 'ghp_integrationTokenValue0123456789abc';
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  await cleanupAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('self-upgrade from a GitHub release', () => {
  it('installs a new release of a private repository under load with no failed request, keeps the token off the storage host and out of the logs, and rejects a release whose checksum does not match', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.requiredToken = TOKEN;
    const fetcher = `new GitHubFetcher({ owner: ${JSON.stringify(OWNER)}, repo: ${JSON.stringify(REPO)}, apiUrl: ${JSON.stringify(github.api.origin)}, token: ${JSON.stringify(TOKEN)}, interval: 200 })`;
    const options = (more: AppOptions): AppOptions => ({ readyTimeout: 3000, ...more, fetcher });
    const app = new TestApp(options({}));
    github.releases = [release('v1.0.0', withChecksums([{ name: 'app.mjs', bytes: readFileSync(app.path) }]))];
    const { master, port } = await startWatching(app);
    expect((await upgradeEnded(master)).msg).toBe('upgrade skipped');
    const load = startLoad({ port }, { connections: 10 });
    await load.flowing();

    const next = Buffer.from(appSource(options({ reply: 'Hello v1.1.0' })));
    github.releases = [release('v1.1.0', withChecksums([{ name: 'app.mjs', bytes: next }])), ...github.releases];
    const done = await upgradeEnded(master, 2);
    expect(done).toMatchObject({ msg: 'upgrade done', version: 'v1.1.0', buildId: sha256(next) });
    await load.flowing();
    expect((await get({ port })).body).toBe('Hello v1.1.0');

    // The published checksums file says one thing, the asset is another.
    const tampered = Buffer.from(appSource(options({ reply: 'tampered v1.2.0' })));
    const published = withChecksums([{ name: 'app.mjs', bytes: Buffer.from('what was really released') }]);
    github.releases = [release('v1.2.0', [{ name: 'app.mjs', bytes: tampered }, published[1]!]), ...github.releases];
    const rejected = await upgradeEnded(master, 3);
    expect(rejected.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(rejected.reason)).toMatch(/checksum mismatch/);
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello v1.1.0');

    const apiWithToken = github.api.requests.filter((request) => request.headers.authorization === `Bearer ${TOKEN}`);
    expect(apiWithToken.length).toBeGreaterThan(0);
    expect(github.storage.requests.length).toBeGreaterThan(0);
    expect(github.storage.requests.every((request) => request.headers.authorization === undefined)).toBe(true);
    const everything = JSON.stringify([...master.logs, ...master.otherOutput]);
    expect(everything).not.toContain(TOKEN);
  });
});
