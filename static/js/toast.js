// Short messages in the corner: errors, confirmations, and agents' messages.

import { make } from './util.js';
import { dom } from './state.js';

const TOAST_MS = 6000;
const MAX_TOASTS = 5;

/** Shows `message` for a few seconds; `kind` is 'error', 'info' or 'message'. */
export function toast(message, kind = 'error') {
  const t = make('div', `toast toast-${kind}`, message);
  t.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  t.addEventListener('click', () => t.remove());
  dom.toasts.append(t);
  while (dom.toasts.children.length > MAX_TOASTS) dom.toasts.firstElementChild.remove();
  setTimeout(() => t.remove(), TOAST_MS);
}

/** Shows an error toast, prefixed with what was being done. */
export function reportError(err, prefix) {
  toast(prefix ? `${prefix}: ${err.message}` : err.message, 'error');
}
