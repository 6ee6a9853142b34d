// The gateway's HTTP API and live stream as the dashboard uses them (docs/api.md).
// Same origin only, cookies included; writes carry the session's CSRF token.

const listeners = new Map();

export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}

export function emit(event, data) {
  for (const fn of listeners.get(event) || []) fn(data);
}

// The signed-in user: {user, role, csrf}; `auth` false when the gateway has no logins
// (no /api/v1/auth/me route), in which case every page works without one.
export const session = { user: null, role: null, csrf: '', auth: true, known: false };

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function problem(res) {
  let code = '';
  let detail = '';
  try {
    const j = await res.json();
    code = (j.error && j.error.code) || '';
    detail = j.detail || (j.error && j.error.message) || '';
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(res.status, code, detail || `${res.status} ${res.statusText}`);
}

// fetch() for the API: JSON in and out, problem+json turned into ApiError, and a 401 sends the
// user to the login view (event "unauthorized").
export async function api(path, { method = 'GET', body, headers = {}, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) h['X-CSRF-Token'] = session.csrf;
  const res = await fetch(path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    signal,
  });
  if (res.status === 401) {
    const err = await problem(res);
    if (path !== '/api/v1/auth/login') emit('unauthorized', err);
    throw err;
  }
  if (!res.ok) throw await problem(res);
  if (res.status === 204) return null;
  return res.json();
}

export async function loadSession() {
  try {
    const me = await api('/api/v1/auth/me');
    Object.assign(session, me, { auth: true, known: true });
  } catch (e) {
    if (e.status === 404) {
      // No logins on this gateway: everyone may do everything the API allows.
      Object.assign(session, { user: null, role: 'admin', csrf: '', auth: false, known: true });
    } else if (e.status === 401) {
      Object.assign(session, { user: null, role: null, csrf: '', auth: true, known: true });
    } else {
      throw e;
    }
  }
  emit('session', session);
  return session;
}

export async function login(user, password) {
  const me = await api('/api/v1/auth/login', { method: 'POST', body: { user, password } });
  Object.assign(session, me, { auth: true, known: true });
  emit('session', session);
  return session;
}

export async function logout() {
  try {
    await api('/api/v1/auth/logout', { method: 'POST' });
  } finally {
    Object.assign(session, { user: null, role: null, csrf: '' });
    emit('session', session);
  }
}

export const canWrite = () => !session.auth || session.role === 'operator' || session.role === 'admin';

// Every device, a page of 1,000 at a time.
export async function allDevices() {
  const out = [];
  let cursor = null;
  do {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page = await api(`/api/v1/devices?limit=1000${q}`);
    out.push(...page.devices);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

// The live stream: one EventSource for the whole app. The browser reconnects by itself and
// sends Last-Event-ID, so the gateway replays what was missed; `reset` means it could not (the
// id is too old or from another run) and every page refetches. When the browser gives up
// (the stream answered an error), we reconnect with ?last_event_id= after a pause.
export const stream = {
  source: null,
  lastId: '',
  connected: false,
  received: 0,
  resets: 0, // `event: reset`s received (the gateway could not replay)
  ids: [], // the n of the last ids received (tests check for gaps), bounded
  maxIds: 20000,
  retryTimer: 0,
};

const kStreamEvents = ['reading', 'device', 'alert', 'health', 'command', 'reset'];

function track(e) {
  if (e.lastEventId) {
    stream.lastId = e.lastEventId;
    const n = Number(e.lastEventId.slice(e.lastEventId.lastIndexOf('-') + 1));
    stream.ids.push(n);
    if (stream.ids.length > stream.maxIds) stream.ids.splice(0, stream.ids.length - stream.maxIds);
  }
  stream.received++;
}

export function openStream() {
  clearTimeout(stream.retryTimer);
  if (stream.source) stream.source.close();
  const q = stream.lastId ? `?last_event_id=${encodeURIComponent(stream.lastId)}` : '';
  const es = new EventSource(`/api/v1/stream${q}`, { withCredentials: true });
  stream.source = es;
  es.onopen = () => {
    stream.connected = true;
    emit('stream', true);
  };
  es.onerror = () => {
    stream.connected = false;
    emit('stream', false);
    if (es.readyState === EventSource.CLOSED) {
      stream.retryTimer = setTimeout(openStream, 3000);
    }
  };
  for (const type of kStreamEvents) {
    es.addEventListener(type, (e) => {
      track(e);
      if (type === 'reset') stream.resets++;
      let data = null;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      emit(type, data);
    });
  }
}
