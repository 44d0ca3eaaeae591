#!/usr/bin/env node
// Runs ui.test.mjs against mock-server.mjs on a free port and exits with the test's status.
//   node test-with-mock.mjs [--live]

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const extra = process.argv.slice(2).filter((a) => a === '--live');

const mock = spawn(process.execPath, [join(HERE, 'mock-server.mjs'), '--port', '0', ...extra],
  { stdio: ['ignore', 'pipe', 'inherit'] });

const started = new Promise((resolve, reject) => {
  let out = '';
  const timer = setTimeout(() => reject(new Error('the mock server did not start within 10 s')), 10_000);
  mock.stdout.on('data', (chunk) => {
    out += chunk;
    const url = /mock listening on (\S+)/.exec(out);
    const job = /JOB_ID=([0-9a-f]{32})/.exec(out);
    if (url && job) {
      clearTimeout(timer);
      resolve({ url: url[1], job: job[1] });
    }
  });
  mock.on('exit', (code) => reject(new Error(`the mock server exited (${code})`)));
});

let status = 1;
try {
  const { url, job } = await started;
  console.log(`mock at ${url}, JOB_ID=${job}`);
  const test = spawn(process.execPath, [join(HERE, 'ui.test.mjs')], {
    stdio: 'inherit',
    env: { ...process.env, BASE_URL: url, JOB_ID: job },
  });
  status = await new Promise((resolve) => test.on('exit', (code) => resolve(code ?? 1)));
} catch (err) {
  console.error(`FAIL: ${err.message}`);
} finally {
  mock.kill();
}
process.exit(status);
