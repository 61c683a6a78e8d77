// Shared by the browser tests: the binary, free ports, a throw-away server, Chromium with CI's flags.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

export const root = resolve(import.meta.dirname, '../..');
export const bin = process.env.LATCHKEY_BIN ?? join(root, 'target/debug/latchkey');
export const artifacts = join(root, 'artifacts/browser');
mkdirSync(artifacts, { recursive: true });

export const freePort = () =>
  new Promise((ok) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// A fresh data directory and port; `cli` runs the real binary against them; `serve` starts the server and
// resolves once it is ready. `host` names the server in its public URL (passkeys need a domain name such
// as localhost; browsers refuse IP addresses as WebAuthn relying parties).
export const freshServer = async (name, { host = '127.0.0.1' } = {}) => {
  const dir = mkdtempSync(join(tmpdir(), `latchkey-${name}-`));
  const port = await freePort();
  const base = `http://${host}:${port}`;
  const env = { PATH: process.env.PATH, LATCHKEY_DATA_DIR: join(dir, 'data'), LATCHKEY_LISTEN: `127.0.0.1:${port}`,
    LATCHKEY_PUBLIC_URL: base, LATCHKEY_BCRYPT_COST: '10' };
  const cli = (args, input) => execFileSync(bin, args, { env, input, encoding: 'utf8' });
  const serve = async () => {
    const server = spawn(bin, ['serve'], { env, stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return server; } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    server.kill('SIGTERM');
    throw new Error('server did not become ready');
  };
  return { base, env, cli, serve };
};

export const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });

// Collects Content-Security-Policy violations reported on `page`.
export const watchCsp = (page) => {
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  return violations;
};
