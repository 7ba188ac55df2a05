// Shared by every server so that all scenarios measure exactly the same request handler.
const body = 'Hello World\n';

export function handler(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
}
