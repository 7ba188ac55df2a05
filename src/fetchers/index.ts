export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetcher.js';
export { FileFetcher, type FileFetcherOptions } from './file.js';
export { HTTPFetcher, type HTTPFetcherOptions } from './http.js';
export { GitHubFetcher, type GitHubFetcherOptions, type GitHubAsset, type GitHubAssetRule, type GitHubRelease } from './github.js';
export { checksumFor, parseChecksums, type ChecksumEntry } from './checksums.js';
