// The gateway's API as the web app uses it. The access token lives in this module's memory
// only; the refresh token is an HttpOnly cookie the page never sees (X-Aira-Client: web).
// A reload restores the session by one refresh (when the aira_session hint cookie says there
// is one), refreshes are serialised across tabs (Web Locks) so two tabs never present the same
// refresh token, and token_reused ends the session cleanly everywhere.

const WEB = { 'X-Aira-Client': 'web' };
let session = null; // {accessToken, expiresAt, user}
let refreshing = null;
let renewTimer = null;
const listeners = new Set();
const channel = 'BroadcastChannel' in window ? new BroadcastChannel('aira-session') : null;

export class APIError extends Error {
  constructor(status, code, message, details, headers) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.headers = headers;
  }
}

export function currentUser() { return session ? session.user : null; }
export function accessToken() { return session ? session.accessToken : null; }
export function onSessionChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function notify(reason) { for (const fn of listeners) fn(currentUser(), reason); }

function hasSessionCookie() { return document.cookie.split(';').some((c) => c.trim().startsWith('aira_session=1')); }

function setSession(body, reason) {
  session = { accessToken: body.accessToken, expiresAt: Date.now() + body.expiresIn * 1000, user: body.user };
  clearTimeout(renewTimer);
  // Renew a minute before the access token expires (at least 10 s from now).
  renewTimer = setTimeout(() => refresh().catch(() => {}), Math.max(10_000, body.expiresIn * 1000 - 60_000));
  notify(reason);
}

export function endSession(reason) {
  const had = session !== null;
  session = null;
  clearTimeout(renewTimer);
  if (had || reason) notify(reason || 'logged_out');
}

channel?.addEventListener('message', (e) => {
  if (e.data === 'logout' && session) endSession('logged_out_elsewhere');
});

async function parse(response) {
  const type = response.headers.get('Content-Type') || '';
  const body = type.includes('application/json') ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const err = body && body.error ? body.error : { code: 'http_' + response.status, message: response.statusText || 'request failed' };
    throw new APIError(response.status, err.code, err.message, err.details, response.headers);
  }
  return body;
}

/** Exchanges the cookie for a new access token; one at a time, across tabs. */
export function refresh() {
  if (refreshing) return refreshing;
  const run = async () => {
    const response = await fetch('/api/auth/refresh', { method: 'POST', headers: WEB, credentials: 'same-origin' });
    try {
      setSession(await parse(response), 'refreshed');
      return true;
    } catch (e) {
      if (e instanceof APIError && (e.status === 401 || e.status === 403)) {
        endSession(e.code === 'token_reused' ? 'token_reused' : e.code === 'account_suspended' ? 'suspended' : 'expired');
        return false;
      }
      throw e;
    }
  };
  refreshing = (navigator.locks ? navigator.locks.request('aira-refresh', run) : run()).finally(() => { refreshing = null; });
  return refreshing;
}

/** On load: a session from the cookie, if the hint says there is one. */
export async function restore() {
  if (!hasSessionCookie()) { notify('anonymous'); return false; }
  try { return await refresh(); } catch { notify('anonymous'); return false; }
}

/**
 * A JSON call. `auth`: send the access token (and refresh once on an expired one).
 * Returns the parsed body (null for 204).
 */
export async function api(path, { method = 'GET', body, auth = true, headers = {}, signal } = {}) {
  const send = () => {
    const h = { ...headers };
    if (path.startsWith('/api/auth/')) Object.assign(h, WEB);
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (auth && session) h.Authorization = 'Bearer ' + session.accessToken;
    return fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', signal });
  };
  if (auth && session && session.expiresAt - Date.now() < 5_000) await refresh().catch(() => {});
  let response = await send();
  if (response.status === 401 && auth && session) {
    if (await refresh()) response = await send();
  }
  if (response.status === 204) return null;
  return parse(response);
}

export async function login(email, password) {
  setSession(await api('/api/auth/login', { method: 'POST', body: { email, password }, auth: false }), 'logged_in');
}

export async function logout(everywhere = false) {
  try {
    await api(everywhere ? '/api/auth/logout-all' : '/api/auth/logout', { method: 'POST' });
  } finally {
    channel?.postMessage('logout');
    endSession('logged_out');
  }
}

export async function changePassword(currentPassword, newPassword) {
  const changed = await api('/api/auth/password', { method: 'POST', body: { currentPassword, newPassword } });
  setSession(changed.session, 'password_changed');
  return changed;
}

/** Headers for a call the page makes itself (streams, uploads). */
export async function authHeaders() {
  if (session && session.expiresAt - Date.now() < 5_000) await refresh().catch(() => {});
  return session ? { Authorization: 'Bearer ' + session.accessToken } : {};
}

export { parse as parseResponse };
