import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checksumFor } from './checksums.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import {
  asRelease,
  checksumFileFor,
  chooseAsset,
  isNewRelease,
  newestPublished,
  signatureFileFor,
  type GitHubAsset,
  type GitHubAssetRule,
  type GitHubRelease,
} from './github-release.js';
import { parseApiUrl, rateLimitEnd } from './github-api.js';
import { HttpSession, firstHeader, positiveMs, type HttpResponse } from './http-session.js';

export type { GitHubAsset, GitHubAssetRule, GitHubRelease } from './github-release.js';

/** Options of {@link GitHubFetcher}. */
export interface GitHubFetcherOptions {
  /** The repository's owner (user or organisation). */
  owner: string;
  /** The repository's name. */
  repo: string;
  /**
   * A token that may read the repository's releases (needed for a private repository; raises the
   * rate limit from 60 to 5000 requests an hour). Default `process.env.GITHUB_TOKEN`. Sent only
   * to the API's origin, never logged.
   */
  token?: string;
  /** Which release asset is the build; default: the only build, else the one named for this platform and architecture. */
  asset?: GitHubAssetRule;
  /** ms between polls; default 300_000 (5 minutes) */
  interval?: number;
  /** also take pre-releases (the newest non-draft release of the last 10); default false: the latest release */
  prerelease?: boolean;
  /** the REST API's root; default `https://api.github.com`, for GitHub Enterprise Server `https://host/api/v3` */
  apiUrl?: string | URL;
  /** take any release whose tag differs from the running one, even an older one; default false */
  allowDowngrade?: boolean;
  /** ms to establish a connection; default 10_000 */
  connectTimeout?: number;
  /** ms for a whole fetch, the download included; default 600_000 */
  timeout?: number;
  /** ms with no bytes arriving before a request counts as hung; default 30_000 */
  idleTimeout?: number;
  /** allow an apiUrl on plain http to a host that is not loopback; default false */
  allowInsecureHTTP?: boolean;
}

const DEFAULT_API_URL = 'https://api.github.com';
const API_VERSION = '2022-11-28';
/** GitHub's limit for requests without a token: 60 an hour per IP address. */
const UNAUTHENTICATED_MIN_INTERVAL = 60_000;
const RELEASE_JSON_LIMIT = 10 * 1024 * 1024;
const CHECKSUM_FILE_LIMIT = 1024 * 1024;
const SIGNATURE_FILE_LIMIT = 64 * 1024;
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const REPO = /^[A-Za-z0-9._-]+$/;

const silentLogger: Logger = { fatal() {}, error() {}, warn() {}, info() {}, debug() {}, child: () => silentLogger };

/**
 * Polls a GitHub repository's releases for a new build. A poll with nothing new costs one
 * conditional request answered 304, which GitHub does not count against the rate limit; the
 * release's ETag is remembered only once a download ended cleanly. The release tag is the
 * version: a release is new when its tag is a greater semver than the running one (any different
 * tag when the tags are not semver, or with `allowDowngrade`). A `checksums.txt`, `SHA256SUMS`
 * or `<asset>.sha256` in the release sets the build's `sha256`; an `<asset>.minisig` sets its
 * `signature`. Assets are downloaded through the API (so private repositories work), and the
 * token never follows the redirect to the storage host.
 */
export class GitHubFetcher implements Fetcher {
  /** `github:owner/repo`, and `@host` for an API other than api.github.com. */
  readonly source: string;
  readonly interval: number;
  readonly #owner: string;
  readonly #repo: string;
  readonly #apiBase: URL;
  readonly #token: string | undefined;
  readonly #rule: GitHubAssetRule | undefined;
  readonly #prerelease: boolean;
  readonly #allowDowngrade: boolean;
  readonly #connectTimeout: number;
  readonly #timeout: number;
  readonly #idleTimeout: number;
  readonly #allowInsecureHTTP: boolean;
  #log: Logger = silentLogger;
  /** The version the master runs, as it said at init. */
  #runningVersion: string | undefined;
  /** The tag of the last release whose asset was downloaded to its end. */
  #handedOverTag: string | undefined;
  /** The ETag of the release answer last dealt with: handed over, or seen to be nothing new. */
  #etag: string | undefined;
  /** No request before this time (epoch ms): GitHub's rate limit said so. */
  #rateLimitedUntil = 0;

  constructor(options: GitHubFetcherOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError("GitHubFetcher takes an options object: new GitHubFetcher({ owner: 'acme', repo: 'app' })");
    }
    const { owner, repo } = options;
    if (typeof owner !== 'string' || !OWNER.test(owner)) {
      throw new ConfigError(`GitHubFetcher owner must be a GitHub user or organisation name (letters, digits, hyphens), got ${JSON.stringify(owner)}`);
    }
    if (typeof repo !== 'string' || !REPO.test(repo) || repo === '.' || repo === '..') {
      throw new ConfigError(`GitHubFetcher repo must be a repository name (letters, digits, '.', '-', '_'), got ${JSON.stringify(repo)}`);
    }
    this.#owner = owner;
    this.#repo = repo;
    this.#allowInsecureHTTP = options.allowInsecureHTTP === true;
    this.#apiBase = parseApiUrl(options.apiUrl ?? DEFAULT_API_URL, this.#allowInsecureHTTP);
    this.source = `github:${owner}/${repo}${this.#apiBase.host === 'api.github.com' ? '' : `@${this.#apiBase.host}`}`;
    const token = options.token ?? process.env.GITHUB_TOKEN;
    if (token !== undefined && (typeof token !== 'string' || /[\s\0]/.test(token))) {
      // The value is not echoed: it is a secret.
      throw new ConfigError('GitHubFetcher token must be a string without spaces or line breaks; check the token option or GITHUB_TOKEN');
    }
    this.#token = token === '' ? undefined : token;
    const rule = options.asset;
    if (rule !== undefined && typeof rule !== 'string' && !(rule instanceof RegExp) && typeof rule !== 'function') {
      throw new ConfigError('GitHubFetcher asset must be a file name, a RegExp or a function (assets) => asset');
    }
    this.#rule = rule;
    this.#prerelease = options.prerelease === true;
    this.#allowDowngrade = options.allowDowngrade === true;
    this.interval = positiveMs('GitHubFetcher', 'interval', options.interval, 300_000);
    this.#connectTimeout = positiveMs('GitHubFetcher', 'connectTimeout', options.connectTimeout, 10_000);
    this.#timeout = positiveMs('GitHubFetcher', 'timeout', options.timeout, 600_000);
    this.#idleTimeout = positiveMs('GitHubFetcher', 'idleTimeout', options.idleTimeout, 30_000);
  }

  /** Keeps the master's logger and the running version; warns when polling without a token would exhaust the rate limit. */
  init(context: FetcherContext): void {
    this.#log = context.log;
    this.#runningVersion = context.runningVersion;
    if (this.#token === undefined && this.interval < UNAUTHENTICATED_MIN_INTERVAL) {
      this.#log.warn(
        { source: this.source, interval: this.interval },
        `GitHub allows 60 requests an hour per IP address without a token, and polling every ${this.interval} ms makes more; ` +
          `set the token option (or GITHUB_TOKEN), or raise interval to ${UNAUTHENTICATED_MIN_INTERVAL} ms or more`,
      );
    }
  }

  async fetch(signal: AbortSignal): Promise<FetchedBuild | undefined> {
    if (this.#rateLimitedUntil !== 0) {
      if (Date.now() < this.#rateLimitedUntil) {
        this.#log.debug({ source: this.source, until: new Date(this.#rateLimitedUntil).toISOString() }, 'GitHub rate limit: poll skipped');
        return undefined;
      }
      this.#rateLimitedUntil = 0;
      this.#log.info({ source: this.source }, 'GitHub rate limit over: polling again');
    }
    const session = await HttpSession.open(signal, {
      source: this.source,
      connectTimeout: this.#connectTimeout,
      timeout: this.#timeout,
      idleTimeout: this.#idleTimeout,
      maxRedirects: 5,
      allowInsecureHTTP: this.#allowInsecureHTTP,
      log: this.#log,
    });
    try {
      return await this.#fetchNewRelease(session);
    } finally {
      session.close();
    }
  }

  async #fetchNewRelease(session: HttpSession): Promise<FetchedBuild | undefined> {
    const path = this.#prerelease ? 'releases?per_page=10' : 'releases/latest';
    const headers: Record<string, string> = { accept: 'application/vnd.github+json' };
    if (this.#etag !== undefined) headers['if-none-match'] = this.#etag;
    const response = await this.#apiGet(session, path, headers);
    if (response.status === 304) {
      await session.discard(response);
      this.#log.debug({ source: this.source }, 'GitHub release unchanged');
      return undefined;
    }
    if (response.status !== 200) throw await this.#failure(session, response, 'the release');
    const etag = firstHeader(response.headers, 'etag');
    const release = await this.#readRelease(session, response);
    if (!release) {
      this.#etag = etag;
      this.#log.info({ source: this.source }, 'GitHub repository has no published release yet');
      return undefined;
    }
    const tag = release.tag_name;
    const running = this.#handedOverTag ?? this.#runningVersion;
    if (!(await isNewRelease(tag, running, this.#allowDowngrade))) {
      this.#etag = etag;
      this.#log.debug({ source: this.source, tag, running }, 'GitHub release is not newer than the running build');
      return undefined;
    }
    const choice = chooseAsset(release, this.#rule);
    if ('problem' in choice) throw new FetchError(this.source, choice.problem);
    const { asset } = choice;
    this.#log.debug({ source: this.source, tag, asset: asset.name, size: asset.size }, 'GitHub release is new');

    const sha256 = await this.#publishedChecksum(session, release, asset);
    const signatureFile = signatureFileFor(release.assets, asset);
    const signature = signatureFile ? (await this.#smallAsset(session, signatureFile, SIGNATURE_FILE_LIMIT)).toString('utf8') : undefined;

    const download = await this.#assetGet(session, asset);
    const stream = session.handOver(download, { bytes: asset.size, from: "the release asset's size" }, (bytes) => {
      this.#etag = etag;
      this.#handedOverTag = tag;
      this.#log.debug({ source: this.source, tag, asset: asset.name, bytes }, 'GitHub asset downloaded');
    });
    return {
      stream,
      version: tag,
      name: asset.name,
      size: asset.size,
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(signature !== undefined ? { signature } : {}),
    };
  }

  /** The release in the answer: the latest, or the newest published one of the list; undefined when the list has none. */
  async #readRelease(session: HttpSession, response: HttpResponse): Promise<GitHubRelease | undefined> {
    const text = (await session.read(response, RELEASE_JSON_LIMIT, 'the release JSON')).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new FetchError(this.source, `${response.where} answered something that is not JSON; check apiUrl points at the GitHub REST API`);
    }
    if (this.#prerelease && !Array.isArray(parsed)) {
      throw new FetchError(this.source, `${response.where} answered something other than a list of releases; check apiUrl points at the GitHub REST API`);
    }
    const candidates: unknown[] = Array.isArray(parsed) && this.#prerelease ? parsed : [parsed];
    const releases: GitHubRelease[] = [];
    for (const candidate of candidates) {
      const release = asRelease(candidate);
      if (typeof release === 'string') throw new FetchError(this.source, `${response.where} answered an unexpected shape (${release}); check apiUrl points at the GitHub REST API`);
      releases.push(release);
    }
    return this.#prerelease ? newestPublished(releases) : releases[0];
  }

  /** The SHA-256 a checksum file of the release gives for the asset; undefined when the release publishes none. */
  async #publishedChecksum(session: HttpSession, release: GitHubRelease, asset: GitHubAsset): Promise<string | undefined> {
    const file = checksumFileFor(release.assets, asset);
    if (!file) return undefined;
    const text = (await this.#smallAsset(session, file, CHECKSUM_FILE_LIMIT)).toString('utf8');
    let sha256: string | undefined;
    try {
      sha256 = checksumFor(text, asset.name, file.name);
    } catch (error) {
      throw new FetchError(this.source, `release ${release.tag_name}: ${describeError(error)}`, { cause: error });
    }
    if (sha256 === undefined) {
      throw new FetchError(
        this.source,
        `release ${release.tag_name} publishes ${file.name}, which does not list ${asset.name}; add the asset's SHA-256 to it (sha256sum output) so the build can be checked`,
      );
    }
    return sha256;
  }

  async #smallAsset(session: HttpSession, asset: GitHubAsset, limit: number): Promise<Buffer> {
    if (asset.size > limit) throw new FetchError(this.source, `release asset ${asset.name} is ${asset.size} bytes, more than the ${limit} a checksum or signature file may have`);
    const response = await this.#assetGet(session, asset);
    return session.read(response, limit, asset.name);
  }

  /** The asset's bytes through the API (which works for private repositories), redirected to the storage host. */
  async #assetGet(session: HttpSession, asset: GitHubAsset): Promise<HttpResponse> {
    const response = await this.#apiGet(session, `releases/assets/${asset.id}`, { accept: 'application/octet-stream' });
    if (response.status !== 200) throw await this.#failure(session, response, `release asset ${asset.name}`);
    return response;
  }

  /** GET `/repos/{owner}/{repo}/{path}`; the token and API headers go to the API's origin only. */
  #apiGet(session: HttpSession, path: string, headers: Record<string, string>): Promise<HttpResponse> {
    const base = this.#apiBase.pathname.replace(/\/+$/, '');
    const url = new URL(`${base}/repos/${this.#owner}/${this.#repo}/${path}`, this.#apiBase);
    const credentials: Record<string, string> = { 'x-github-api-version': API_VERSION };
    if (this.#token !== undefined) credentials.authorization = `Bearer ${this.#token}`;
    return session.get({ url, headers, credentials, credentialOrigin: this.#apiBase.origin });
  }

  /** The FetchError for an unexpected answer; a rate limit also pauses polling until GitHub allows it. */
  async #failure(session: HttpSession, response: HttpResponse, what: string): Promise<FetchError> {
    await session.discard(response);
    const until = rateLimitEnd(response);
    if (until !== undefined) {
      const when = new Date(until).toISOString();
      this.#rateLimitedUntil = until;
      const advice = this.#token === undefined ? '; set a token (or GITHUB_TOKEN) for a higher limit' : '; raise interval if this repeats';
      this.#log.warn({ source: this.source, until: when, status: response.status }, `GitHub rate limit reached: no request until ${when}`);
      return new FetchError(this.source, `GitHub rate limit reached fetching ${what} (HTTP ${response.status}); the next request is made after ${when}${advice}`);
    }
    const hint = response.url.origin === this.#apiBase.origin
      ? this.#hint(response.status)
      : 'the storage host GitHub redirected to refused the download (its signed link may have expired); the fetch is retried later';
    return new FetchError(this.source, `fetch of ${what} from ${response.where} answered HTTP ${response.status}; ${hint}`);
  }

  #hint(status: number): string {
    const repository = `${this.#owner}/${this.#repo}`;
    if (status === 401) return 'the token was refused (expired, revoked or mistyped); set a valid token or GITHUB_TOKEN';
    if (status === 403) return `the token may not read ${repository}'s releases; give it read access to the repository's contents`;
    if (status === 404) {
      const access = this.#token === undefined ? 'it is private and no token was given (set token or GITHUB_TOKEN)' : 'the token cannot see it';
      const kind = this.#prerelease ? 'it' : 'it has no published release (pre-releases count only with prerelease: true), or it';
      return `check owner and repo: ${kind} does not exist, or ${access}`;
    }
    if (status >= 500) return 'GitHub failed; the fetch is retried later';
    return 'check owner, repo and apiUrl';
  }
}
