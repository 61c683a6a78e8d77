// The hosted sign-in and consent pages in a real browser: a relying party sends the user to /authorize,
// the user signs in (first with a wrong password), allows access, and lands back at the application with
// a code, its state and the issuer. The code is then redeemed like a confidential client would.
// Screenshots go to artifacts/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { artifacts, freshServer, launch, watchCsp } from './support.mjs';

let server;
let base;
let app;
const password = 'correct horse battery staple';

before(async () => {
  const fresh = await freshServer('browser');
  base = fresh.base;
  fresh.cli(['org', 'create', '--slug', 'acme', '--name', 'Acme Inc']);
  app = JSON.parse(fresh.cli(['--json', 'app', 'create', '--org', 'acme', '--name', 'Acme Dashboard', '--type', 'confidential',
    '--redirect-uri', 'http://127.0.0.1:9/callback', '--grant', 'authorization_code,refresh_token']));
  fresh.cli(['user', 'create', '--org', 'acme', '--email', 'ann@example.com', '--password-stdin', '--verified'], password + '\n');
  server = await fresh.serve();
});

after(() => server?.kill('SIGTERM'));

test('sign in, consent and return to the application with a code', async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 800, height: 640 } });
    const violations = watchCsp(page);
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
