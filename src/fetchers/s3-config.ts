import { ConfigError } from '../errors.js';
import { isLoopback } from './download.js';
import { redactURL } from './http-messages.js';

/** AWS credentials. Never logged, never part of `source` or of an error message. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** For temporary credentials (STS, SSO, an assumed role). */
  sessionToken?: string | undefined;
}

/**
 * Called before every poll for the credentials to sign it with, so that temporary credentials can
 * be refreshed. `fromNodeProviderChain()` of `@aws-sdk/credential-providers` is one.
 */
export type S3CredentialsProvider = () => S3Credentials | Promise<S3Credentials>;

/** Where the credentials came from, so that a hint can name what to fix. */
export type CredentialOrigin = 'options' | 'environment' | 'provider';

/** Where one object lives and how to address it. */
export interface S3Target {
  bucket: string;
  key: string;
  region: string;
  /** `https://bucket.s3.eu-west-1.amazonaws.com`: scheme, host and port the request goes to. */
  origin: string;
  /** The Host header, signed. */
  host: string;
  /** The request path, percent-encoded as S3 signs it. */
  path: string;
  /** True for a custom `endpoint`: hints then talk about the endpoint rather than AWS regions. */
  customEndpoint: boolean;
  /** `s3://bucket/key`, plus the endpoint when it is not AWS's. */
  source: string;
}

export interface TargetOptions {
  bucket: string;
  key: string;
  region: string;
  endpoint?: string | URL | undefined;
  forcePathStyle?: boolean | undefined;
  allowInsecureHTTP: boolean;
}

const REGION_SHAPE = /^[a-z0-9]+(-[a-z0-9]+)*$/;
/** Names S3 accepts, new and legacy (us-east-1 once allowed capitals and underscores). */
const BUCKET_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
/** Names that can be the first label of a host name: virtual-hosted addressing needs one. */
const HOST_LABEL_BUCKET = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
const MAX_KEY_BYTES = 1024;

/** The region from the option, else `AWS_REGION`, else `AWS_DEFAULT_REGION`. */
export function resolveRegion(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const [region, from] = option !== undefined
    ? [option, 'region option']
    : env.AWS_REGION
      ? [env.AWS_REGION, 'AWS_REGION']
      : env.AWS_DEFAULT_REGION
        ? [env.AWS_DEFAULT_REGION, 'AWS_DEFAULT_REGION']
        : [undefined, undefined];
  if (region === undefined) {
    throw new ConfigError('S3Fetcher needs a region to sign requests: pass region (eu-west-1, ...) or set AWS_REGION; S3-compatible stores such as MinIO accept us-east-1');
  }
  if (typeof region !== 'string' || !REGION_SHAPE.test(region)) {
    throw new ConfigError(`S3Fetcher ${from} ${JSON.stringify(region)} is not a region name; use lower-case letters, digits and hyphens, such as eu-west-1`);
  }
  return region;
}

/** Credentials from the option, else from the standard environment variables. */
export function resolveCredentials(
  option: S3Credentials | S3CredentialsProvider | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { credentials: S3Credentials | S3CredentialsProvider; origin: CredentialOrigin } {
  if (typeof option === 'function') return { credentials: option, origin: 'provider' };
  if (option !== undefined) return { credentials: checkCredentials(option, 'options'), origin: 'options' };
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId && !secretAccessKey) {
    throw new ConfigError(
      'S3Fetcher has no credentials: pass credentials: { accessKeyId, secretAccessKey }, or a function returning them, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; for a public object, HTTPFetcher with its https URL needs none',
    );
  }
  if (!accessKeyId || !secretAccessKey) {
    const [set, missing] = accessKeyId ? ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] : ['AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID'];
    throw new ConfigError(`S3Fetcher found ${set} in the environment but not ${missing}; set both, or pass credentials`);
  }
  const sessionToken = env.AWS_SESSION_TOKEN || undefined;
  return { credentials: checkCredentials({ accessKeyId, secretAccessKey, sessionToken }, 'environment'), origin: 'environment' };
}

/** Checks the shape of credentials; problems name the field, never its value. Returns a copy. */
export function checkCredentials(value: unknown, origin: CredentialOrigin): S3Credentials {
  const where = { options: 'the credentials option', environment: 'the environment', provider: 'the credentials function' }[origin];
  if (typeof value !== 'object' || value === null) {
    throw new ConfigError(`S3Fetcher credentials from ${where} must be an object { accessKeyId, secretAccessKey, sessionToken? }`);
  }
  const { accessKeyId, secretAccessKey, sessionToken } = value as Record<string, unknown>;
  for (const [name, field, required] of [['accessKeyId', accessKeyId, true], ['secretAccessKey', secretAccessKey, true], ['sessionToken', sessionToken, false]] as const) {
    if (field === undefined && !required) continue;
    if (typeof field !== 'string' || field === '' || /[\s\0]/.test(field)) {
      throw new ConfigError(`S3Fetcher credentials from ${where}: ${name} must be a non-empty string without spaces or line breaks`);
    }
  }
  return { accessKeyId: accessKeyId as string, secretAccessKey: secretAccessKey as string, sessionToken: sessionToken as string | undefined };
}

/** Works out the URL of the object: AWS virtual-hosted by default, path-style on a custom endpoint. */
export function resolveTarget(options: TargetOptions): S3Target {
  const { bucket, key, region } = options;
  if (typeof bucket !== 'string' || !BUCKET_SHAPE.test(bucket)) {
    throw new ConfigError(`S3Fetcher bucket ${JSON.stringify(bucket)} is not a bucket name; give the name alone (my-builds), without s3:// or slashes`);
  }
  if (typeof key !== 'string' || key === '') throw new ConfigError('S3Fetcher key must be the object key, such as releases/app.mjs');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new ConfigError(`S3Fetcher key is longer than S3's limit of ${MAX_KEY_BYTES} bytes`);
  const encodedKey = encodePath(key);
  const encodedBucket = encodePath(bucket);
  const s3url = `s3://${bucket}/${key}`;

  if (options.endpoint === undefined) {
    const domain = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
    const regional = `s3.${region}.${domain}`;
    // A dotted name breaks the wildcard TLS certificate of virtual-hosted addressing: such buckets go path-style.
    const pathStyle = options.forcePathStyle ?? !HOST_LABEL_BUCKET.test(bucket);
    const host = pathStyle ? regional : `${bucket}.${regional}`;
    return { bucket, key, region, origin: `https://${host}`, host, path: pathStyle ? `/${encodedBucket}/${encodedKey}` : `/${encodedKey}`, customEndpoint: false, source: s3url };
  }

  const endpoint = parseEndpoint(options.endpoint, options.allowInsecureHTTP);
  const prefix = endpoint.pathname.replace(/\/+$/, '');
  const shown = redactURL(endpoint).replace(/\/+$/, '');
  const source = `${s3url} (${shown})`;
  if (options.forcePathStyle ?? true) {
    return { bucket, key, region, origin: endpoint.origin, host: endpoint.host, path: `${prefix}/${encodedBucket}/${encodedKey}`, customEndpoint: true, source };
  }
  if (!HOST_LABEL_BUCKET.test(bucket)) {
    throw new ConfigError(`S3Fetcher bucket ${bucket} cannot be a host name label, so forcePathStyle: false cannot address it; leave forcePathStyle unset`);
  }
  const host = `${bucket}.${endpoint.host}`;
  return { bucket, key, region, origin: `${endpoint.protocol}//${host}`, host, path: `${prefix}/${encodedKey}`, customEndpoint: true, source };
}

function parseEndpoint(input: string | URL, allowInsecureHTTP: boolean): URL {
  let endpoint: URL;
  try {
    endpoint = new URL(String(input));
  } catch {
    throw new ConfigError('S3Fetcher endpoint is not an absolute URL; give one such as https://minio.example.com:9000');
  }
  if (endpoint.username || endpoint.password) {
    throw new ConfigError('S3Fetcher endpoint must not carry userinfo; pass the keys in credentials (or the AWS_* environment variables)');
  }
  if (endpoint.search || endpoint.hash) {
    throw new ConfigError(`S3Fetcher endpoint ${redactURL(endpoint)} must not have a query string or fragment; give scheme, host, port and at most a path prefix`);
  }
  if (endpoint.protocol === 'https:') return endpoint;
  if (endpoint.protocol !== 'http:') {
    throw new ConfigError(`S3Fetcher endpoint ${redactURL(endpoint)}: scheme ${endpoint.protocol} is not supported; use https:// (or http:// on loopback)`);
  }
  if (allowInsecureHTTP || isLoopback(endpoint.hostname)) return endpoint;
  throw new ConfigError(
    `S3Fetcher endpoint ${redactURL(endpoint)}: plain http to ${endpoint.hostname}, which is not loopback, lets anyone on the path read the signed requests and replace the build; use https, or set allowInsecureHTTP: true if the network is trusted`,
  );
}

/** Percent-encodes each segment as SigV4 canonicalises S3 paths (RFC 3986 unreserved kept, `/` kept). */
function encodePath(text: string): string {
  try {
    return text
      .split('/')
      .map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
      .join('/');
  } catch {
    throw new ConfigError('S3Fetcher bucket and key must be valid Unicode text (a lone surrogate cannot be sent)');
  }
}
