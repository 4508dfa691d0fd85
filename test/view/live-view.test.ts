/// <reference lib="dom" />
/**
 * The live view end to end in a real browser: Debian's Chromium driven by playwright-core watches
 * a simulated live scan, sees its slice count rise, sees an alert appear, clicks it and lands on the
 * alert's slice with its box drawn. The screenshot goes to XCT_VIEW_SCREENSHOT when set (the
 * README's picture), else into the test's folder.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { startMetricsServer } from '../../src/daemon/metrics-server.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';
import { LiveView } from '../../src/view/live-view.ts';

const CHROMIUM = '/usr/bin/chromium';

t.test('a live scan in the browser: slices rise, an alert appears, a click shows it', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`);
  const root = t.testdir({ watch: {}, out: {} });
  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const view = new LiveView(join(root, 'out'));
  const stats = new DaemonStats();
  const server = await startMetricsServer({
    stats,
    port: 0,
    ready: () => true,
    routes: (q, s) => view.handle(q, s),
  });
  t.teardown(() => server.close());
  const daemon = runDaemon({
    source: watchFolder(join(root, 'watch'), { stabilityMs: 50 }),
    out: join(root, 'out'),
    model,
    sinks: [view],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
    onSliceWritten: (slice, meta) => view.sliceDone(slice, meta.expectedSlices),
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 720 } });
  const offline: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url)) offline.push(r.url());
  });
  await page.goto(`${server.url}/`);

  // The scanner starts after the page is open: everything it shows arrives live.
  const scanner = runLiveScanner({
    out: join(root, 'watch'),
    seed: 901_001,
    size: 128,
    slices: 32,
    rate: 6,
    scanId: 'view-cell',
  });
  const processed = page.locator('#scans li[data-scan="view-cell"] .processed');
  await processed.waitFor({ timeout: 60_000 });
  const first = Number(await processed.textContent());
  await page.waitForFunction(
    (n) =>
      Number(document.querySelector('#scans li[data-scan="view-cell"] .processed')?.textContent) >= n + 4,
    first,
    { timeout: 60_000 },
  );
  const later = Number(await processed.textContent());
  t.ok(later >= first + 4, `the slice count rises without a reload (${first} → ${later})`);

  const alert = page.locator('#alerts li').first();
  await alert.waitFor({ timeout: 90_000 });
  const z = Number(await alert.getAttribute('data-slice'));
  await alert.click();
  t.equal(Number(await page.inputValue('#slider')), z, `clicking the alert shows its slice (${z})`);
  t.equal(await page.textContent('#z'), String(z));
  t.ok(await page.isVisible('#box'), 'its box is drawn');
  // Both images load on their own: wait for each (a busy machine may take seconds). The check is
  // the waiting's own result: the page reloads the side view as slices arrive (a new src, width 0
  // until it loads), so looking again afterwards can catch it between two loads.
  const widths = await page
    .waitForFunction(
      () => {
        const loaded = ['image', 'mipxz'].map((id) => {
          const img = document.getElementById(id) as HTMLImageElement;
          return img.complete ? img.naturalWidth : 0;
        });
        return loaded.every((w) => w === 128) ? loaded : false;
      },
      undefined,
      { timeout: 60_000 },
    )
    .then((handle) => handle.jsonValue());
  t.same(widths, [128, 128], 'the slice and the x–z side view are drawn');
  const shot = process.env.XCT_VIEW_SCREENSHOT ?? join(root, 'live-view.png');
  await page.screenshot({ path: shot });
  t.ok(existsSync(shot), `screenshot saved: ${shot}`);
  t.same(offline, [], 'the page asks nothing of any other server');

  await scanner;
  await daemon;
});
