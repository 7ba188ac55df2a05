import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { get } from './helpers/load.js';
import { cleanupAll, eventually, startMaster, type MasterProcess } from './helpers/processes.js';
import { S3_CREDENTIALS, S3_REGION, S3TestServer } from './helpers/s3-server.js';

const BUCKET = 'releases';
const KEY = 'app/app.mjs';

const stores: S3TestServer[] = [];
afterEach(async () => {
  await cleanupAll();
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

function upgradeEnded(master: MasterProcess, count: number) {
  return master.waitForLog('upgrade ', { count, where: (line) => /^upgrade (done|skipped|rejected|rolled back)/.test(line.msg), timeoutMs: 20_000 });
}

describe('self-upgrade from S3', () => {
  it('installs a changed object from an S3-compatible store and serves it, refuses one whose sha256 metadata lies, and polls an unchanged one with bodiless 304s', async () => {
    const store = await new S3TestServer().start();
    stores.push(store);
    await store.createBucket(BUCKET);
    const options = { bucket: BUCKET, key: KEY, region: S3_REGION, endpoint: store.endpoint, credentials: S3_CREDENTIALS, interval: 150, timeout: 2000, idleTimeout: 500 };
    const fetcher = `new S3Fetcher(${JSON.stringify(options)})`;
    const source = (more: AppOptions) => appSource({ readyTimeout: 3000, ...more, fetcher });
    const app = new TestApp({ readyTimeout: 3000, fetcher });
    await store.putObject(BUCKET, KEY, readFileSync(app.path));

    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    await master.waitForLog('watching for new builds');
    // The first poll downloads the running build and skips it.
    expect((await upgradeEnded(master, 1)).msg).toBe('upgrade skipped');

    const lying = source({ reply: 'Hello from a tampered object' });
    await store.putObject(BUCKET, KEY, lying, { sha256: sha256('something else') });
    const refused = await upgradeEnded(master, 2);
    expect(refused.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(refused.reason)).toMatch(/checksum mismatch/);
    expect((await get({ port })).body).toBe('Hello World');

    const build = source({ reply: 'Hello from S3' });
    await store.putObject(BUCKET, KEY, build, { sha256: sha256(build) });
    const done = await upgradeEnded(master, 3);
    expect(done).toMatchObject({ msg: 'upgrade done', outcome: 'installed', buildId: sha256(build) });
    expect((await get({ port })).body).toBe('Hello from S3');
    expect(readFileSync(app.path, 'utf8')).toBe(build);

    const downloads = store.gets(BUCKET, KEY).filter((answer) => answer.status === 200).length;
    const notModified = () => store.gets(BUCKET, KEY).filter((answer) => answer.status === 304).length;
    const before = notModified();
    await eventually(() => notModified() >= before + 3, 'three more polls answered 304 Not Modified');
    expect(store.gets(BUCKET, KEY).filter((answer) => answer.status === 200)).toHaveLength(downloads);
    expect(master.find('upgrade ', (line) => /^upgrade (done|skipped|rejected|rolled back)/.test(line.msg))).toHaveLength(3);
    expect(master.find('fetch failed')).toEqual([]);
  });
});
