import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { chooseAsset, type GitHubRelease } from '../src/fetchers/github-release.js';
import { GitHubFetcher, type GitHubFetcherOptions } from '../src/fetchers/github.js';
import type { Logger } from '../src/logger.js';
import { expectBuild, readAll, rejection, within, seededBytes as bytesOf } from './helpers/fetch-results.js';

import { memoryLogger, type LoggedLine } from './helpers/memory-logger.js';
import { FakeGitHub, OWNER, REPO, release, withChecksums } from './helpers/fake-github.js';

const TOKEN = 'ghp_s3cr3tTokenValue0123456789abcdef';

const cleanups: Array<() => void | Promise<void>> = [];
let savedToken: string | undefined;
beforeEach(() => {
  // The machine's own token must not leak into tests that mean "no token".
  savedToken = process.env.GITHUB_TOKEN;
  delete process.env.GITHUB_TOKEN;
});
afterEach(async () => {
  if (savedToken === undefined) delete process.env.GITHUB_TOKEN;
  else process.env.GITHUB_TOKEN = savedToken;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

const signal = () => new AbortController().signal;
const API_PATH = `/repos/${OWNER}/${REPO}/releases/latest`;

describe('GitHubFetcher', () => {
  it('fetches a new release: the bytes, the tag as version, the SHA-256 from checksums.txt', async () => {
    const github = await FakeGitHub.start(cleanups);
    const build = { name: 'app-linux-x64.tar.gz', bytes: bytesOf(200_000, 1) };
    github.releases = [release('v1.2.0', withChecksums([build]))];
    const fetcher = github.fetcher();
    expect(fetcher.source).toBe(`github:${OWNER}/${REPO}@${new URL(github.api.origin).host}`);

    const fetched = expectBuild(await fetcher.fetch(signal()));
    expect(fetched).toMatchObject({ version: 'v1.2.0', name: build.name, size: build.bytes.length, sha256: sha256(build.bytes) });
    expect(fetched.signature).toBeUndefined();
    expect((await readAll(fetched.stream)).equals(build.bytes)).toBe(true);

    const [releaseRequest] = github.api.requests;
    expect(releaseRequest?.url).toBe(API_PATH);
    expect(releaseRequest?.headers).toMatchObject({ accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' });
    expect(releaseRequest?.headers['user-agent']).toBeTruthy();
    expect(releaseRequest?.headers.authorization).toBeUndefined();
    // checksums.txt, then the build, each through the asset endpoint and the storage host
    expect(github.assetRequests().map((request) => request.headers.accept)).toEqual(['application/octet-stream', 'application/octet-stream']);
    expect(github.storage.requests).toHaveLength(2);
    expect(github.storage.requests.every((request) => request.headers['x-github-api-version'] === undefined)).toBe(true);
  });

  it('asks with the ETag: an unchanged release is a 304, resolves undefined and downloads nothing', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.releases = [release('v1.0.0', [{ name: 'app.mjs', bytes: Buffer.from('export default 1;\n') }])];
    const fetcher = github.fetcher();
    await readAll(expectBuild(await fetcher.fetch(signal())).stream);
    expect(github.etags).toHaveLength(1);
    const before = { api: github.api.requests.length, storage: github.storage.requests.length };

    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(github.api.requests).toHaveLength(before.api + 1);
    const poll = github.api.requests[before.api];
    expect(poll?.url).toBe(API_PATH);
    expect(poll?.headers['if-none-match']).toBe(github.etags[0]);
    expect(github.etags).toHaveLength(1); // answered 304
    expect(github.storage.requests).toHaveLength(before.storage);
  });

  it('does not download the same tag again when only the release JSON changed (download counts)', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.countDownloads = true;
    github.releases = [release('v1.0.0', [{ name: 'app.mjs', bytes: Buffer.from('one') }])];
    const fetcher = github.fetcher();
    await readAll(expectBuild(await fetcher.fetch(signal())).stream);
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(github.storage.requests).toHaveLength(1);
    expect(github.api.requests.at(-1)?.headers['if-none-match']).toBeDefined();
  });

  it('forget() drops the ETag and the tag handed over: the next fetch downloads the same release again', async () => {
    const github = await FakeGitHub.start(cleanups);
    const bytes = bytesOf(20_000, 9);
    github.releases = [release('v1.0.0', [{ name: 'app.mjs', bytes }])];
    const fetcher = github.fetcher();
    await readAll(expectBuild(await fetcher.fetch(signal())).stream);
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(github.storage.requests).toHaveLength(1);

    fetcher.forget();
    const again = expectBuild(await fetcher.fetch(signal()));
    expect(again.version).toBe('v1.0.0');
    expect(github.api.requests.filter((request) => request.url === API_PATH).at(-1)?.headers['if-none-match']).toBeUndefined();
    expect(sha256(await readAll(again.stream))).toBe(sha256(bytes));
    expect(github.storage.requests).toHaveLength(2);
  });

  it('remembers the ETag only once the asset was read to its end', async () => {
    const github = await FakeGitHub.start(cleanups);
    const bytes = bytesOf(3_000_000, 2);
    github.releases = [release('v1.0.0', [{ name: 'app.bin', bytes }])];
    const fetcher = github.fetcher();
    const dropped = expectBuild(await fetcher.fetch(signal()));
    await within(new Promise((resolve) => dropped.stream.once('data', resolve)), 10_000, 'a first chunk');
    dropped.stream.destroy();

    const again = expectBuild(await fetcher.fetch(signal()));
    const releaseRequests = github.api.requests.filter((request) => request.url === API_PATH);
    expect(releaseRequests[1]?.headers['if-none-match']).toBeUndefined();
    expect(sha256(await readAll(again.stream))).toBe(sha256(bytes));
  });

  it('waits out a 403 rate limit until X-RateLimit-Reset: no request before it, one after', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.releases = [release('v1.0.0', [{ name: 'app.mjs', bytes: Buffer.from('x') }])];
    const lines: LoggedLine[] = [];
    const fetcher = github.fetcher({}, memoryLogger(lines));
    const reset = Math.ceil(Date.now() / 1000) + 2;
    github.limited = { status: 403, headers: { 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset), 'x-ratelimit-resource': 'core' } };

    const error = await rejection(fetcher.fetch(signal()));
    const resetISO = new Date(reset * 1000).toISOString();
    expect(error.message).toContain(`rate limit reached`);
    expect(error.message).toContain(`after ${resetISO}`);
    expect(error.message).toMatch(/set a token/);
    expect(lines.filter((line) => line.level === 'warn' && line.text.includes(resetISO))).toHaveLength(1);
    github.limited = undefined;

    const requestsAtLimit = github.api.requests.length;
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(github.api.requests).toHaveLength(requestsAtLimit);
    expect(lines.some((line) => line.level === 'debug' && /rate limit/.test(line.msg))).toBe(true);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);

    await waitUntil(reset * 1000);
    const build = expectBuild(await fetcher.fetch(signal()));
    expect(github.api.requests.length).toBeGreaterThan(requestsAtLimit);
    expect((await readAll(build.stream)).toString()).toBe('x');
  });

  it('waits out a 429 for its Retry-After seconds', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.releases = [release('v1.0.0', [{ name: 'app.mjs', bytes: Buffer.from('y') }])];
    const fetcher = github.fetcher({ token: TOKEN });
    github.limited = { status: 429, headers: { 'retry-after': '1' } };
    const limitedAt = Date.now();
    const error = await rejection(fetcher.fetch(signal()));
    expect(error.message).toMatch(/rate limit reached .*HTTP 429.*the next request is made after/);
    github.limited = undefined;
    const requestsAtLimit = github.api.requests.length;
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(github.api.requests).toHaveLength(requestsAtLimit);

    await waitUntil(limitedAt + 1000);
    expect(await fetcher.fetch(signal())).toBeDefined();
    expect(github.api.requests.length).toBeGreaterThan(requestsAtLimit);
  });

  it('sends the token to the API only, never to the storage host, and never logs it or puts it in a message', async () => {
    process.env.GITHUB_TOKEN = TOKEN; // the default source of the token
    const github = await FakeGitHub.start(cleanups);
    github.requiredToken = TOKEN;
    const build = { name: 'app-linux-x64.tar.gz', bytes: bytesOf(50_000, 3) };
    github.releases = [release('v2.0.0', withChecksums([build]))];
    const lines: LoggedLine[] = [];
    const fetcher = github.fetcher({ interval: 1000 }, memoryLogger(lines));

    const fetched = expectBuild(await fetcher.fetch(signal()));
    expect((await readAll(fetched.stream)).equals(build.bytes)).toBe(true);
    expect(github.api.requests.length).toBeGreaterThanOrEqual(3);
    for (const request of github.api.requests) expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(github.storage.requests).toHaveLength(2);
    for (const request of github.storage.requests) expect(request.headers.authorization).toBeUndefined();

    // failures with the token in play: a 404, a rate limit, a checksum file that lacks the asset
    const messages: string[] = [fetcher.source];
    github.releases = [release('v2.1.0', [build, { name: 'checksums.txt', bytes: Buffer.from(`${'c'.repeat(64)}  other.tar.gz\n`) }])];
    messages.push((await rejection(fetcher.fetch(signal()))).message);
    github.limited = { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000)) } };
    messages.push((await rejection(fetcher.fetch(signal()))).message);
    github.limited = undefined;
    const wrongToken = github.fetcher({ token: `${TOKEN}-revoked` }, memoryLogger(lines));
    messages.push((await rejection(wrongToken.fetch(signal()))).message);

    expect(messages.some((message) => /does not list app-linux-x64\.tar\.gz/.test(message))).toBe(true);
    expect(messages.some((message) => /HTTP 404/.test(message))).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    for (const text of [...messages, ...lines.map((line) => line.text)]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('s3cr3t');
      expect(text).not.toContain('X-Amz-Signature');
    }
    expect(lines.some((line) => line.level === 'warn' && /60 requests an hour/.test(line.msg))).toBe(false);
  });

  it('refuses a release whose checksums file does not list the asset, downloading nothing more', async () => {
    const github = await FakeGitHub.start(cleanups);
    const build = { name: 'app.mjs', bytes: Buffer.from('export default 2;\n') };
    github.releases = [release('v1.0.0', [build, { name: 'SHA256SUMS', bytes: Buffer.from(`${sha256('other')}  other.mjs\n`) }])];
    const error = await rejection(github.fetcher().fetch(signal()));
    expect(error.message).toMatch(/release v1\.0\.0 publishes SHA256SUMS, which does not list app\.mjs/);
    expect(github.assetRequests()).toHaveLength(1); // SHA256SUMS only
  });

  it('hands over the published checksum as it is (the pipeline compares it), from checksums.txt or <asset>.sha256', async () => {
    const github = await FakeGitHub.start(cleanups);
    const build = { name: 'app.mjs', bytes: Buffer.from('export default 3;\n') };
    const published = 'f'.repeat(64); // not the build's hash: the upgrade pipeline is what refuses it
    github.releases = [release('v1.0.0', [build, { name: 'checksums.txt', bytes: Buffer.from(`${published} *./app.mjs\n`) }])];
    const fetched = expectBuild(await github.fetcher().fetch(signal()));
    expect(fetched.sha256).toBe(published);
    fetched.stream.destroy();

    github.releases = [release('v1.0.1', [build, { name: 'app.mjs.sha256', bytes: Buffer.from(`${sha256(build.bytes)}\n`) }, { name: 'app.mjs.minisig', bytes: Buffer.from('untrusted comment: sig\nRUQ...\n') }])];
    const second = expectBuild(await github.fetcher().fetch(signal()));
    expect(second).toMatchObject({ version: 'v1.0.1', name: 'app.mjs', sha256: sha256(build.bytes), signature: 'untrusted comment: sig\nRUQ...\n' });
    expect((await readAll(second.stream)).equals(build.bytes)).toBe(true);
  });

  it('refuses to guess between two builds for this machine, listing both; a rule picks one', async () => {
    const github = await FakeGitHub.start(cleanups);
    const glibc = { name: `app-${process.platform}-${process.arch}.tar.gz`, bytes: Buffer.from('glibc') };
    const musl = { name: `app-${process.platform}-${process.arch}-musl.tar.gz`, bytes: Buffer.from('musl') };
    github.releases = [release('v1.0.0', withChecksums([glibc, musl]))];
    const error = await rejection(github.fetcher().fetch(signal()));
    expect(error.message).toContain(glibc.name);
    expect(error.message).toContain(musl.name);
    expect(error.message).toMatch(/set the asset option/);
    expect(github.storage.requests).toHaveLength(0);

    for (const rule of [musl.name, /-musl\.tar\.gz$/, (assets: readonly { name: string }[]) => assets.find((asset) => asset.name.includes('musl'))]) {
      const fetched = expectBuild(await github.fetcher({ asset: rule as GitHubFetcherOptions['asset'] }).fetch(signal()));
      expect(fetched.name).toBe(musl.name);
      expect((await readAll(fetched.stream)).toString()).toBe('musl');
    }
    const none = await rejection(github.fetcher({ asset: 'app-freebsd.tar.gz' }).fetch(signal()));
    expect(none.message).toMatch(/no asset named "app-freebsd\.tar\.gz"; its assets: .*checksums\.txt/);
  });

  it.runIf(process.platform === 'linux' && process.arch === 'x64')('picks the linux x64 build by default on this machine', async () => {
    const github = await FakeGitHub.start(cleanups);
    const assets = [
      { name: 'app-darwin-arm64.tar.gz', bytes: Buffer.from('mac') },
      { name: 'app-linux-amd64.tar.gz', bytes: Buffer.from('linux') },
      { name: 'app-linux-arm64.tar.gz', bytes: Buffer.from('pi') },
      { name: 'app-windows-x86_64.zip', bytes: Buffer.from('win') },
    ];
    github.releases = [release('v1.0.0', withChecksums(assets))];
    const fetched = expectBuild(await github.fetcher().fetch(signal()));
    expect(fetched.name).toBe('app-linux-amd64.tar.gz');
    expect((await readAll(fetched.stream)).toString()).toBe('linux');
  });

  it('matches platform and architecture words for other machines, and lists what there is when none fits', () => {
    const asset = (id: number, name: string) => ({ id, name, size: 1 });
    const candidates: GitHubRelease = {
      tag_name: 'v1',
      draft: false,
      prerelease: false,
      assets: [asset(1, 'tool_Darwin_arm64.tar.gz'), asset(2, 'tool_Linux_x86_64.tar.gz'), asset(3, 'tool-win-x64.zip'), asset(4, 'tool_Linux_aarch64.tar.gz'), asset(5, 'tool.tar.gz.asc')],
    };
    expect(chooseAsset(candidates, undefined, 'darwin', 'arm64')).toEqual({ asset: asset(1, 'tool_Darwin_arm64.tar.gz') });
    expect(chooseAsset(candidates, undefined, 'linux', 'arm64')).toEqual({ asset: asset(4, 'tool_Linux_aarch64.tar.gz') });
    expect(chooseAsset(candidates, undefined, 'win32', 'x64')).toEqual({ asset: asset(3, 'tool-win-x64.zip') });
    const none = chooseAsset(candidates, undefined, 'freebsd', 'x64');
    expect(none).toEqual({ problem: expect.stringMatching(/no asset for this machine \(freebsd x64\) among tool_Darwin_arm64\.tar\.gz, .*tool_Linux_aarch64\.tar\.gz; set the asset option/) as unknown });
    // one build beside its side files is the build, whatever its name
    expect(chooseAsset({ ...candidates, assets: [asset(6, 'server.mjs'), asset(7, 'server.mjs.minisig'), asset(8, 'SHA256SUMS')] }, undefined, 'sunos', 'ppc')).toEqual({ asset: asset(6, 'server.mjs') });
  });

  it('takes the newest non-draft release, pre-releases included, only with prerelease: true', async () => {
    const github = await FakeGitHub.start(cleanups);
    const asset = (text: string) => [{ name: 'app.mjs', bytes: Buffer.from(text) }];
    github.releases = [
      release('v3.0.0', asset('draft'), { draft: true, publishedAt: '2026-03-01T00:00:00Z' }),
      release('v2.1.0-beta.1', asset('beta'), { prerelease: true, publishedAt: '2026-02-01T00:00:00Z' }),
      release('v2.0.0', asset('stable'), { publishedAt: '2026-01-01T00:00:00Z' }),
    ];
    const stable = expectBuild(await github.fetcher({}, undefined, 'v1.0.0').fetch(signal()));
    expect(stable.version).toBe('v2.0.0');
    expect((await readAll(stable.stream)).toString()).toBe('stable');

    const beta = expectBuild(await github.fetcher({ prerelease: true }, undefined, 'v2.0.0').fetch(signal()));
    expect(beta.version).toBe('v2.1.0-beta.1');
    expect((await readAll(beta.stream)).toString()).toBe('beta');
    expect(github.api.requests.some((request) => request.url === `/repos/${OWNER}/${REPO}/releases?per_page=10`)).toBe(true);
  });

  it('refuses a release older than or equal to the running version unless allowDowngrade', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.releases = [release('v1.9.0', [{ name: 'app.mjs', bytes: Buffer.from('old') }])];
    const lines: LoggedLine[] = [];
    expect(await github.fetcher({}, memoryLogger(lines), 'v2.0.0').fetch(signal())).toBeUndefined();
    expect(await github.fetcher({}, memoryLogger(lines), '1.9.0').fetch(signal())).toBeUndefined();
    expect(github.assetRequests()).toHaveLength(0);
    expect(lines.some((line) => line.level === 'debug' && /not newer/.test(line.msg))).toBe(true);

    const downgrade = expectBuild(await github.fetcher({ allowDowngrade: true }, undefined, 'v2.0.0').fetch(signal()));
    expect(downgrade.version).toBe('v1.9.0');
    expect((await readAll(downgrade.stream)).toString()).toBe('old');
    expect(await github.fetcher({ allowDowngrade: true }, undefined, 'v1.9.0').fetch(signal())).toBeUndefined();
  });

  it('counts any different tag as new when the tags are not semver', async () => {
    const github = await FakeGitHub.start(cleanups);
    github.releases = [release('nightly-2026-01-01', [{ name: 'app.mjs', bytes: Buffer.from('n') }])];
    expect(await github.fetcher({}, undefined, 'nightly-2026-01-01').fetch(signal())).toBeUndefined();
    expect(expectBuild(await github.fetcher({}, undefined, 'nightly-2026-01-02').fetch(signal())).version).toBe('nightly-2026-01-01');
  });

  it('warns at init when polling without a token would pass 60 requests an hour, naming the interval and the limit', () => {
    const warnings = (options: Partial<GitHubFetcherOptions>) => {
      const lines: LoggedLine[] = [];
      new GitHubFetcher({ owner: OWNER, repo: REPO, ...options }).init({ runningId: '0'.repeat(64), binPath: '/nonexistent/app', log: memoryLogger(lines) });
      return lines.filter((line) => line.level === 'warn');
    };
    const [warning, ...rest] = warnings({ interval: 30_000 });
    expect(rest).toHaveLength(0);
    expect(warning?.msg).toMatch(/60 requests an hour.*every 30000 ms.*set the token option \(or GITHUB_TOKEN\), or raise interval/);
    expect(warnings({ interval: 60_000 })).toHaveLength(0);
    expect(warnings({ interval: 30_000, token: TOKEN })).toHaveLength(0);
    expect(warnings({})).toHaveLength(0); // the default interval, 5 minutes
  });

  it('rejects bad options with ConfigErrors that never echo the token', () => {
    const make = (options: Partial<GitHubFetcherOptions>) => () => new GitHubFetcher({ owner: OWNER, repo: REPO, ...options });
    expect(make({ owner: 'acme/evil' })).toThrow(ConfigError);
    expect(make({ repo: '..' })).toThrow(/repo must be a repository name/);
    expect(make({ apiUrl: 'not a url' })).toThrow(/apiUrl is not an absolute URL/);
    expect(make({ apiUrl: 'http://github.example.com/api/v3' })).toThrow(/allowInsecureHTTP/);
    expect(make({ interval: 0 })).toThrow(/interval must be a number of milliseconds/);
    expect(make({ token: `${TOKEN}\n` })).toThrow(/token must be a string without spaces or line breaks/);
    try {
      make({ token: `${TOKEN} x` })();
    } catch (error) {
      expect((error as Error).message).not.toContain(TOKEN);
    }
    expect(new GitHubFetcher({ owner: OWNER, repo: REPO }).source).toBe('github:acme/app');
    expect(new GitHubFetcher({ owner: OWNER, repo: REPO, apiUrl: 'https://ghe.example.com/api/v3/' }).source).toBe('github:acme/app@ghe.example.com');
  });
});

/** Resolves once the clock has passed `epochMs`; bounded, and checked often rather than slept through. */
async function waitUntil(epochMs: number): Promise<void> {
  await within(
    (async () => {
      while (Date.now() <= epochMs) await new Promise((resolve) => setTimeout(resolve, 50));
    })(),
    Math.max(0, epochMs - Date.now()) + 5_000,
    `the clock passing ${new Date(epochMs).toISOString()}`,
  );
}
