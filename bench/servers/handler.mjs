// Shared by every server so that all peers measure exactly the same request handler.
// Every reply names the build that produced it (`x-build`), so a bench can tell old code from new.
const body = 'Hello World\n';

/** `GET /` replies at once; `GET /slow?ms=N` replies with the build's name after N ms. */
export function createHandler(build) {
  return (req, res) => {
    if (req.url.startsWith('/slow')) {
      const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 10_000);
      setTimeout(() => res.writeHead(200, { 'Content-Type': 'text/plain', 'x-build': build }).end(build), ms);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'x-build': build });
    res.end(body);
  };
}

/** The build this process runs: the module at BENCH_BUILD, rewritten by the bench before a restart. */
export async function loadBuild() {
  const { pathToFileURL } = await import('node:url');
  const { BUILD } = await import(pathToFileURL(process.env.BENCH_BUILD).href);
  return BUILD;
}
