// The dashboard's targets (issue 11) in a real headless Chromium against the real gateway,
// Mosquitto and outpost-node: first contentful paint, a 1,000,000-point chart's draw, a live
// point's append, a filter over 10,000 devices, and the first view's bytes and requests; each
// plain and at 4x CPU throttling (CDP Emulation.setCPUThrottlingRate, standing in for a Pi).
// Prints medians and each as a share of its target (docs/benchmarks.md#dashboard).
//
// Usage (from build/release, after a build):
//   OUTPOST_BINARY_DIR=$PWD OUTPOST_WEB_NODE_MODULES=$PWD/web/node_modules \
//     node ../../bench/dashboard_bench.mjs [--repeat N] [--devices N] [--json]
import { Stack, launchBrowser, until } from '../tests/browser/stack.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const repeat = opt('--repeat', 5);
const devices = opt('--devices', 1000);
const asJson = args.includes('--json');

// Targets from issue 11: [plain, 4x] (ms); null where it sets none.
const kTargets = {
  fcp_ms: [300, 800],
  devices_listed_ms: [null, 1000],
  chart_1m_draw_ms: [250, 600],
  chart_1m_buckets_draw_ms: [250, 600],
  live_append_ms: [4, null],
  filter_10k_ms: [100, null],
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

let stack;

// A page logged in as the admin (a session cookie, as after the login form).
async function newPage(browser, throttle, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  await stack.login(context);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: throttle });
  return { context, page, cdp };
}

async function fcp(browser, url, throttle) {
  const { context, page, cdp } = await newPage(browser, throttle);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.requestWillBeSent', (e) => { if (!e.request.url.startsWith('data:')) requests++; });
  cdp.on('Network.dataReceived', (e) => { bytes += e.encodedDataLength; });
  await page.goto(url);
  await page.waitForSelector('.vrow');
  // Every device listed: from navigation start until the list shows them all.
  await page.waitForFunction((n) => {
    const c = document.querySelector('.count');
    return c && Number(c.textContent.split(' ')[0]) >= n;
  }, devices);
  // The app marks the first render that shows the loaded list (polling from here adds a frame
  // or more of latency at 4x).
  const listed = await page.evaluate(() => performance.getEntriesByName('outpost:devices-listed')[0].startTime);
  const ms = await page.evaluate(() => new Promise((ok) => {
    const e = performance.getEntriesByName('first-contentful-paint')[0];
    if (e) return ok(e.startTime);
    new PerformanceObserver((l) => ok(l.getEntries()[0].startTime)).observe({ type: 'paint', buffered: true });
  }));
  await context.close();
  return { ms, bytes, requests, listed };
}

// In the page: one chart of `n` points, timed from the call to the end of its first draw; raw
// points (one line), or as many buckets (avg line and min/max band: three columns drawn).
async function chartDraw(page, n, buckets = false) {
  return page.evaluate(async ([count, asBuckets]) => {
    const { makeChart } = await window.__outpost.loadCharts();
    const t = new Float64Array(count);
    const v = new Float64Array(count);
    const t0 = Date.now() - count * 1000;
    for (let i = 0; i < count; i++) {
      t[i] = t0 + i * 1000;
      v[i] = 20 + 5 * Math.sin(i / 5000) + ((i * 7919) % 100) / 100;
    }
    const box = document.createElement('div');
    document.body.append(box);
    const start = performance.now();
    const ms = await new Promise((ok) => {
      let chart = null;
      chart = makeChart(box, {
        title: 'bench', width: 1200, data: asBuckets ? [t, v, v, v] : [t, v],
        onDraw: () => ok(performance.now() - start),
      });
      window.__benchChart = chart;
    });
    window.__benchChart.destroy();
    box.remove();
    return ms;
  }, [n, buckets]);
}

// In the page: a live chart as the device page holds it (one bucket per pixel, 1,200 wide);
// each append timed to the end of its draw; the median of `n`.
async function liveAppend(page, n) {
  return page.evaluate(async (count) => {
    const { makeChart, appendPoint } = await window.__outpost.loadCharts();
    const w = 1200;
    const t0 = Date.now() - w * 3000;
    const cols = [[], [], [], []];
    for (let i = 0; i < w; i++) {
      cols[0].push(t0 + i * 3000);
      for (const c of [1, 2, 3]) cols[c].push(20 + Math.sin(i / 50));
    }
    const box = document.createElement('div');
    document.body.append(box);
    let done = null;
    const chart = makeChart(box, { title: 'live', width: w, data: cols, onDraw: () => done && done() });
    await new Promise((ok) => { done = ok; });
    const times = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await new Promise((ok) => {
        done = ok;
        appendPoint(chart, t0 + (w + i) * 3000, 20 + Math.random(), w * 2);
      });
      times.push(performance.now() - start);
    }
    chart.destroy();
    box.remove();
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  }, n);
}

// In the page: filterDevices over 10,000 devices (a text filter that keeps 1,000, sorted by id;
// and by last seen), the median of 21.
async function filter10k(page) {
  return page.evaluate(() => {
    const statuses = ['online', 'offline', 'sleeping', 'never_seen'];
    const list = [];
    for (let i = 0; i < 10000; i++) {
      const id = `node-${String((i * 7919) % 10000).padStart(5, '0')}`;
      list.push({ id, status: statuses[i % 4], last_seen_ms: Date.now() - i * 1000, last_reading: { temperature: 20 } });
    }
    const times = [];
    for (let r = 0; r < 21; r++) {
      const start = performance.now();
      const a = window.__outpost.filterDevices(list, { text: 'node-01', sort: 'id' });
      const b = window.__outpost.filterDevices(list, { text: '', status: 'online', sort: 'last_seen' });
      times.push(performance.now() - start);
      if (a.length !== 1000 || b.length !== 2500) throw new Error('filter is wrong');
    }
    times.sort((x, y) => x - y);
    return times[10];
  });
}

async function main() {
  // About 200 readings a second from all of them together: the page works while they arrive.
  stack = await new Stack({ devices, intervalS: Math.max(1, devices / 200) }).start();
  const browser = await launchBrowser();
  const results = {};
  try {
    await until(async () => (await stack.json('/api/v1/devices?limit=1')).total >= devices,
      { what: `${devices} devices`, timeoutMs: 60000 });
    for (const throttle of [1, 4]) {
      const runs = { fcp_ms: [], devices_listed_ms: [], chart_1m_draw_ms: [], chart_1m_buckets_draw_ms: [], live_append_ms: [], filter_10k_ms: [], first_view_bytes: [], first_view_requests: [] };
      for (let i = 0; i < repeat; i++) {
        const f = await fcp(browser, stack.url, throttle);
        runs.fcp_ms.push(f.ms);
        runs.devices_listed_ms.push(f.listed);
        runs.first_view_bytes.push(f.bytes);
        runs.first_view_requests.push(f.requests);
        const { context, page } = await newPage(browser, throttle);
        await page.goto(stack.url);
        await page.waitForSelector('.vrow');
        runs.chart_1m_draw_ms.push(await chartDraw(page, 1000000));
        runs.chart_1m_buckets_draw_ms.push(await chartDraw(page, 1000000, true));
        runs.live_append_ms.push(await liveAppend(page, 50));
        runs.filter_10k_ms.push(await filter10k(page));
        await context.close();
      }
      results[`${throttle}x`] = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { median: median(v), runs: v }]));
    }
  } finally {
    await browser.close();
    await stack.stop();
  }
  if (asJson) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  console.log(`dashboard_bench: ${repeat} runs each, ${devices} simulated devices, chromium headless`);
  console.log('| measure | plain (median) | target | share | 4x CPU (median) | target | share |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [k, [t1, t4]] of Object.entries(kTargets)) {
    const a = results['1x'][k].median;
    const b = results['4x'][k].median;
    const share = (v, t) => (t ? (v / t).toFixed(2) : '—');
    console.log(`| ${k} | ${a.toFixed(2)} | ${t1 ?? '—'} | ${share(a, t1)} | ${b.toFixed(2)} | ${t4 ?? '—'} | ${share(b, t4)} |`);
  }
  const kb = results['1x'].first_view_bytes.median / 1024;
  console.log(`| first view KiB (compressed, on the wire) | ${kb.toFixed(1)} | 100 | ${(kb / 100).toFixed(2)} | | | |`);
  const rq = results['1x'].first_view_requests.median;
  console.log(`| first view requests | ${rq} | 8 | ${(rq / 8).toFixed(2)} | | | |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
