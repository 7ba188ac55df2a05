import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GitHubFetcher, type GitHubFetcherOptions } from '../../src/fetchers/github.js';
import type { Logger } from '../../src/logger.js';
import { startServer, type TestServer } from './http-server.js';
import { memoryLogger } from './memory-logger.js';

export const OWNER = 'acme';
export const REPO = 'app';

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

export interface FakeAsset {
  name: string;
  bytes: Buffer;
}

export interface FakeRelease {
  tag: string;
  prerelease?: boolean;
  draft?: boolean;
  publishedAt: string;
  assets: FakeAsset[];
}

/**
 * The parts of GitHub's REST API the fetcher uses, as documented: release JSON, ETags and 304s,
 * rate-limit answers, and the asset endpoint redirecting to a storage host on another origin.
 */
export class FakeGitHub {
  /** Newest first, as GitHub lists them. */
  releases: FakeRelease[] = [];
  /** When set, every API request answers this. */
  limited: { status: number; headers: Record<string, string> } | undefined;
  /** A token the API requires (404 without it, as GitHub answers for a private repository). */
  requiredToken: string | undefined;
  /** Whether downloads bump `download_count`, which changes the release's ETag, as on GitHub. */
  countDownloads = false;
  /** The ETag of every 200 release answer, in order. */
  readonly etags: string[] = [];
  private readonly ids = new Map<string, { id: number; bytes: Buffer; downloads: number }>();

  constructor(
    readonly api: TestServer,
    readonly storage: TestServer,
  ) {}

  /** Starts the API and the storage host; `cleanups` gets what stops them. */
  static async start(cleanups: Array<() => void | Promise<void>>): Promise<FakeGitHub> {
    let github: FakeGitHub | undefined;
    const storage = await startServer(cleanups, (req, res) => github!.serveStorage(req, res));
    const api = await startServer(cleanups, (req, res) => github!.serveApi(req, res));
    github = new FakeGitHub(api, storage);
    return github;
  }

  fetcher(options: Partial<GitHubFetcherOptions> = {}, log: Logger = memoryLogger(), runningVersion?: string): GitHubFetcher {
    const fetcher = new GitHubFetcher({ owner: OWNER, repo: REPO, apiUrl: this.api.origin, ...options });
    fetcher.init({ runningId: '0'.repeat(64), runningVersion, binPath: '/nonexistent/app', log });
    return fetcher;
  }

  /** API requests for asset bytes (`/releases/assets/:id`). */
  assetRequests(): TestServer['requests'] {
    return this.api.requests.filter((request) => request.url.includes('/releases/assets/'));
  }

  private assetId(release: FakeRelease, asset: FakeAsset): number {
    const key = `${release.tag}/${asset.name}`;
    let entry = this.ids.get(key);
    if (!entry) {
      entry = { id: 1000 + this.ids.size, bytes: asset.bytes, downloads: 0 };
      this.ids.set(key, entry);
    }
    entry.bytes = asset.bytes;
    return entry.id;
  }

  private releaseJson(release: FakeRelease): object {
    const base = `${this.api.origin}/repos/${OWNER}/${REPO}`;
    return {
      url: `${base}/releases/${release.tag}`,
      id: 1,
      tag_name: release.tag,
      name: release.tag,
      draft: release.draft === true,
      prerelease: release.prerelease === true,
      created_at: release.publishedAt,
      published_at: release.draft ? null : release.publishedAt,
      assets: release.assets.map((asset) => {
        const id = this.assetId(release, asset);
        return {
          url: `${base}/releases/assets/${id}`,
          browser_download_url: `https://github.com/${OWNER}/${REPO}/releases/download/${release.tag}/${asset.name}`,
          id,
          name: asset.name,
          label: '',
          state: 'uploaded',
          content_type: 'application/octet-stream',
          size: asset.bytes.length,
          download_count: this.countDownloads ? [...this.ids.values()].find((entry) => entry.id === id)!.downloads : 0,
        };
      }),
    };
  }

  private serveApi(req: IncomingMessage, res: ServerResponse): void {
    if (this.limited) return void res.writeHead(this.limited.status, { 'content-type': 'application/json', ...this.limited.headers }).end('{"message":"API rate limit exceeded"}');
    if (this.requiredToken !== undefined && req.headers.authorization !== `Bearer ${this.requiredToken}`) {
      return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not Found"}');
    }
    const url = new URL(req.url ?? '/', this.api.origin);
    const prefix = `/repos/${OWNER}/${REPO}/releases`;
    const asset = new RegExp(`^${prefix}/assets/(\\d+)$`).exec(url.pathname);
    if (asset) {
      if (req.headers.accept !== 'application/octet-stream') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"asset":"metadata"}');
      return void res.writeHead(302, { location: `${this.storage.origin}/objects/${asset[1]}?X-Amz-Signature=signed-${asset[1]}` }).end();
    }
    let body: unknown;
    if (url.pathname === `${prefix}/latest`) {
      const latest = this.releases.find((release) => !release.draft && !release.prerelease);
      if (!latest) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not Found"}');
      body = this.releaseJson(latest);
    } else if (url.pathname === prefix) {
      body = this.releases.slice(0, Number(url.searchParams.get('per_page') ?? 30)).map((release) => this.releaseJson(release));
    } else {
      return void res.writeHead(404).end('{"message":"Not Found"}');
    }
    const json = JSON.stringify(body);
    const etag = `W/"${sha256(json)}"`;
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
    this.etags.push(etag);
    res.writeHead(200, { etag, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json);
  }

  private serveStorage(req: IncomingMessage, res: ServerResponse): void {
    const id = Number(/^\/objects\/(\d+)\?/.exec(req.url ?? '')?.[1]);
    const entry = [...this.ids.values()].find((candidate) => candidate.id === id);
    if (!entry) return void res.writeHead(404).end();
    entry.downloads++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': entry.bytes.length }).end(entry.bytes);
  }
}

export function release(tag: string, assets: FakeAsset[], extra: Partial<FakeRelease> = {}): FakeRelease {
  return { tag, publishedAt: '2026-01-01T00:00:00Z', assets, ...extra };
}

export function withChecksums(assets: FakeAsset[]): FakeAsset[] {
  const lines = assets.map((asset) => `${sha256(asset.bytes)}  ${asset.name}\n`).join('');
  return [...assets, { name: 'checksums.txt', bytes: Buffer.from(lines) }];
}

