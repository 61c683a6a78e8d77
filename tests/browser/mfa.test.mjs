// Two-step verification in a real browser: a user turns on an authenticator app from the account page
// (QR code drawn server-side as SVG, key shown for typing), saves the recovery codes, signs out, and signs
// in with the password plus a code computed here from the key (RFC 6238, as any authenticator app does).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { artifacts, freshServer, launch, watchCsp } from './support.mjs';

let server;
let base;
let browser;
const email = 'kim@example.com';
const password = 'kim has a long password 1';

// RFC 4648 base32 without padding -> bytes.
const base32 = (text) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
};

// RFC 6238: HMAC-SHA1 over the 30-second step counter, dynamic truncation, 6 digits.
const totp = (key, at = Date.now()) => {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', base32(key)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
};

before(async () => {
  const fresh = await freshServer('browser-mfa');
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

test('turn on an authenticator app, then sign in with password and code', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
  const page = await context.newPage();
  const violations = watchCsp(page);

  await page.goto(`${base}/o/acme/login`);
  await page.screenshot({ path: join(artifacts, 'mfa-login.png'), fullPage: true });
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('button:text("Sign in")')]);

  await Promise.all([page.waitForURL(`${base}/o/acme/account/mfa/totp`), page.click('text=Set up')]);
  assert.equal(await page.title(), 'Set up an authenticator app · Acme Inc');
  assert.equal(await page.locator('figure.qr svg').count(), 1, 'the QR code is an inline SVG');
  await page.screenshot({ path: join(artifacts, 'mfa-totp-setup.png'), fullPage: true });
  const key = (await page.textContent('code.secret')).trim();
  assert.match(key, /^[A-Z2-7]{32}$/, '160-bit key in base32');

  await page.fill('#code', '000000' === totp(key) ? '111111' : '000000');
  await page.click('button:text("Turn on")');
  assert.match(await page.textContent('.error'), /not right/);
  await page.fill('#code', totp(key));
  await Promise.all([page.waitForLoadState(), page.click('button:text("Turn on")')]);
  assert.equal(await page.title(), 'Save your recovery codes · Acme Inc');
  const codes = await page.locator('ol.codes li').allTextContents();
  assert.equal(codes.length, 10);
  await page.screenshot({ path: join(artifacts, 'mfa-recovery-codes.png'), fullPage: true });
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('text=I have saved them')]);
  await page.screenshot({ path: join(artifacts, 'mfa-account.png'), fullPage: true });

  await Promise.all([page.waitForLoadState(), page.click('form[action$="/account/signout"] button')]);
  await page.goto(`${base}/o/acme/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${base}/o/acme/login/mfa`), page.click('button:text("Sign in")')]);
  assert.equal(await page.title(), 'Two-step verification · Acme Inc');
  await page.screenshot({ path: join(artifacts, 'mfa-challenge.png'), fullPage: true });
  // The code just used to turn the app on is refused if replayed; the next step's code is accepted.
  await page.fill('#code-totp', totp(key, Date.now() + 30_000));
  await Promise.all([page.waitForURL(`${base}/o/acme/account`), page.click('form:has(#code-totp) button')]);
  assert.equal(await page.title(), 'Your account · Acme Inc');

  assert.deepEqual(violations, [], 'no CSP violations');
  await context.close();
});
