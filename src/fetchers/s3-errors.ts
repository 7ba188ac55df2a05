import type { CredentialOrigin, S3Target } from './s3-config.js';

/** The fields of an S3 `<Error>` body that help say what went wrong. */
export interface S3ErrorBody {
  code?: string | undefined;
  message?: string | undefined;
  /** The bucket's real region, in AuthorizationHeaderMalformed answers. */
  region?: string | undefined;
  requestId?: string | undefined;
}

/** What is known about a failed answer, for {@link describeS3Failure}. */
export interface S3Failure {
  status: number;
  body: S3ErrorBody;
  /** `x-amz-bucket-region`, sent with redirects and some errors. */
  bucketRegion?: string | undefined;
  credentialOrigin: CredentialOrigin;
  /** Strings that must never appear in a message: the secret key, the session token. */
  secrets: readonly string[];
}

/** How much of an error body is read: S3's are a few hundred bytes. */
export const MAX_ERROR_BODY = 16 * 1024;
const MAX_ECHOED_MESSAGE = 200;
const REGION_SHAPE = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Reads the few fields of an S3 error document; tolerant of anything that is not one. */
export function parseS3Error(xml: string): S3ErrorBody {
  const field = (name: string) => {
    const match = new RegExp(`<${name}>([^<]{0,1000})</${name}>`).exec(xml);
    return match?.[1] === undefined ? undefined : decodeEntities(match[1]).trim();
  };
  return { code: field('Code'), message: field('Message'), region: field('Region'), requestId: field('RequestId') };
}

/** A one-line account of a failed S3 answer: the status, the S3 code, the object, and what to do. */
export function describeS3Failure(target: S3Target, failure: S3Failure): string {
  const { status, body } = failure;
  const code = body.code && /^[A-Za-z0-9.]{1,100}$/.test(body.code) ? body.code : undefined;
  const answered = `S3 answered HTTP ${status}${code ? ` ${code}` : ' with no S3 error code'}`;
  const requestId = body.requestId && /^[A-Za-z0-9+/=-]{1,200}$/.test(body.requestId) ? ` (request id ${body.requestId})` : '';
  return `fetch of ${target.source} failed: ${answered}; ${hint(target, failure, code)}${requestId}`;
}

function hint(target: S3Target, failure: S3Failure, code: string | undefined): string {
  const { bucket, key } = target;
  const names = credentialNames(failure.credentialOrigin);
  const otherRegion = [failure.bucketRegion, failure.body.region].find((region) => region !== undefined && REGION_SHAPE.test(region) && region !== target.region);
  switch (code) {
    case 'NoSuchKey':
      return `bucket ${bucket} has no object ${key}; check key (keys are case-sensitive, and a leading slash is part of the key) and that the build was uploaded`;
    case 'NoSuchBucket':
      return target.customEndpoint
        ? `there is no bucket ${bucket} at this endpoint; check bucket and endpoint`
        : `there is no bucket ${bucket}; check the bucket name`;
    case 'AccessDenied':
    case 'AllAccessDisabled':
      return `these credentials may not read the object: allow s3:GetObject on arn:aws:s3:::${bucket}/${key} (and s3:ListBucket on the bucket, or S3 answers AccessDenied for a key that does not exist), and check bucket and key`;
    case 'SignatureDoesNotMatch':
      return `the secret access key does not belong to the access key id, or something between rewrote the request; check ${names.secret}`;
    case 'InvalidAccessKeyId':
      return `the access key id is not known ${target.customEndpoint ? 'at this endpoint' : 'to AWS'}; check ${names.id}`;
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return `the temporary credentials have expired; renew ${names.token}, or pass credentials as a function that returns fresh ones (it is called before every poll)`;
    case 'InvalidToken':
      return `the session token is malformed or not valid; check ${names.token}`;
    case 'RequestTimeTooSkewed':
      return "this machine's clock is more than 15 minutes off; synchronise it (NTP)";
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
    case 'IllegalLocationConstraintException':
      return otherRegion
        ? `the bucket is in region ${otherRegion}, not ${target.region}; set region to ${otherRegion}`
        : `the bucket is not in region ${target.region}; set region to the bucket's region`;
    case 'TemporaryRedirect':
      return 'the bucket is new and S3 is still spreading its name; the fetch is retried later';
    case 'SlowDown':
    case 'ServiceUnavailable':
      return 'S3 is asking for fewer requests; the fetch is retried later, and a larger interval helps';
    case 'InternalError':
      return 'S3 failed on its side; the fetch is retried later';
    default:
      return genericHint(target, failure);
  }
}

function genericHint(target: S3Target, failure: S3Failure): string {
  const echoed = failure.body.message ? `the store says: ${scrub(failure.body.message, failure.secrets)}; ` : '';
  const { status } = failure;
  if (status >= 300 && status < 400) return `${echoed}S3 redirected the request; check region${target.customEndpoint ? ' and endpoint' : ''}`;
  if (status === 401 || status === 403) return `${echoed}check the credentials and that they may read s3://${target.bucket}/${target.key}`;
  if (status === 404) return `${echoed}check bucket and key${target.customEndpoint ? ', and that endpoint is an S3-compatible store' : ''}`;
  if (status >= 500) return `${echoed}the store failed; the fetch is retried later`;
  return `${echoed}check bucket, key, region${target.customEndpoint ? ' and endpoint' : ''}`;
}

function credentialNames(origin: CredentialOrigin): { id: string; secret: string; token: string } {
  if (origin === 'environment') return { id: 'AWS_ACCESS_KEY_ID', secret: 'AWS_SECRET_ACCESS_KEY', token: 'AWS_SESSION_TOKEN' };
  if (origin === 'options') return { id: 'credentials.accessKeyId', secret: 'credentials.secretAccessKey', token: 'credentials.sessionToken' };
  return { id: 'the accessKeyId your credentials function returns', secret: 'the secretAccessKey your credentials function returns', token: 'the sessionToken your credentials function returns' };
}

/** A store's own message, cut to one short line, with anything secret taken out. */
function scrub(message: string, secrets: readonly string[]): string {
  let text = message;
  for (const secret of secrets) if (secret) text = text.split(secret).join('[redacted]');
  // Key material of other credentials (a store echoing a header) looks like this: leave it out too.
  return text.replace(/[A-Za-z0-9+/=]{32,}/g, '[redacted]').replace(/\s+/g, ' ').slice(0, MAX_ECHOED_MESSAGE);
}

function decodeEntities(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (_, name: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[name] ?? '');
}
