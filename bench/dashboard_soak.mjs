// The dashboard's soak (issue 11): live device pages holding 20 charts in a real headless
// Chromium, fed for --minutes by the real gateway, Mosquitto and outpost-node at 10x the local
// stack's event rate (run-local's 50 devices at one reading a second each, here every 0.1 s:
// 500 readings/s). Every --sample-s seconds each page's JS heap is measured after a forced
// garbage collection (CDP HeapProfiler.collectGarbage, then Runtime.getHeapUsage); the result is
// the growth from the first sample (after --warmup-s, the charts' windows full) to the last,
// against the target of 10 MB, and a least-squares slope in MB per hour. The pages must still be
// live at the end (their charts took points in the last interval), and must have logged no error.
//
// Usage (from build/release, after a build):
//   OUTPOST_BINARY_DIR=$PWD OUTPOST_WEB_NODE_MODULES=$PWD/web/node_modules \
//     node ../../bench/dashboard_soak.mjs [--minutes 30] [--sample-s 60] [--charts 20]
//     [--devices 50] [--interval-s 0.1] [--warmup-s 60] [--json]
import { loadavg } from 'node:os';

import { Stack, launchBrowser, until } from '../tests/browser/stack.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: dashboard_soak.mjs [--minutes 30] [--sample-s 60] [--charts 20] [--devices 50] '
    + '[--interval-s 0.1] [--warmup-s 60] [--json]   (docs/benchmarks.md#dashboard-soak)');
  process.exit(0);
}
const minutes = opt('--minutes', 30);
const sampleS = opt('--sample-s', 60);
const charts = opt('--charts', 20);
const devices = opt('--devices', 50);
const intervalS = opt('--interval-s', 0.1);
const warmupS = opt('--warmup-s', 60);
const asJson = args.includes('--json');
const kTargetMb = 10;
for (const [name, v, lo, hi] of [['--minutes', minutes, 1, 24 * 60], ['--sample-s', sampleS, 5, 3600],
  ['--charts', charts, 1, 200], ['--devices', devices, 1, 10000], ['--interval-s', intervalS, 0.01, 60],
  ['--warmup-s', warmupS, 0, 3600]]) {
  if (!Number.isFinite(v) || v < lo || v > hi) {
    console.error(`dashboard_soak: ${name} must be a number in ${lo}..${hi}, got ${v}`);
    process.exit(2);
  }
}

const mb = (bytes) => bytes / (1024 * 1024);

// Least-squares slope of y over x.
function slope(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : 0;
}

// Points held by each of the page's live charts, and the time of each one's newest.
const chartPoints = (page) => page.evaluate(() => [...window.__outpost.charts.values()].map((c) => c.data[0].length));
const lastPoints = (page) => page.evaluate(() => [...window.__outpost.charts.values()].map((c) => c.data[0].at(-1) ?? 0));

async function main() {
  const stack = await new Stack({ devices, intervalS }).start();
  const browser = await launchBrowser();
  const pages = [];
  const samples = [];  // { t_s, heaps: [bytes per page] }
  let liveAtEnd = false;
  try {
    await until(async () => (await stack.json('/api/v1/devices?limit=1')).total >= devices,
      { what: `${devices} devices`, timeoutMs: 60000 });
    // Device pages until they hold `charts` live charts (one per metric of the device).
    let held = 0;
    for (let d = 0; held < charts && d < devices; d++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await stack.login(context);
      const page = await context.newPage();
      page.errors = [];
      page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
      page.on('pageerror', (e) => page.errors.push(String(e)));
      await page.goto(`${stack.url}/#/device/node-${String(d).padStart(5, '0')}`);
      await page.waitForSelector('.chart canvas');
      await until(async () => (await chartPoints(page)).length > 0, { what: 'the charts to be live' });
      const cdp = await context.newCDPSession(page);
      await cdp.send('HeapProfiler.enable');
      const n = (await chartPoints(page)).length;
      held += n;
      pages.push({ context, page, cdp, charts: n });
    }
    if (held < charts) throw new Error(`only ${held} charts on ${pages.length} pages`);
    const rate = devices / intervalS;
    console.error(`soak: ${pages.length} pages, ${held} live charts, ${rate.toFixed(0)} readings/s offered, `
      + `${minutes} min, a heap sample every ${sampleS} s`);
    // Warm-up: the pages' code compiled, their caches and the charts' windows at working size.
    await new Promise((r) => setTimeout(r, warmupS * 1000));
    const start = Date.now();
    const end = start + minutes * 60000;
    for (;;) {
      const heaps = [];
      for (const p of pages) {
        await p.cdp.send('HeapProfiler.collectGarbage');
        heaps.push((await p.cdp.send('Runtime.getHeapUsage')).usedSize);
      }
      const tS = (Date.now() - start) / 1000;
      samples.push({ t_s: tS, heaps });
      const total = heaps.reduce((a, b) => a + b, 0);
      console.error(`soak: ${(tS / 60).toFixed(1)} min  heap after GC ${mb(total).toFixed(2)} MB `
        + `(${heaps.map((h) => mb(h).toFixed(2)).join(' / ')})  load ${loadavg()[0].toFixed(1)}`);
      if (Date.now() >= end) break;
      const before = await Promise.all(pages.map((p) => lastPoints(p.page)));
      await new Promise((r) => setTimeout(r, Math.min(sampleS * 1000, Math.max(0, end - Date.now()))));
      // Still live: every page's charts took a newer point since the last sample (their windows
      // are full, so they do not grow).
      const after = await Promise.all(pages.map((p) => lastPoints(p.page)));
      liveAtEnd = after.every((ts, i) => ts.some((t, j) => t > before[i][j]));
    }
  } finally {
    for (const p of pages) await p.context.close();
    await browser.close();
    await stack.stop();
  }
  const total = (s) => s.heaps.reduce((a, b) => a + b, 0);
  const first = samples[0];
  const last = samples[samples.length - 1];
  const growthMb = mb(total(last) - total(first));
  const perPageGrowth = first.heaps.map((h, i) => mb(last.heaps[i] - h));
  const slopeMbH = slope(samples.map((s) => s.t_s / 3600), samples.map((s) => mb(total(s))));
  const errors = pages.flatMap((p) => p.page.errors);
  const result = {
    minutes, charts, pages: pages.length, readings_per_s: devices / intervalS, samples: samples.length,
    heap_first_mb: mb(total(first)), heap_last_mb: mb(total(last)), growth_mb: growthMb,
    growth_per_page_mb: perPageGrowth, slope_mb_per_h: slopeMbH, live_at_end: liveAtEnd, errors,
    target_mb: kTargetMb, met: growthMb <= kTargetMb && liveAtEnd && errors.length === 0,
  };
  if (asJson) {
    console.log(JSON.stringify({ ...result, series: samples }, null, 2));
  } else {
    console.log(`dashboard_soak: ${minutes} min, ${result.pages} pages with ${charts}+ live charts, `
      + `${result.readings_per_s.toFixed(0)} readings/s`);
    console.log(`  JS heap after GC, all pages: ${result.heap_first_mb.toFixed(2)} MB at the first sample, `
      + `${result.heap_last_mb.toFixed(2)} MB at the last: growth ${growthMb.toFixed(2)} MB `
      + `(${(growthMb / kTargetMb).toFixed(2)} of the ${kTargetMb} MB target); slope ${slopeMbH.toFixed(2)} MB/h`);
    console.log(`  per page: ${perPageGrowth.map((g) => g.toFixed(2)).join(' / ')} MB; `
      + `live at the end: ${liveAtEnd}; page errors: ${errors.length}`);
    console.log(`  ${result.met ? 'met' : 'MISSED'}`);
  }
  if (!result.met) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
