// Passkeys in a real browser, with Chromium's virtual authenticator (DevTools protocol, WebAuthn domain):
// a user signs in with their password, adds a passkey on the account page (a discoverable credential
// with user verification), signs out, and signs in again with "Sign in with a passkey" alone. The
// page's script is a static file under CSP script-src 'self'. Screenshots go to artifacts/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { artifacts, freshServer, launch, watchCsp } from './support.mjs';

let server;
let base;
let browser;
const email = 'pat@example.com';
const password = 'pat has a long password 1';

before(async () => {
  // WebAuthn needs a domain name: the server's public URL is http://localhost:PORT.
  const fresh = await freshServer('browser-passkeys', { host: 'localhost' });
  ({ base } = fresh);
  fresh.cli(['org', 'create', '--slug', 'acme', '--name', 'Acme Inc']);
  fresh.cli(['user', 'create', '--org', 'acme', '--email', email, '--password-stdin', '--verified'], `${password}\n`);
  server = await fresh.serve();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

test('add a passkey on the account page, then sign in with it and no password', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
  const page = await context.newPage();
  const violations = watchCsp(page);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal',
      hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  await page.goto(`${base}/o/acme/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('button:text("Sign in")')]);
  assert.equal(await page.title(), 'Your account · Acme Inc');

  await Promise.all([page.waitForURL(`${base}/o/acme/account/passkeys/new`), page.click('text=Add a passkey')]);
  await page.fill('#passkey-name', 'Work laptop');
  await Promise.all([page.waitForURL(`${base}/o/acme/account/passkeys`), page.click('button:text("Add passkey")')]);
  assert.equal(await page.title(), 'Save your recovery codes · Acme Inc');
  assert.equal(await page.locator('ol.codes li').count(), 10);
  await page.screenshot({ path: join(artifacts, 'passkey-added.png'), fullPage: true });

  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable passkey');
  assert.equal(credentials[0].rpId, 'localhost');

  await page.goto(`${base}/o/acme/account`);
  assert.match(await page.textContent('body'), /Passkey: Work laptop/);
  await Promise.all([page.waitForLoadState(), page.click('form[action$="/account/signout"] button')]);
  assert.match(await page.textContent('body'), /You are signed out/);

  // Passwordless: nothing typed, the authenticator finds the passkey for this site.
  await page.goto(`${base}/o/acme/login`);
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('button:text("Sign in with a passkey")')]);
  assert.equal(await page.title(), 'Your account · Acme Inc');
  assert.match(await page.textContent('body'), /last used/);
  await page.screenshot({ path: join(artifacts, 'passkey-signed-in.png'), fullPage: true });
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.ok(after.credentials[0].signCount >= 2, 'the passkey was used to sign in');

  // With the passkey on the account, the password alone is no longer enough: the second step offers it.
  await Promise.all([page.waitForLoadState(), page.click('form[action$="/account/signout"] button')]);
  await page.goto(`${base}/o/acme/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${base}/o/acme/login/mfa`), page.click('button:text("Sign in")')]);
  assert.equal(await page.title(), 'Two-step verification · Acme Inc');
  await page.screenshot({ path: join(artifacts, 'passkey-second-step.png'), fullPage: true });
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('button:text("Use a passkey")')]);
  assert.equal(await page.title(), 'Your account · Acme Inc');

  assert.deepEqual(violations, [], 'no CSP violations');
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
  await context.close();
});
