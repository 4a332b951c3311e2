// The HTTP client: same-origin JSON requests. The page holds no credential: it signs in once
// (`POST /session`) and the browser sends the HttpOnly session cookie with every request and
// the WebSocket. A 401 opens the sign-in form.

import { dom } from './state.js';

/** A refused or failed request: `status` (0 when the server was unreachable) and its JSON `body`. */
export class ApiError extends Error {
  constructor(status, body) {
    const text = body && typeof body.error === 'string' ? body.error : `request failed (HTTP ${status})`;
    super(text);
    this.status = status;
    this.body = body;
  }
}

let signInWait = null; // one shared promise while the sign-in form is open
let signInResolve = null;
let signInListener = () => {};

/** Registers what to do once the page has signed in (the stream reconnects with the cookie). */
export function onSignedIn(listener) {
  signInListener = listener;
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    return { error: text.slice(0, 200) };
  }
}

async function send(method, path, body, headers) {
  const all = { ...headers };
  // Writes made with the session cookie must say JSON, bodiless ones (DELETE) included: a page
  // on another site cannot send that without a preflight.
  if (body !== undefined || (method !== 'GET' && method !== 'HEAD')) all['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: all,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (_) {
    throw new ApiError(0, { error: 'server unreachable' });
  }
  return { res, data: await readJson(res) };
}

/**
 * A same-origin JSON request; resolves to the parsed answer (null for an empty one), rejects
 * with ApiError. A 401 opens the sign-in form (once for all waiting requests) and retries once
 * signed in; `prompt: false` lets a caller handle 401 itself. `headers` adds request headers.
 */
export async function api(method, path, body, { prompt = true, headers = {} } = {}) {
  for (;;) {
    const { res, data } = await send(method, path, body, headers);
    if (res.status === 401 && prompt) {
      await askToSignIn('This server needs you to sign in.');
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
}

/** Opens the sign-in form (if it is not open) and resolves once the page has signed in. */
export function askToSignIn(message) {
  dom.tokenMessage.textContent = message;
  if (!signInWait) {
    signInWait = new Promise((resolve) => { signInResolve = resolve; });
    dom.tokenForm.hidden = false;
    dom.tokenInput.value = '';
    dom.tokenInput.focus();
  }
  return signInWait;
}

const KEY_PREFIX = 'cnp_';
const ADMIN_SIGN_IN_HOURS = 12;

// Signs in with what was typed. An API key makes a session directly. Anything else is tried
// as the admin token, which `POST /session` does not take: it issues a short-lived admin key
// for this sign-in (named so in `GET /keys`) and signs in with that; neither the token nor the
// key outlives this function.
async function signIn(secret) {
  let key = secret;
  if (!secret.startsWith(KEY_PREFIX)) {
    const expires = new Date(Date.now() + ADMIN_SIGN_IN_HOURS * 3600 * 1000).toISOString();
    const made = await send('POST', '/keys', { name: 'canvas sign-in with the admin token', role: 'admin', expires_at: expires }, {
      Authorization: `Bearer ${secret}`,
    });
    if (!made.res.ok) throw new ApiError(made.res.status, made.data);
    key = made.data && made.data.key;
  }
  const { res, data } = await send('POST', '/session', { key });
  if (!res.ok) throw new ApiError(res.status, data);
}

/** The sign-in form's submit handler. */
export async function onSignInSubmit(event) {
  event.preventDefault();
  const value = dom.tokenInput.value.trim();
  if (!value) return;
  dom.tokenInput.value = '';
  try {
    await signIn(value);
  } catch (err) {
    dom.tokenMessage.textContent = err.status === 401 || err.status === 403
      ? 'That key was refused. Enter an API key (or the admin token).'
      : `Could not sign in: ${err.message}`;
    dom.tokenInput.focus();
    return;
  }
  dom.tokenForm.hidden = true;
  const resolve = signInResolve;
  signInWait = null;
  signInResolve = null;
  if (resolve) resolve();
  signInListener();
}

/** Ends the session (`DELETE /session`); the page then starts over, signed out. */
export async function signOut() {
  try {
    await send('DELETE', '/session');
  } finally {
    location.reload();
  }
}

/** `/workspaces/<id><rest>` with the id escaped. */
export function workspacePath(id, rest = '') {
  return `/workspaces/${encodeURIComponent(id)}${rest}`;
}
