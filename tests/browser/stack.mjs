// A real Outpost stack for the browser tests and the dashboard benchmark: Mosquitto on a free
// loopback port, the built outpost-gateway (its own SQLite file, HTTP on a port it picks and
// logs) and outpost-node simulating devices; plus headless Chromium through playwright-core.
// Everything waits on conditions (a port accepting, a log line, an HTTP answer), never a sleep.
//
// Environment: OUTPOST_BINARY_DIR (build/release), OUTPOST_WEB_NODE_MODULES (the npm packages
// of web/, where playwright-core is), OUTPOST_CHROMIUM (default /usr/bin/chromium).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const binaryDir = resolve(process.env.OUTPOST_BINARY_DIR || 'build/release');
const nodeModules = process.env.OUTPOST_WEB_NODE_MODULES || join(binaryDir, 'web', 'node_modules');

export function playwright() {
  return createRequire(join(nodeModules, 'noop.js'))('playwright-core');
}

export async function launchBrowser() {
  const { chromium } = playwright();
  const args = ['--disable-dev-shm-usage', '--disable-gpu'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({
    executablePath: process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium', headless: true, args,
  });
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

// Resolves when `fn()` returns a truthy value (re-tried every `everyMs`), else rejects after
// `timeoutMs` with `what`.
export async function until(fn, { timeoutMs = 20000, everyMs = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function canConnect(port) {
  return new Promise((ok) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); ok(true); });
    c.once('error', () => ok(false));
  });
}

class Child {
  constructor(name, cmd, args, logFile) {
    this.name = name;
    this.output = '';
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((ok) => this.proc.once('exit', (code, sig) => ok({ code, sig })));
    const keep = (b) => {
      this.output += b.toString();
      if (this.output.length > 1 << 20) this.output = this.output.slice(-(1 << 19));
      if (logFile) writeFileSync(logFile, this.output);
    };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
  }

  async stop(signal = 'SIGTERM', timeoutMs = 20000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

export class Stack {
  // devices: simulated devices (outpost-node), interval_s: each one's sampling interval.
  constructor({ devices = 20, intervalS = 0.5, gatewayYaml = '' } = {}) {
    this.devices = devices;
    this.intervalS = intervalS;
    this.gatewayYaml = gatewayYaml;
    this.dir = mkdtempSync(join(tmpdir(), 'outpost-browser-'));
    this.children = [];
  }

  async start() {
    this.mqttPort = await freePort();
    writeFileSync(join(this.dir, 'mosquitto.conf'), [
      `listener ${this.mqttPort} 127.0.0.1`, 'allow_anonymous true',
      'max_inflight_messages 10000', 'max_queued_messages 1000000',
      ...(process.getuid && process.getuid() === 0 ? ['user root'] : []), '',
    ].join('\n'));
    this.broker = this.spawn('mosquitto', 'mosquitto', ['-c', join(this.dir, 'mosquitto.conf')]);
    await until(() => canConnect(this.mqttPort), { what: 'mosquitto to listen' });

    writeFileSync(join(this.dir, 'gateway.yaml'), [
      'gateway:', '  id: gw_browser', '  status_interval_s: 2',
      'mqtt:', '  host: 127.0.0.1', `  port: ${this.mqttPort}`,
      'storage:', `  path: ${join(this.dir, 'gateway.db')}`,
      'http:', '  listen: 127.0.0.1:0',
      this.gatewayYaml, '',
    ].join('\n'));
    // An admin API token for the test's own requests (json()); pages log in with a session.
    const token = spawnSync(join(binaryDir, 'gateway/outpost-gateway'),
      ['--config', join(this.dir, 'gateway.yaml'), 'token', 'create', '--role', 'admin', '--name', 'browser-test']);
    if (token.status !== 0) throw new Error(`token create: ${token.stderr}`);
    this.token = String(token.stdout).trim();
    await this.startGateway();
    if (this.devices > 0) {
      this.node = this.spawn('outpost-node', join(binaryDir, 'devices/host/outpost-node'), [
        '--broker', `127.0.0.1:${this.mqttPort}`, '--devices', String(this.devices),
        '--interval', String(this.intervalS), '--qos', '1', '--mode', 'native',
        '--duration', '3600', '--id-prefix', 'node-', '--seed', '7', '--progress', '0',
      ]);
    }
    return this;
  }

  async startGateway() {
    this.gateway = this.spawn('outpost-gateway', join(binaryDir, 'gateway/outpost-gateway'),
      ['--config', join(this.dir, 'gateway.yaml')]);
    const gw = this.gateway;
    const port = await until(() => {
      if (gw.proc.exitCode !== null) throw new Error(`gateway exited: ${gw.output.slice(-2000)}`);
      const m = gw.output.match(/http api listening on http:\/\/127\.0\.0\.1:(\d+)/);
      return m && Number(m[1]);
    }, { what: 'the gateway to log its HTTP port' });
    this.httpPort = port;
    this.url = `http://127.0.0.1:${port}`;
    await until(async () => (await fetch(`${this.url}/healthz`)).ok, { what: '/healthz' });
  }

  spawn(name, cmd, args) {
    const c = new Child(name, cmd, args, join(this.dir, `${name}.log`));
    this.children.push(c);
    return c;
  }

  // Publishes as a device would (mosquitto_pub, QoS 1).
  publish(topic, payload) {
    const r = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort), '-q', '1',
      '-t', topic, '-m', typeof payload === 'string' ? payload : JSON.stringify(payload)]);
    if (r.status !== 0) throw new Error(`mosquitto_pub: ${r.stderr}`);
  }

  // The password of the admin the first start made (the 0600 file next to the database).
  adminPassword() {
    return readFileSync(join(this.dir, 'admin-password'), 'utf8').trim();
  }

  // Logs a browser context in as `user` (the admin by default): its pages share the cookie.
  async login(context, user = 'admin', password = this.adminPassword()) {
    const r = await context.request.post(`${this.url}/api/v1/auth/login`, { data: { user, password } });
    if (!r.ok()) throw new Error(`login ${user}: ${r.status()} ${await r.text()}`);
    return r.json();
  }

  async json(path, init = {}) {
    const headers = { Authorization: `Bearer ${this.token}`, ...(init.headers || {}) };
    const r = await fetch(`${this.url}${path}`, { ...init, headers });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  }

  async stop({ keep = false } = {}) {
    for (const c of [...this.children].reverse()) await c.stop();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

// A TCP proxy in front of the gateway: the browser talks to it, and dropAll() cuts every
// connection at once, as a flaky network would (EventSource then reconnects by itself).
// `targetPort` may change (a restarted gateway picks a new port).
export class DropProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.paused = false;
    this.server = net.createServer((client) => {
      if (this.paused) return client.destroy();
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  listen() {
    return new Promise((ok) => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      this.url = `http://127.0.0.1:${this.port}`;
      ok(this);
    }));
  }

  // Cuts every open connection; while `paused`, new ones are refused too.
  dropAll({ pause = false } = {}) {
    this.paused = pause;
    for (const s of this.sockets) s.destroy();
  }

  resume() {
    this.paused = false;
  }

  close() {
    this.dropAll();
    return new Promise((ok) => this.server.close(ok));
  }
}

export function screenshotDir() {
  const d = join(binaryDir, 'screenshots');
  mkdirSync(d, { recursive: true });
  return d;
}
