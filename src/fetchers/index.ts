export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetcher.js';
export { FileFetcher, type FileFetcherOptions } from './file.js';
