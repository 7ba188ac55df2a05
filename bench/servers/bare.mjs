// Baseline: `node server.js`, no manager. Prints its port so the bench can find it.
// PORT pins the port, for restarts by hand; SIGTERM stops it gracefully, as systemd would.
import { gracefulServer } from './graceful.mjs';
import { createHandler, loadBuild } from './handler.mjs';

const server = gracefulServer(createHandler(await loadBuild()), 'SIGTERM');
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => console.log(server.address().port));
