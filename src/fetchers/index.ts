export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetcher.js';
export { FileFetcher, type FileFetcherOptions } from './file.js';
export { HTTPFetcher, type HTTPFetcherOptions } from './http.js';
export { GitHubFetcher, type GitHubFetcherOptions, type GitHubAsset, type GitHubAssetRule, type GitHubRelease } from './github.js';
export { checksumFor, parseChecksums, type ChecksumEntry } from './checksums.js';
export { S3Fetcher, type S3FetcherOptions } from './s3.js';
