// The account lifecycle in a real browser: a relying party sends a new user to /authorize; they create an
// account, confirm their email with the link from the (dev) outbox, sign in, allow access and land back at
// the application with a code. Then the account page, and a password reset with the emailed code.
// Mail is read through the real CLI (`latchkey outbox list/show`). Screenshots go to artifacts/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { artifacts, freshServer, launch, watchCsp } from './support.mjs';

let server;
let base;
let cli;
let app;
let browser;
const callbackUri = 'http://127.0.0.1:9/callback';
const email = 'bea@example.com';
const password = 'bea has a long password 1';

// The newest message to `to` whose subject matches, read through the CLI as an operator would.
const latestMail = (to, subject) => {
  const list = JSON.parse(cli(['--json', 'outbox', 'list', '--org', 'acme']));
  const found = list.find((m) => m.recipient === to && subject.test(m.subject));
  assert.ok(found, `a message to ${to} matching ${subject}`);
  return JSON.parse(cli(['--json', 'outbox', 'show', found.id]));
};

before(async () => {
  const fresh = await freshServer('browser-accounts');
  ({ base, cli } = fresh);
  cli(['org', 'create', '--slug', 'acme', '--name', 'Acme Inc']);
  app = JSON.parse(cli(['--json', 'app', 'create', '--org', 'acme', '--name', 'Acme Dashboard', '--type', 'confidential',
    '--redirect-uri', callbackUri, '--grant', 'authorization_code,refresh_token', '--first-party']));
  server = await fresh.serve();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

test('sign up, confirm the email, sign in and return to the application', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 720 } });
  const page = await context.newPage();
  const violations = watchCsp(page);
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    response_type: 'code', client_id: app.client_id, redirect_uri: callbackUri, scope: 'openid email profile',
    state: 'state-7', nonce: 'nonce-7',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  });
  await page.goto(`${base}/o/acme/authorize?${query}`);
  assert.equal(await page.title(), 'Sign in · Acme Inc');
  await page.click('text=Create an account');
  assert.equal(await page.title(), 'Create your account · Acme Inc');

  // Keyboard users reach every field in order.
  await page.focus('#name');
  const order = [];
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.tagName));
  }
  assert.deepEqual(order, ['email', 'password', 'BUTTON']);

  await page.fill('#name', 'Bea Example');
  await page.fill('#email', email);
  await page.fill('#password', 'short');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /at least 10 characters/);
  assert.equal(await page.inputValue('#email'), email, 'what was typed is kept');
  assert.equal(await page.inputValue('#name'), 'Bea Example');
  assert.equal(await page.inputValue('#password'), '', 'but never the password');
  await page.screenshot({ path: join(artifacts, 'signup-error.png') });

  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Check your email');
  await page.screenshot({ path: join(artifacts, 'signup-check-email.png') });

  const mail = latestMail(email, /Confirm your email/);
  const link = mail.body_text.match(/https?:\/\/\S+verify-email\?token=\S+/)[0];
  // Opening the link confirms nothing (mail scanners open links too); the button on its page does.
  await page.goto(link);
  assert.equal(await page.title(), 'Confirm your email · Acme Inc');
  await page.screenshot({ path: join(artifacts, 'email-confirm.png') });
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Email confirmed');
  await page.screenshot({ path: join(artifacts, 'email-confirmed.png') });

  await page.click('text=Continue to sign in');
  assert.equal(await page.title(), 'Sign in · Acme Inc');
  await page.fill('#email', email);
  await page.fill('#password', password);
  const callback = page.waitForRequest((r) => r.url().startsWith(callbackUri));
  await page.click('button[type=submit]');
  const url = new URL((await callback).url());
  assert.equal(url.searchParams.get('state'), 'state-7');
  assert.equal(url.searchParams.get('iss'), `${base}/o/acme`);
  const token = await fetch(`${base}/o/acme/token`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64') },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: url.searchParams.get('code'), redirect_uri: callbackUri, code_verifier: verifier }),
  });
  assert.equal(token.status, 200);
  const { access_token } = await token.json();
  const info = await (await fetch(`${base}/o/acme/userinfo`, { headers: { authorization: `Bearer ${access_token}` } })).json();
  assert.equal(info.email, email);
  assert.equal(info.email_verified, true);
  assert.equal(info.name, 'Bea Example');

  // The first tab is still failing over to Chromium's error page for the unreachable callback; the
  // account page opens in a second tab of the same browser (same cookies) so the two cannot race.
  const account = await context.newPage();
  const accountViolations = watchCsp(account);
  await account.goto(`${base}/o/acme/account`);
  assert.equal(await account.title(), 'Your account · Acme Inc');
  await account.waitForSelector('text=This device');
  await account.screenshot({ path: join(artifacts, 'account.png'), fullPage: true });
  assert.deepEqual([...violations, ...accountViolations], [], 'no CSP violations on hosted pages');
  await context.close();
});

test('forgot password: the emailed code sets a new password and signs out everywhere', async () => {
  const context = await browser.newContext({ viewport: { width: 420, height: 760 } });
  const page = await context.newPage();
  const violations = watchCsp(page);
  await page.goto(`${base}/o/acme/account`);
  assert.equal(await page.title(), 'Sign in · Acme Inc', 'signed out: the account page asks to sign in');
  await page.click('text=Forgot your password?');
  await page.fill('#email', email);
  await page.click('button[type=submit]');
  await page.waitForSelector('#code');
  await page.screenshot({ path: join(artifacts, 'reset-code.png') });

  const mail = latestMail(email, /Reset your/);
  const code = mail.body_text.match(/Your code is (\d{6})/)[1];
  await page.fill('#code', code === '999999' ? '999998' : '999999');
  await page.fill('#password', 'another long password 2');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=That code is not right. 4 attempts left.');

  await page.fill('#code', code);
  await page.fill('#password', 'another long password 2');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Password changed');
  await page.screenshot({ path: join(artifacts, 'reset-done.png') });
  assert.match(latestMail(email, /password was changed/).body_text, /signed out/);

  await page.click('text=Sign in');
  await page.fill('#email', email);
  await page.fill('#password', 'another long password 2');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Your account');
  assert.deepEqual(violations, [], 'no CSP violations on hosted pages');
  await context.close();
});
