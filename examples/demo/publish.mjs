// `npm run demo:publish [-- --broken]`: writes a new build of the demo server where the running
// demo's fetcher looks for one, the way a build tool would (a temporary file, then a rename).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const broken = process.argv.includes('--broken');
const greeting = `Hello Harry (published ${new Date().toLocaleTimeString()})`;
let source = readFileSync(here('./server.mjs'), 'utf8').replace("const GREETING = 'Hello World';", `const GREETING = ${JSON.stringify(greeting)};`);
if (broken) source = source.replace('program: async (state) => {', "program: async (state) => {\n    throw new Error('this build crashes at start');");
writeFileSync(here('./incoming/server.mjs.tmp'), source);
renameSync(here('./incoming/server.mjs.tmp'), here('./incoming/server.mjs'));
console.log(broken ? 'published a build that crashes at start: watch the master roll it back' : `published: "${greeting}"`);
