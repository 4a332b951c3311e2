// The HTTP client: same-origin JSON requests, and the admin token (asked for once per browser
// session when the server answers 401).

import { dom } from './state.js';

const TOKEN_KEY = 'canopy.adminToken';

/** A refused or failed request: `status` (0 when the server was unreachable) and its JSON `body`. */
export class ApiError extends Error {
  constructor(status, body) {
    const text = body && typeof body.error === 'string' ? body.error : `request failed (HTTP ${status})`;
    super(text);
    this.status = status;
    this.body = body;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let tokenWait = null; // one shared promise while the token form is open
let tokenResolve = null;
let tokenListener = () => {};

/** The admin token the page holds ('' when none). */
export function currentToken() {
  return token;
}

/** Registers what to do once a token has been entered (the stream reconnects with it). */
export function onTokenEntered(listener) {
  tokenListener = listener;
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

/**
 * A same-origin JSON request; resolves to the parsed answer (null for an empty one), rejects
 * with ApiError. A 401 opens the token form (once for all waiting requests) and retries with
 * the token; `prompt: false` lets a caller handle 401 itself. `headers` adds request headers.
 */
export async function api(method, path, body, { prompt = true, headers: extra = {} } = {}) {
  for (;;) {
    const sentToken = token;
    const headers = { ...extra };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (sentToken) headers.Authorization = `Bearer ${sentToken}`;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (_) {
      throw new ApiError(0, { error: 'server unreachable' });
    }
    const data = await readJson(res);
    if (res.status === 401 && prompt) {
      // The token may have been entered while this request was in flight: just retry.
      if (token === sentToken) {
        await askForToken(sentToken ? 'That token was refused. Enter the admin token.' : 'This server needs its admin token.');
      }
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
}

function askForToken(message) {
  dom.tokenMessage.textContent = message;
  if (!tokenWait) {
    tokenWait = new Promise((resolve) => { tokenResolve = resolve; });
    dom.tokenForm.hidden = false;
    dom.tokenInput.value = '';
    dom.tokenInput.focus();
  }
  return tokenWait;
}

/** The token form's submit handler. */
export function onTokenSubmit(event) {
  event.preventDefault();
  const value = dom.tokenInput.value.trim();
  if (!value) return;
  token = value;
  sessionStorage.setItem(TOKEN_KEY, token);
  dom.tokenForm.hidden = true;
  const resolve = tokenResolve;
  tokenWait = null;
  tokenResolve = null;
  if (resolve) resolve();
  tokenListener();
}

/** `/workspaces/<id><rest>` with the id escaped. */
export function workspacePath(id, rest = '') {
  return `/workspaces/${encodeURIComponent(id)}${rest}`;
}
