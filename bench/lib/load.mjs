// autocannon, patched to behave like a real HTTP client across restarts, and summarised.
import autocannon from 'autocannon';

export const CONNECTIONS = 50;
export const PATTERNS = [
  { key: 'keep-alive', name: 'keep-alive', reconnectRate: undefined },
  { key: 'new-conn', name: 'new conn/request', reconnectRate: 1 },
];

// autocannon 8 has two blind spots that matter here, so each client is patched:
// - with reconnectRate it reconnects before emitting `response`, so nothing is counted at all;
// - it ignores `Connection: close` (a draining server sends it) and writes the next request into
//   the closing socket, and when the server closes a socket with a request in flight it silently
//   reconnects, so that request is neither answered nor counted as an error.
// The patch behaves like a real HTTP client and counts requests lost to a close as `unanswered`.
function instrument(client, counts) {
  let last, closeAfter = false, connError = false;
  const { pipelinedRequests: queue } = client;
  const terminate = queue.terminateRequest.bind(queue);
  queue.terminateRequest = () => (last = terminate());
  client.on('response', () => { last = undefined; });
  client.on('headers', (info) => { if (!info.shouldKeepAlive) closeAfter = true; });
  client.on('connError', () => { connError = true; });
  const { _connect: connect, _doRequest: doRequest, _resetConnection: reset } = client;
  client._resetConnection = function () {
    if (last) this.emit('response', last.headers.statusCode, last.bytes, last.duration, this.rate);
    reset.call(this);
  };
  client._doRequest = function () {
    if (!closeAfter) return doRequest.call(this);
    this._resetConnection();
  };
  client._connect = function () {
    if (this.conn) {
      if (!connError) counts.unanswered += queue.size();
      this._destroyConnection(); // also drops the old socket's listeners: a late error there used to open a second connection
    }
    closeAfter = connError = false;
    connect.call(this);
  };
}

/** `duration` seconds of load on `port`; resolves with requests, errors by kind, latencies and req/s. */
export async function loadTest(port, pattern, duration, { connections = CONNECTIONS } = {}) {
  const counts = { unanswered: 0 };
  const latencies = [];
  const errorKinds = {};
  const instance = autocannon({
    url: `http://127.0.0.1:${port}`, connections, duration, reconnectRate: pattern.reconnectRate,
    setupClient: (client) => instrument(client, counts),
  });
  // Sub-millisecond latencies: autocannon's histogram rounds to whole ms.
  instance.on('response', (_client, status, _bytes, ms) => { if (status < 300) latencies.push(ms); });
  instance.on('reqError', (err) => { const kind = err.code ?? err.message; errorKinds[kind] = (errorKinds[kind] ?? 0) + 1; });
  const result = await instance;
  if (result.requests.sent > 0 && result.requests.total === 0) throw new Error('autocannon counted no responses');
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  const non2xx = Object.entries(result.statusCodeStats).filter(([code]) => !code.startsWith('2'));
  const kinds = { ...errorKinds, ...Object.fromEntries(non2xx.map(([code, { count }]) => [`HTTP ${code}`, count])) };
  if (counts.unanswered) kinds['closed without response'] = counts.unanswered;
  if (result.resets) kinds['autocannon resets'] = result.resets;
  if (result.mismatches) kinds['body mismatch'] = result.mismatches;
  return {
    requests: result.requests.total,
    // autocannon's `errors` already includes `timeouts`, so they are not added twice.
    errors: result.errors + result.non2xx + result.resets + result.mismatches + counts.unanswered,
    kinds,
    p50: pct(0.5), p99: pct(0.99), max: latencies.at(-1) ?? NaN,
    rps: result.requests.total / result.duration,
  };
}

export const describeKinds = (kinds) => Object.entries(kinds).map(([k, n]) => `${k}: ${n}`).join(', ');
