// The hosted sign-in and consent pages in a real browser: a relying party sends the user to /authorize,
// the user signs in (first with a wrong password), allows access, and lands back at the application with
// a code, its state and the issuer. The code is then redeemed like a confidential client would.
// Screenshots go to artifacts/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '../..');
const bin = process.env.LATCHKEY_BIN ?? join(root, 'target/debug/latchkey');
const artifacts = join(root, 'artifacts/browser');
mkdirSync(artifacts, { recursive: true });

const freePort = () =>
  new Promise((ok) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

let server;
let env;
let base;
let app;
const password = 'correct horse battery staple';

const cli = (args, input) =>
  execFileSync(bin, args, { env, input, encoding: 'utf8' });

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-browser-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = { PATH: process.env.PATH, LATCHKEY_DATA_DIR: join(dir, 'data'), LATCHKEY_LISTEN: `127.0.0.1:${port}`, LATCHKEY_BCRYPT_COST: '10' };
  cli(['org', 'create', '--slug', 'acme', '--name', 'Acme Inc']);
  app = JSON.parse(cli(['--json', 'app', 'create', '--org', 'acme', '--name', 'Acme Dashboard', '--type', 'confidential',
    '--redirect-uri', 'http://127.0.0.1:9/callback', '--grant', 'authorization_code,refresh_token']));
  cli(['user', 'create', '--org', 'acme', '--email', 'ann@example.com', '--password-stdin', '--verified'], password + '\n');
  server = spawn(bin, ['serve'], { env, stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/readyz`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server did not become ready');
});

after(() => server?.kill('SIGTERM'));

test('sign in, consent and return to the application with a code', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 800, height: 640 } });
    const violations = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const query = new URLSearchParams({
      response_type: 'code', client_id: app.client_id, redirect_uri: 'http://127.0.0.1:9/callback',
      scope: 'openid email', state: 'state-42', nonce: 'nonce-42', code_challenge: challenge, code_challenge_method: 'S256',
    });
    await page.goto(`${base}/o/acme/authorize?${query}`);
    assert.equal(await page.title(), 'Sign in · Acme Inc');
    await page.screenshot({ path: join(artifacts, 'login.png') });

    await page.fill('#email', 'ann@example.com');
    await page.fill('#password', 'not the password');
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Incorrect email or password.');
    assert.equal(await page.inputValue('#email'), 'ann@example.com', 'the email is kept');
    assert.equal(await page.inputValue('#password'), '', 'the password is not');
    await page.screenshot({ path: join(artifacts, 'login-error.png') });

    await page.fill('#password', password);
    await page.click('button[type=submit]');
    await page.waitForSelector('text=Allow access?');
    await page.screenshot({ path: join(artifacts, 'consent.png') });

    const callback = page.waitForRequest((r) => r.url().startsWith('http://127.0.0.1:9/callback'));
    await page.click('button[value=allow]');
    const url = new URL((await callback).url());
    assert.equal(url.searchParams.get('state'), 'state-42');
    assert.equal(url.searchParams.get('iss'), `${base}/o/acme`);
    const code = url.searchParams.get('code');
    assert.ok(code && code.length >= 43);
    assert.deepEqual(violations, [], 'no CSP violations on hosted pages');

    const token = await fetch(`${base}/o/acme/token`, {
      method: 'POST',
      headers: { authorization: 'Basic ' + Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64') },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:9/callback', code_verifier: verifier }),
    });
    assert.equal(token.status, 200);
    const body = await token.json();
    assert.ok(body.id_token && body.access_token && body.refresh_token);
  } finally {
    await browser.close();
  }
});
