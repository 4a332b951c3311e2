// Small helpers shared by the page's modules. Nothing here touches the DOM at import time, so
// the pure modules that use it load in Node for their unit tests.

/** A finite number from `value`, or `fallback` (null, '' and non-numbers fall back). */
export function num(value, fallback = 0) {
  const n = Number(value);
  return value !== null && value !== '' && Number.isFinite(n) ? n : fallback;
}

/** A new element with an optional class and text. Text is set as text, never parsed as HTML. */
export function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The CSS class for a workspace status (`status-online`…), safe for any string. */
export function statusClass(status) {
  return 'status-' + String(status || 'unknown').toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

/** A local wall-clock time for an RFC 3339 timestamp (the input itself when unparseable). */
export function shortTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleTimeString();
}

/** A rate in [0, 1] as a percentage with one decimal, or undefined when absent. */
export function percent(rate) {
  const n = Number(rate);
  return rate === null || rate === undefined || !Number.isFinite(n) ? undefined : `${Math.round(n * 1000) / 10}%`;
}

/** Seconds as "2d 3h", "3h 4m", "4m 5s" or "5s"; undefined when absent or negative. */
export function duration(seconds) {
  const s = Number(seconds);
  if (seconds === null || seconds === undefined || !Number.isFinite(s) || s < 0) return undefined;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(s)}s`;
}

/** `fn` called once, `ms` milliseconds after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
