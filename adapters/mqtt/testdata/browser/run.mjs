// Runs page.html's scenario in headless Chromium (Debian's, through
// playwright-core) against the wss:// URL in argv[2], trusting only the
// server key whose SPKI hash (base64 of SHA-256) is argv[3]; argv[4], when
// given, is a wss:// URL whose certificate is not trusted. Prints the
// scenario's result as one JSON line.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [url, spki, badURL] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const profile = mkdtempSync(join(tmpdir(), 'iotgw-chromium-'));
let ctx;
try {
  // --ignore-certificate-errors-spki-list trusts exactly that key; Chromium
  // honours it only with a --user-data-dir, which the persistent context
  // passes (its profile). Every other certificate error still fails.
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spki}`],
  });
  const page = await ctx.newPage();
  page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  await page.goto(pathToFileURL(join(here, 'page.html')).href);
  const result = await page.evaluate(([u, b]) => window.runScenario(u, b), [url, badURL || '']);
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (e) {
  process.stderr.write(`browser scenario failed: ${e.stack || e}\n`);
  process.exitCode = 1;
} finally {
  if (ctx) await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
