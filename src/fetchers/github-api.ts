import { ConfigError } from '../errors.js';
import { redactURL } from './http-messages.js';
import { firstHeader, schemeProblem, type HttpResponse } from './http-session.js';

/** GitHub's advice when a secondary rate limit says nothing about when to retry. */
const SECONDARY_LIMIT_WAIT_MS = 60_000;
/** A reset further away than this is a broken header, not a plan. */
const MAX_RATE_LIMIT_WAIT_MS = 24 * 60 * 60 * 1000;

/**
 * When a rate-limited answer says requests may resume (epoch ms); undefined when it is not a
 * rate limit. `Retry-After` wins, then `X-RateLimit-Reset` with no requests remaining; a 429 or a
 * secondary limit that says neither waits a minute, as GitHub advises.
 */
export function rateLimitEnd(response: HttpResponse): number | undefined {
  if (response.status !== 403 && response.status !== 429) return undefined;
  const now = Date.now();
  const clamp = (at: number) => Math.min(Math.max(at, now + 1000), now + MAX_RATE_LIMIT_WAIT_MS);
  const retryAfter = firstHeader(response.headers, 'retry-after')?.trim();
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter)) return clamp(now + Number(retryAfter) * 1000);
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return clamp(date);
  }
  if (firstHeader(response.headers, 'x-ratelimit-remaining')?.trim() === '0') {
    const reset = firstHeader(response.headers, 'x-ratelimit-reset')?.trim();
    return clamp(reset !== undefined && /^\d+$/.test(reset) ? Number(reset) * 1000 : now + SECONDARY_LIMIT_WAIT_MS);
  }
  return response.status === 429 ? clamp(now + SECONDARY_LIMIT_WAIT_MS) : undefined;
}

/** The API root from the apiUrl option: absolute, https (or loopback http), without userinfo, query or fragment. */
export function parseApiUrl(input: string | URL, allowInsecureHTTP: boolean): URL {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new ConfigError('GitHubFetcher apiUrl is not an absolute URL; give one such as https://api.github.com or https://github.example.com/api/v3');
  }
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  const problem = schemeProblem(url, allowInsecureHTTP);
  if (problem) throw new ConfigError(`GitHubFetcher apiUrl ${redactURL(url)}: ${problem}`);
  return url;
}
