// The dashboard's login and commands in a real Chromium against the real gateway, broker and
// simulated devices (issue 11): the login form, a wrong password, logout; a command's states and
// reply; a viewer's 403.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Stack, binaryDir, launchBrowser, until } from './stack.mjs';

let stack;
let browser;

// The first start writes the admin's random password to a 0600 file next to the database.
const adminPassword = () => stack.adminPassword();

function addUser(name, role, password) {
  const r = spawnSync(join(binaryDir, 'gateway/outpost-gateway'),
    ['user', 'add', name, '--role', role, '--password-stdin', '--config', join(stack.dir, 'gateway.yaml')],
    { input: `${password}\n` });
  assert.equal(r.status, 0, `user add: ${r.stderr}`);
}

async function signIn(page, user, password) {
  await page.goto(`${stack.url}/#/devices`);
  await page.waitForSelector('form.login'); // a 401 from the API shows the login view
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('.vrow');
}

before(async () => {
  stack = await new Stack({ devices: 3, intervalS: 0.5 }).start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

describe('dashboard with logins and commands', () => {
  it('asks for a login, refuses a wrong password, signs in and out', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(stack.url);
    await page.waitForSelector('form.login');
    await page.fill('input[name=user]', 'admin');
    await page.fill('input[name=password]', 'wrong');
    await page.click('form.login button[type=submit]');
    await until(async () => (await page.textContent('form.login .error')) === 'Wrong user or password.',
      { what: 'the refusal' });
    await signIn(page, 'admin', await adminPassword());
    assert.match(await page.textContent('#user'), /admin \(admin\)/);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'outpost_session');
    assert.ok(session && session.httpOnly && session.sameSite === 'Lax');
    await page.click('#user button');
    await page.waitForSelector('form.login');
    await page.goto(`${stack.url}/#/alerts`);
    await page.waitForSelector('form.login'); // signed out: the API answers 401 again
    await page.context().close();
  });

  it('shows a command going through its states with the reply', async () => {
    const page = await (await browser.newContext()).newPage();
    await signIn(page, 'admin', await adminPassword());
    await page.goto(`${stack.url}/#/device/node-00000`);
    await page.fill('form.cmd input[name=command]', 'setSensorInterval');
    await page.fill('form.cmd input[name=params]', '{"interval": 3000}');
    await page.click('form.cmd button[type=submit]');
    const item = page.locator('ul.commands li').first();
    await until(async () => (await item.locator('.state').textContent()) === 'succeeded',
      { what: 'the command to succeed' });
    assert.match(await item.locator('.reply').textContent(), /"ok":true/);
    const states = await item.locator('details li').allTextContents();
    assert.deepEqual(states.map((s) => s.split(' ')[0]), ['queued', 'sent', 'delivered', 'succeeded']);
    await page.context().close();
  });

  it("gives a viewer 403 on commands and acks, and the page says so", async () => {
    addUser('vera', 'viewer', 'vera-password-123');
    const page = await (await browser.newContext()).newPage();
    await signIn(page, 'vera', 'vera-password-123');
    await page.goto(`${stack.url}/#/device/node-00000`);
    await page.waitForSelector('form.cmd');
    assert.ok(await page.isDisabled('form.cmd button[type=submit]'));
    assert.match(await page.textContent('#view'), /Viewers cannot send commands/);
    // The API refuses it too, whatever the page shows.
    const status = await page.evaluate(async () => {
      const me = await (await fetch('/api/v1/auth/me')).json();
      const r = await fetch('/api/v1/devices/node-00000/commands', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf },
        body: JSON.stringify({ command: 'get_status' }),
      });
      return r.status;
    });
    assert.equal(status, 403);
    await page.context().close();
  });
});
