/** Stable codes carried by every error overseer throws or logs. */
export type OverseerErrorCode =
  | 'ERR_OVERSEER_CONFIG'
  | 'ERR_OVERSEER_ADDRESS'
  | 'ERR_OVERSEER_BIND'
  | 'ERR_OVERSEER_NODE_INTERNALS'
  | 'ERR_OVERSEER_NOT_SUPERVISED'
  | 'ERR_OVERSEER_UNSUPPORTED_PLATFORM'
  | 'ERR_OVERSEER_NO_LISTENER'
  | 'ERR_OVERSEER_FETCH'
  | 'ERR_OVERSEER_BUILD_REJECTED'
  | 'ERR_OVERSEER_CHECKSUM'
  | 'ERR_OVERSEER_SIGNATURE'
  | 'ERR_OVERSEER_ARCHIVE'
  | 'ERR_OVERSEER_PID_FILE';

/** Base class of overseer's errors: `code` is stable, `message` says what to do. */
export class OverseerError extends Error {
  readonly code: OverseerErrorCode;

  constructor(code: OverseerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A `run()` option has a value overseer cannot use. */
export class ConfigError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_CONFIG', message);
  }
}

/** An address string could not be parsed. */
export class AddressError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_ADDRESS', message);
  }
}

/** The master could not bind an address (in use, no permission, ...). */
export class BindError extends OverseerError {
  readonly address: string;
  readonly syscallCode: string | undefined;

  constructor(address: string, message: string, syscallCode?: string, cause?: unknown) {
    super('ERR_OVERSEER_BIND', message, { cause });
    this.address = address;
    this.syscallCode = syscallCode;
  }
}

/** This Node.js lacks an internal API overseer needs to own sockets without accepting. */
export class NodeInternalsError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_NODE_INTERNALS', message);
  }
}

/** A call that only makes sense under an overseer master was made elsewhere. */
export class NotSupervisedError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_NOT_SUPERVISED', message);
  }
}

/** `required: true` was set on a platform where overseer cannot supervise. */
export class UnsupportedPlatformError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_UNSUPPORTED_PLATFORM', message);
  }
}

/** A listener was asked for that the configuration does not have. */
export class NoListenerError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_NO_LISTENER', message);
  }
}

/** A fetcher could not reach its source or read a build from it. The master retries later. */
export class FetchError extends OverseerError {
  /** The fetcher's `source`. */
  readonly source: string;

  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('ERR_OVERSEER_FETCH', message, options);
    this.source = source;
  }
}

/** A fetched build was refused before it could replace the running one. */
export class BuildRejectedError extends OverseerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OVERSEER_BUILD_REJECTED', message, options);
  }
}

/** A build's SHA-256 differs from the one its source published. */
export class ChecksumError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_CHECKSUM', message);
  }
}

/** A signature or key is missing, malformed, made with another key, or does not match the build. */
export class SignatureError extends OverseerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OVERSEER_SIGNATURE', message, options);
  }
}

/** An app archive breaks a rule (an entry outside the release, a device file, a limit passed). */
export class ArchiveError extends OverseerError {
  /** The archive entry that broke the rule, when one did. */
  readonly entry: string | undefined;

  constructor(message: string, entry?: string) {
    super('ERR_OVERSEER_ARCHIVE', message);
    this.entry = entry;
  }
}

/** The pid file is held by another live master, or cannot be read or written. */
export class PidFileError extends OverseerError {
  constructor(message: string) {
    super('ERR_OVERSEER_PID_FILE', message);
  }
}

/** Best-effort one-line description of anything thrown. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
