import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { AddressError } from '../errors.js';

/** An address as the user wrote it, taken apart. */
export type ParsedAddress =
  | {
      kind: 'tcp';
      /** What the user wrote. */
      spec: string;
      /** null for every interface (`':3000'`). */
      host: string | null;
      port: number;
      /** 4 or 6 for an IP literal, 0 for a name that must be looked up, null for every interface. */
      family: 4 | 6 | 0 | null;
    }
  | { kind: 'unix'; spec: string; path: string };

const UNIX_PREFIX = 'unix:';

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new AddressError(
      `invalid port ${JSON.stringify(text)} in address ${JSON.stringify(spec)}: use a port from 0 to 65535 (0 lets the OS pick one)`,
    );
  }
  return Number(text);
}

/**
 * Parses `':3000'`, `'3000'`, `'127.0.0.1:3000'`, `'[::1]:3000'`, `'localhost:3000'` and
 * `'unix:/path'` (a relative unix path is resolved against the working directory).
 */
export function parseAddress(spec: string): ParsedAddress {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new AddressError(`invalid address ${JSON.stringify(spec)}: use ':3000', '127.0.0.1:3000', '[::1]:3000' or 'unix:/path/to.sock'`);
  }
  if (spec.startsWith(UNIX_PREFIX)) {
    const path = spec.slice(UNIX_PREFIX.length);
    if (path === '') throw new AddressError(`address ${JSON.stringify(spec)} has no path: write it as 'unix:/run/app.sock'`);
    return { kind: 'unix', spec, path: resolve(path) };
  }
  if (/^\d+$/.test(spec)) return { kind: 'tcp', spec, host: null, port: parsePort(spec, spec), family: null };
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']');
    const host = spec.slice(1, close);
    if (close < 0 || spec[close + 1] !== ':' || isIP(host) !== 6) {
      throw new AddressError(`invalid IPv6 address ${JSON.stringify(spec)}: write it as '[::1]:3000'`);
    }
    return { kind: 'tcp', spec, host, port: parsePort(spec.slice(close + 2), spec), family: 6 };
  }
  const colon = spec.lastIndexOf(':');
  if (colon < 0) {
    throw new AddressError(`address ${JSON.stringify(spec)} has no port: write it as '${spec}:3000', or ':3000' for every interface`);
  }
  const host = spec.slice(0, colon);
  const port = parsePort(spec.slice(colon + 1), spec);
  if (host === '' || host === '*') return { kind: 'tcp', spec, host: null, port, family: null };
  if (host.includes(':')) {
    throw new AddressError(`IPv6 address ${JSON.stringify(spec)} needs brackets: write it as '[${host}]:${port}'`);
  }
  const family = isIP(host);
  return { kind: 'tcp', spec, host, port, family: family === 4 ? 4 : 0 };
}

/** How an address is reported once bound: as written, with the port the OS chose. */
export function formatAddress(address: ParsedAddress, port?: number): string {
  if (address.kind === 'unix') return `${UNIX_PREFIX}${address.path}`;
  const actual = port ?? address.port;
  if (address.host === null) return `:${actual}`;
  return address.host.includes(':') ? `[${address.host}]:${actual}` : `${address.host}:${actual}`;
}
