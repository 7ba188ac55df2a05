export { run, restart } from './run.js';
export type { Config, State, Program, ListenerHandle } from './config.js';
export type { Logger } from './logger.js';
export type { RestartOutcome } from './master/generation.js';
export type { MasterStatus, GenerationStatus, WorkerStatus } from './master/status.js';
export type { Fetcher, FetcherContext, FetchedBuild, BuildInfo } from './fetchers/fetcher.js';
export { FileFetcher, type FileFetcherOptions } from './fetchers/file.js';
export { HTTPFetcher, type HTTPFetcherOptions } from './fetchers/http.js';
export { GitHubFetcher, type GitHubFetcherOptions, type GitHubAsset, type GitHubAssetRule, type GitHubRelease } from './fetchers/github.js';
export { checksumFor, parseChecksums, type ChecksumEntry } from './fetchers/checksums.js';
export { S3Fetcher, type S3FetcherOptions } from './fetchers/s3.js';
export type { BuildStatus, SourceStatus, UpgradeRecord, UpgradeOutcome, CheckResult } from './master/upgrade/status.js';
export {
  OverseerError,
  ConfigError,
  AddressError,
  BindError,
  NodeInternalsError,
  NotSupervisedError,
  UnsupportedPlatformError,
  NoListenerError,
  FetchError,
  BuildRejectedError,
  ChecksumError,
  SignatureError,
  ArchiveError,
  PidFileError,
  type OverseerErrorCode,
} from './errors.js';
export { parseAddress, formatAddress, type ParsedAddress } from './master/addresses.js';
