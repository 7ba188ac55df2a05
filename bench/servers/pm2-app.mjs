// The same server under PM2 in cluster mode, as PM2's docs describe a graceful app: it tells PM2
// it is ready with process.send('ready') once listening (wait_ready), and drains on SIGINT.
import { gracefulServer } from './graceful.mjs';
import { createHandler, loadBuild } from './handler.mjs';

const server = gracefulServer(createHandler(await loadBuild()), 'SIGINT');
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
