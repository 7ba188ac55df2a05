export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetcher.js';
export { FileFetcher, type FileFetcherOptions } from './file.js';
export { HTTPFetcher, type HTTPFetcherOptions } from './http.js';
