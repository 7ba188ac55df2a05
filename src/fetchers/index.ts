export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetcher.js';
