import { describeError } from '../errors.js';

/** The timeouts an HTTP fetch runs under, for messages that name the option to raise. */
export interface TimeoutsByName {
  connectTimeout: number;
  headersTimeout: number;
  /** The option that set `headersTimeout`: the shorter of `timeout` and `idleTimeout`. */
  headersTimeoutName: 'timeout' | 'idleTimeout';
  idleTimeout: number;
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A URL as it may be logged: scheme, host, port and path; no userinfo, query or fragment. */
export function redactURL(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** The source, and where a redirect led when that is elsewhere. */
export function describeLocation(source: string, url: URL): string {
  const here = redactURL(url);
  return here === source ? source : `${source} (redirected to ${here})`;
}

/** What an unexpected status means and what to check. */
export function describeStatus(where: string, status: number): string {
  let hint: string;
  if (status === 401 || status === 403) hint = 'check the credentials given in the headers option (or the URL) and that they may read this file';
  else if (status === 404 || status === 410) hint = 'check the URL: nothing is published there';
  else if (status === 407) hint = 'a proxy wants credentials; this fetcher does not use a proxy, so check the network path';
  else if (status === 429) hint = 'the server is rate limiting; raise interval';
  else if (status >= 500) hint = 'the server failed; check its logs (the fetch is retried later)';
  else hint = 'only 200, 304 and redirects are expected; check the URL and the server';
  return `fetch of ${where} answered HTTP ${status}; ${hint}`;
}

/** What a transport error means and what to check, naming its code. */
export function explainFailure(error: unknown, timeouts: TimeoutsByName): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name does not resolve (${code}); check the host in the URL and DNS`;
    case 'ECONNREFUSED':
      return 'connection refused (ECONNREFUSED); check that the server runs and listens on that port';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return `the connection was closed by the other side (${code}); check the server and any proxy in between`;
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return `the body did not match its Content-Length (${code}); check the server and any proxy in between`;
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `no connection within ${timeouts.connectTimeout} ms (connectTimeout, ${code}); check the host, port and firewall, or raise connectTimeout`;
    case 'UND_ERR_HEADERS_TIMEOUT':
      return `no response headers within ${timeouts.headersTimeout} ms (${timeouts.headersTimeoutName}, ${code}); check the server, or raise ${timeouts.headersTimeoutName}`;
    case 'UND_ERR_BODY_TIMEOUT':
      return `no bytes arrived for ${timeouts.idleTimeout} ms (idleTimeout, ${code}); check the server and the network, or raise idleTimeout`;
    case 'Z_DATA_ERROR':
    case 'Z_BUF_ERROR':
      return `the compressed body is corrupt or cut short (${code}); check the server's Content-Encoding`;
    default:
      if (code !== undefined && TLS_CODES.has(code)) {
        return `the server's TLS certificate was refused (${code}); check its certificate, or set NODE_EXTRA_CA_CERTS for a private CA`;
      }
      return `${describeError(error)}${code ? ` (${code})` : ''}; check the URL and that the server is reachable`;
  }
}
