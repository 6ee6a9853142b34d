// The dashboard in a real Chromium against the real gateway, broker and simulated devices
// (docs/dashboard.md#tests). Screenshots of every page go to <build>/screenshots/.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';

import { DropProxy, Stack, launchBrowser, screenshotDir, until } from './stack.mjs';

const kDevices = 20;
let stack;
let browser;

// A page, logged in as the admin (a session cookie, as after the login form), that fails the
// test on any failed load, console error or CSP violation.
async function open(ctxOrBrowser, url, opts = {}) {
  const ctx = ctxOrBrowser.newContext ? null : ctxOrBrowser;
  const context = ctx ? null : await ctxOrBrowser.newContext(opts);
  if (context) await stack.login(context);
  const page = await (ctx || context).newPage();
  page.errors = [];
  page.on('response', (r) => {
    if (r.status() >= 400) page.errors.push(`${r.status()} ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) page.errors.push(m.text());
  });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  if (url) await page.goto(url);
  return page;
}

async function closePage(page) {
  const errors = page.errors;
  await page.context().close();
  assert.deepEqual(errors, [], 'no console errors or CSP violations');
}

before(async () => {
  stack = await new Stack({ devices: kDevices, intervalS: 0.5 }).start();
  browser = await launchBrowser();
  // Every simulated device has reported before a test looks.
  await until(async () => (await stack.json('/api/v1/devices?limit=1')).total >= kDevices,
    { what: `${kDevices} devices in the registry` });
});

after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

describe('dashboard', () => {
  it('serves the first view in at most 8 requests and 100 KiB compressed', async () => {
    const context = await browser.newContext();
    await stack.login(context);
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    const requests = new Map();
    cdp.on('Network.requestWillBeSent', (e) => requests.set(e.requestId, { url: e.request.url, bytes: 0 }));
    cdp.on('Network.responseReceived', (e) => {
      const r = requests.get(e.requestId);
      const headers = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
      if (r) Object.assign(r, { status: e.response.status, headers });
    });
    cdp.on('Network.dataReceived', (e) => {
      const r = requests.get(e.requestId);
      if (r) r.bytes += e.encodedDataLength;
    });
    cdp.on('Network.loadingFinished', (e) => {
      const r = requests.get(e.requestId);
      if (r) r.total = e.encodedDataLength;
    });
    await page.goto(stack.url);
    await page.waitForSelector('.vrow');
    await until(() => page.evaluate(() => window.__outpost.stream.connected), { what: 'the stream' });
    const list = [...requests.values()].filter((r) => !r.url.startsWith('data:'));
    const bytes = list.reduce((n, r) => n + (r.total ?? r.bytes), 0);
    console.log(`first view: ${list.length} requests, ${(bytes / 1024).toFixed(1)} KiB on the wire`);
    for (const r of list) console.log(`  ${r.status} ${r.url.replace(stack.url, '')} ${r.total ?? r.bytes} B`);
    assert.ok(list.length <= 8, `${list.length} requests`);
    assert.ok(bytes <= 100 * 1024, `${bytes} bytes`);
    const index = list.find((r) => r.url === `${stack.url}/`);
    assert.equal(index.headers['content-encoding'], 'gzip');
    assert.match(index.headers['content-security-policy'], /default-src 'self'/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    assert.equal(index.headers['cache-control'], 'no-cache');
    const js = list.find((r) => /\/assets\/app\.[0-9a-f]{10}\.js$/.test(r.url));
    assert.match(js.headers['cache-control'], /immutable/);
    assert.ok(list.every((r) => r.url.startsWith(stack.url)), 'nothing from another origin');
    await context.close();
  });

  it('lists the devices, and their number, live', async () => {
    const page = await open(browser, stack.url);
    await page.waitForSelector('.vrow[data-id="node-00000"]');
    await until(async () => (await page.textContent('.count')) === `${kDevices} of ${kDevices}`,
      { what: 'the device count' });
    // A device that appears after the page loaded shows up without a reload.
    stack.publish('sensors/latecomer/data', { deviceId: 'latecomer', timestamp: Date.now(), temperature: 20.5 });
    await until(async () => (await page.textContent('.count')) === `${kDevices + 1} of ${kDevices + 1}`,
      { what: 'the new device in the list' });
    await page.fill('input[type=search]', 'latecomer');
    await page.waitForSelector('.vrow[data-id="latecomer"]');
    assert.equal(await page.locator('.vrow').count(), 1);
    assert.equal(await page.textContent('.count'), `1 of ${kDevices + 1}`);
    await closePage(page);
  });

  it('cuts a long id in its middle on a phone, so its distinguishing end stays visible', async () => {
    const id = 'greenhouse-north-wing-sensor-0017';
    stack.publish(`sensors/${id}/data`, { deviceId: id, timestamp: Date.now(), temperature: 19.5 });
    const page = await open(browser, stack.url, { viewport: { width: 360, height: 640 } });
    await page.fill('input[type=search]', 'wing-sensor');
    const label = page.locator(`.vrow[data-id="${id}"] .id`);
    await label.waitFor();
    assert.equal(await label.textContent(), id);
    assert.equal(await label.getAttribute('title'), id);
    // Measured once the row is laid out: the live list may rebuild it right after the filter,
    // and a row not yet laid out measures 0 wide.
    const box = await (await page.waitForFunction((sel) => {
      const e = document.querySelector(sel);
      if (!e || e.getBoundingClientRect().width === 0) return null;
      const r = e.getBoundingClientRect();
      const t = e.querySelector('.tail').getBoundingClientRect();
      const head = e.querySelector('.head');
      return { left: r.left, right: r.right, tailLeft: t.left, tailRight: t.right,
        headCut: head.scrollWidth > head.clientWidth, tail: e.querySelector('.tail').textContent };
    }, `.vrow[data-id="${id}"] .id`)).jsonValue();
    assert.ok(box.headCut, `the id fits at 360 px (${JSON.stringify(box)}): make it longer`);
    assert.equal(box.tail, '-0017');
    assert.ok(box.tailLeft >= box.left && box.tailRight <= box.right + 0.5, `the end is hidden: ${JSON.stringify(box)}`);
    // A fleet's ordinary ids are not cut at all.
    await page.fill('input[type=search]', 'node-0000');
    const short = page.locator('.vrow[data-id="node-00003"] .id');
    await short.waitFor();
    assert.ok(await short.evaluate((e) => [e, ...e.children].every((x) => x.scrollWidth <= x.clientWidth)),
      'node-00003 is cut at 360 px');
    assert.deepEqual(page.errors, []);
    await closePage(page);
  });

  it('shows a live value change on the device page, with a chart per metric', async () => {
    const page = await open(browser, `${stack.url}/#/device/node-00001`);
    const dd = page.locator('dd[data-metric="temperature"]');
    await dd.waitFor();
    const first = await dd.textContent();
    await until(async () => (await dd.textContent()) !== first, { what: 'the temperature to change' });
    await page.waitForSelector('.chart[data-metric="temperature"] canvas');
    // The chart grows with the stream's readings (live append).
    const points = () => page.evaluate(() => window.__outpost.charts.get('temperature').data[0].length);
    const n0 = await points();
    await until(async () => (await points()) > n0, { what: 'a live point on the chart' });
    await closePage(page);
  });

  it('asks the series for the chosen range at the chart width, and zooms by dragging', async () => {
    const page = await open(browser, `${stack.url}/#/device/node-00003`);
    const series = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/series?')) series.push(new URL(r.url()).searchParams);
    });
    await page.waitForSelector('.chart[data-metric="temperature"] canvas');
    series.length = 0;
    await page.evaluate(() => { window.__oldChart = window.__outpost.charts.get('temperature'); });
    await page.click('.ranges button:has-text("24 h")');
    await until(() => series.some((q) => q.get('metric') === 'temperature'), { what: 'a 24 h series request' });
    const q = series.find((x) => x.get('metric') === 'temperature');
    assert.equal(Number(q.get('to')) - Number(q.get('from')), 86400000);
    const width = await page.evaluate(() => window.__outpost.charts.get('temperature').width);
    assert.equal(Number(q.get('points')), width);
    // Drag across the (new) chart: the range narrows to the selection, refetched at full
    // resolution.
    await until(() => page.evaluate(() => {
      const c = window.__outpost.charts.get('temperature');
      return c && c !== window.__oldChart;
    }), { what: 'the 24 h chart' });
    await page.waitForSelector('.chart[data-metric="temperature"] .u-over');
    await page.locator('.chart[data-metric="temperature"] .u-over').scrollIntoViewIfNeeded();
    const over = await page.locator('.chart[data-metric="temperature"] .u-over').boundingBox();
    series.length = 0;
    await page.mouse.move(over.x + over.width * 0.9, over.y + over.height / 2);
    await page.mouse.down();
    await page.mouse.move(over.x + over.width * 0.99, over.y + over.height / 2, { steps: 5 });
    await page.mouse.up();
    await until(() => series.some((x) => x.get('metric') === 'temperature'), { what: 'the zoomed request' });
    const z = series.find((x) => x.get('metric') === 'temperature');
    const span = Number(z.get('to')) - Number(z.get('from'));
    assert.ok(span > 0 && span < 86400000 * 0.2, `zoomed span ${span} ms`);
    await page.waitForSelector('.ranges button:has-text("Reset zoom")');
    await closePage(page);
  });

  it('keeps an acknowledgement after a reload', async () => {
    stack.publish('sensors/data', {
      deviceId: 'hot-1', timestamp: 1234, temperature: 51.5, humidity: 40, motion: false, battery: 90, rssi: -60,
    });
    const page = await open(browser, `${stack.url}/#/alerts`);
    const row = page.locator('li[data-alert^="temperature_max:hot-1:"]');
    await row.waitFor();
    await row.locator('button', { hasText: 'Ack' }).click();
    await row.waitFor({ state: 'detached' }); // it leaves the unacknowledged list
    await page.reload();
    await page.waitForSelector('#view h1');
    await page.selectOption('select[aria-label="Acknowledged"]', 'true');
    const acked = page.locator('li[data-alert^="temperature_max:hot-1:"] .acked');
    await acked.waitFor();
    assert.match(await acked.textContent(), /^acked by admin/);
    const id = await page.locator('li[data-alert^="temperature_max:hot-1:"]').getAttribute('data-alert');
    const api = await stack.json(`/api/v1/alerts/${encodeURIComponent(id)}`);
    assert.equal(api.ack.user, 'admin');
    await closePage(page);
  });

  it('resumes the stream after a dropped connection with no gap and no duplicate', async () => {
    const proxy = await new DropProxy(stack.httpPort).listen();
    try {
      const page = await open(browser, `${proxy.url}/#/devices`);
      const streamRequests = [];
      page.on('request', async (r) => {
        if (r.url().includes('/api/v1/stream')) streamRequests.push(await r.allHeaders());
      });
      await until(() => page.evaluate(() => window.__outpost.stream.ids.length > 20), { what: 'events' });
      const before = await stack.json('/api/v1/health');
      proxy.dropAll({ pause: true });
      await until(() => page.evaluate(() => !window.__outpost.stream.connected), { what: 'the drop to be seen' });
      const idsAtDrop = await page.evaluate(() => window.__outpost.stream.ids.length);
      // Events go on while the browser is cut off.
      await until(async () => (await stack.json('/api/v1/health')).stream.events >= before.stream.events + 40,
        { what: 'events during the outage' });
      proxy.resume();
      await until(() => page.evaluate(() => window.__outpost.stream.connected), { what: 'the reconnect' });
      await until(async () => (await page.evaluate(() => window.__outpost.stream.ids.length)) > idsAtDrop + 40,
        { what: 'the replay' });
      const ids = await page.evaluate(() => window.__outpost.stream.ids);
      for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, `event ${ids[i - 1]} then ${ids[i]}`);
      const after = await stack.json('/api/v1/health');
      assert.equal(after.stream.resets, before.stream.resets, 'resumed, not reset');
      assert.ok(after.stream.replayed > before.stream.replayed, 'the gateway replayed');
      assert.ok(streamRequests.some((h) => h['last-event-id']), 'the reconnect named its last id');
      await closePage(page);
    } finally {
      await proxy.close(); // a listening proxy would keep the test process alive
    }
  });

  it('acknowledges several alerts at once with one comment', async () => {
    for (const d of ['hot-2', 'hot-3']) {
      stack.publish('sensors/data', {
        deviceId: d, timestamp: 1234, temperature: 52, humidity: 40, motion: false, battery: 90, rssi: -60,
      });
    }
    const page = await open(browser, `${stack.url}/#/alerts`);
    for (const d of ['hot-2', 'hot-3']) {
      const box = page.locator(`li[data-alert^="temperature_max:${d}:"] input[type=checkbox]`);
      await box.waitFor();
      await box.check();
    }
    await page.fill('input[aria-label="Comment"]', 'both checked');
    await page.click('button:has-text("Acknowledge selected")');
    await until(async () => /^Acknowledged 2 of 2\./.test(await page.textContent('#view p[aria-live]')),
      { what: 'the bulk acknowledgement' });
    const acked = await stack.json('/api/v1/alerts?acked=true&limit=1000');
    for (const d of ['hot-2', 'hot-3']) {
      const a = acked.alerts.find((x) => x.device_id === d);
      assert.ok(a, `${d} acknowledged`);
      assert.equal(a.ack.comment, 'both checked');
    }
    await closePage(page);
  });

  it('refetches what it shows after a reset (the gateway was killed and restarted)', async () => {
    const proxy = await new DropProxy(stack.httpPort).listen();
    try {
      const page = await open(browser, `${proxy.url}/#/devices`);
      await until(() => page.evaluate(() => window.__outpost.stream.ids.length > 5), { what: 'events' });
      let devicesFetches = 0;
      page.on('request', (r) => { if (r.url().includes('/api/v1/devices?')) devicesFetches++; });
      const resets = await page.evaluate(() => window.__outpost.stream.resets);
      // A clean stop keeps the replay ring (docs/api.md, "Across a restart"); kill -9 leaves none,
      // so the next start is a new run and the browser's last id is of the old one.
      await stack.gateway.stop('SIGKILL');
      await stack.startGateway();
      // Sessions live in memory: the restart ended the page's. Log in again before the
      // proxy lets the page reach the new run.
      await stack.login(page.context());
      proxy.targetPort = stack.httpPort;
      proxy.dropAll();
      await until(async () => (await page.evaluate(() => window.__outpost.stream.resets)) > resets,
        { what: 'event: reset', timeoutMs: 30000 });
      await until(() => devicesFetches > 0, { what: 'the devices refetched' });
      await page.waitForSelector('.vrow[data-id="node-00000"]');
      await closePage(page);
    } finally {
      await proxy.close();
    }
  });

  it('follows the system theme, keeps an override, and keeps text contrast at WCAG AA', async () => {
    for (const scheme of ['light', 'dark']) {
      const page = await open(browser, `${stack.url}/#/devices`, { colorScheme: scheme });
      await page.waitForSelector('.vrow');
      const ratios = await page.evaluate(contrastReport);
      for (const r of ratios) assert.ok(r.ratio >= 4.5, `${scheme}: "${r.text}" ${r.ratio.toFixed(2)}:1`);
      await closePage(page);
    }
    const page = await open(browser, `${stack.url}/#/health`, { colorScheme: 'light' });
    await page.click('#theme'); // auto -> light
    await page.click('#theme'); // light -> dark
    await page.reload();
    await page.waitForSelector('#view h1');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(18, 20, 23)');
    await closePage(page);
  });

  it('saves screenshots of every page at three sizes in both themes', async () => {
    const dir = screenshotDir();
    const pages = [
      ['devices', '#/devices', '.vrow'], ['device', '#/device/node-00002', '.chart canvas'],
      ['alerts', '#/alerts', '#view h1'], ['health', '#/health', '.card'], ['login', '#/login', 'form.login'],
    ];
    let saved = 0;
    for (const scheme of ['light', 'dark']) {
      for (const [w, h] of [[360, 640], [768, 1024], [1440, 900]]) {
        const page = await open(browser, null, { colorScheme: scheme, viewport: { width: w, height: h } });
        for (const [name, hash, ready] of pages) {
          await page.goto(`${stack.url}/${hash}`);
          await page.waitForSelector(ready);
          await page.screenshot({ path: join(dir, `${name}-${w}x${h}-${scheme}.png`) });
          saved++;
        }
        await closePage(page);
      }
    }
    assert.equal(saved, 30);
    console.log(`screenshots: ${dir}`);
  });
});

// In the page: every visible element with its own text, its colour against the first opaque
// background behind it, as WCAG contrast ratios.
function contrastReport() {
  const parse = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (e) => {
    for (let n = e; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length) continue;
    const s = getComputedStyle(e);
    if (s.visibility === 'hidden' || Number(s.opacity) < 1 || e.disabled) continue;
    const a = lum(parse(s.color));
    const b = lum(bgOf(e));
    out.push({ text: e.textContent.trim().slice(0, 40), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) });
  }
  return out;
}
