// The event stream: one WebSocket, resumed after a drop with `?since=&epoch=` (resume.js keeps
// the position), reconnected with jittered backoff, and the snapshot (`GET /workspaces`)
// loaded under it so nothing between "snapshot taken" and "live" is lost.

import { api, askToSignIn } from './api.js';
import { applySnapshot } from './canvas.js';
import * as perf from './perf.js';
import * as resume from './resume.js';
import { cursor, ui, dom } from './state.js';
import { reportError } from './toast.js';

const PING_INTERVAL_MS = 25000;
const CONNECTED_WAIT_MS = 3000; // if a server never sends CONNECTED, carry on anyway
const RESYNC_SPACING_MS = 10000; // resyncs closer than this in a row wait a growing backoff
const CLOSE_CREDENTIAL_ENDED = 4001; // the key or session the socket was opened with ended

const rt = {
  started: false, // the first socket has been opened
  ws: null,
  resuming: false, // this socket asked for since=
  connected: false, // CONNECTED seen on this socket
  attempt: 0, // reconnect attempts since the last CONNECTED
  lastResyncAt: -Infinity, // performance.now() of the last resync
  resyncStreak: 0, // resyncs in a row, each within RESYNC_SPACING_MS of the one before
  retryTimer: null,
  pingTimer: null,
  connectedTimer: null,
  dragSent: false, // this socket carried a drag frame
  dragOff: false, // this socket's server refused one: send no more on it
};

let applyFrame = () => {};
let applyTransient = () => {};
let snapshot = loadSnapshot;

// While a snapshot loads, events are queued and applied on top of it afterwards: the socket
// connected first, so nothing between "snapshot taken" and "live" is lost.
const sync = { gen: 0, buffering: false, queue: [] };

/** Writes the connection indicator ('live' or 'reconnecting'). */
export function setConnection(value) {
  ui.connection = value;
  dom.connection.textContent = value;
  dom.connection.dataset.state = value;
}

function socketIsOpen() {
  return !!rt.ws && rt.ws.readyState === WebSocket.OPEN;
}

/** Re-GETs /workspaces and reconciles the canvas; resolves true on success. */
export async function loadSnapshot() {
  const gen = ++sync.gen;
  sync.buffering = true;
  try {
    const list = await api('GET', '/workspaces');
    if (gen !== sync.gen) return false;
    applySnapshot(list);
    return true;
  } catch (err) {
    if (gen === sync.gen) reportError(err, 'Could not load workspaces');
    return false;
  } finally {
    if (gen === sync.gen) {
      sync.buffering = false;
      const queued = sync.queue;
      sync.queue = [];
      for (const [frame, arrivedAt] of queued) deliver(frame, arrivedAt);
    }
  }
}

function socketUrl(resumeFrom) {
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (resumeFrom) for (const [key, value] of Object.entries(resumeFrom)) url.searchParams.set(key, value);
  return url.toString();
}

function stopSocketTimers() {
  clearInterval(rt.pingTimer);
  clearTimeout(rt.connectedTimer);
  rt.pingTimer = null;
  rt.connectedTimer = null;
}

function dropSocket() {
  const old = rt.ws;
  rt.ws = null;
  stopSocketTimers();
  if (old) {
    old.onopen = old.onmessage = old.onclose = old.onerror = null;
    try {
      old.close();
    } catch (_) { /* already closed */ }
  }
}

/**
 * Starts the stream; `onEvent(frame)` gets every new event frame, in seq order, after the
 * snapshot it belongs on; `reload()` is called for each fresh start (it must call
 * loadSnapshot); `onTransient(frame)` gets frames outside the sequence (presence, drag
 * previews) and CONNECTED, as they come.
 */
export function startStream(onEvent, reload = loadSnapshot, onTransient = () => {}) {
  applyFrame = onEvent;
  applyTransient = onTransient;
  snapshot = reload;
  connect();
}

/** Reconnects now if the socket is down (a token was just entered). */
export function reconnectNow() {
  if (rt.started && !socketIsOpen()) connect();
}

// Opens the socket: resuming from the last seq when the stream is known, fresh otherwise.
function connect() {
  clearTimeout(rt.retryTimer);
  rt.retryTimer = null;
  rt.started = true;
  dropSocket();
  const from = resume.resumeQuery(cursor);
  rt.resuming = !!from;
  rt.connected = false;
  rt.dragSent = false;
  rt.dragOff = false;
  let sock;
  try {
    sock = new WebSocket(socketUrl(from));
  } catch (err) {
    console.warn('canopy: websocket', err);
    scheduleReconnect();
    return;
  }
  rt.ws = sock;
  sock.onopen = () => {
    rt.pingTimer = setInterval(() => send({ type: 'ping' }), PING_INTERVAL_MS);
    rt.connectedTimer = setTimeout(() => onConnected(sock, {}), CONNECTED_WAIT_MS);
  };
  sock.onmessage = (message) => onFrame(sock, message.data);
  sock.onclose = (event) => {
    if (rt.ws !== sock) return;
    rt.ws = null;
    stopSocketTimers();
    setConnection('reconnecting');
    if (event.code === CLOSE_CREDENTIAL_ENDED) {
      // Retrying with the same cookie would be refused: sign in again first.
      askToSignIn('Your session ended (signed out, expired or revoked). Sign in again.').then(reconnectNow);
      return;
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  clearTimeout(rt.retryTimer);
  rt.retryTimer = setTimeout(connect, resume.backoffDelay(rt.attempt));
  rt.attempt += 1;
}

function send(object) {
  if (socketIsOpen()) rt.ws.send(JSON.stringify(object));
}

/**
 * Sends a drag frame when the socket is open; a server that answers drag frames with an error
 * (one from before drag previews) gets no more on this socket: refused frames count against it.
 */
export function sendDragFrame(frame) {
  if (rt.dragOff || !socketIsOpen()) return;
  rt.dragSent = true;
  dragFramesSent += 1;
  send(frame);
}

let dragFramesSent = 0;

/** How many drag frames this page has sent (for tests and the console). */
export function dragFrameCount() {
  return dragFramesSent;
}

function onConnected(sock, payload) {
  if (rt.ws !== sock || rt.connected) return;
  rt.connected = true;
  clearTimeout(rt.connectedTimer);
  rt.attempt = 0;
  const next = resume.connected(cursor, payload, rt.resuming);
  if (next === 'resync') {
    resync('stream restarted');
  } else if (next === 'live') {
    setConnection('live');
  } else {
    // "live" once the snapshot is in (or failed, and said so): events flow either way.
    snapshot().then(() => {
      if (rt.ws === sock && socketIsOpen()) setConnection('live');
    });
  }
}

/**
 * What the page holds may miss events (RESYNC_REQUIRED, a gap, a restarted stream): start over
 * with a fresh socket, whose CONNECTED triggers a new GET /workspaces.
 */
export function resync(reason) {
  console.info('canopy: resync', reason || '');
  resume.resetCursor(cursor);
  sync.gen++;
  sync.buffering = false;
  sync.queue = [];
  setConnection('reconnecting');
  // One resync reconnects at once; resyncs in a row (a server that keeps skipping seqs) back
  // off like dropped sockets do, instead of reloading in a tight loop.
  const now = performance.now();
  rt.resyncStreak = now - rt.lastResyncAt < RESYNC_SPACING_MS ? rt.resyncStreak + 1 : 0;
  rt.lastResyncAt = now;
  if (rt.resyncStreak === 0) {
    connect();
  } else {
    dropSocket();
    clearTimeout(rt.retryTimer);
    rt.retryTimer = setTimeout(connect, resume.backoffDelay(rt.resyncStreak - 1));
  }
}

// Applies one sequenced frame and tells perf.js (which times it to the screen when recording).
function deliver(frame, arrivedAt) {
  applyFrame(frame);
  perf.eventApplied(arrivedAt, frame.event);
}

function onFrame(sock, data) {
  if (rt.ws !== sock) return;
  const arrivedAt = perf.recording() ? performance.now() : 0;
  let frame;
  try {
    frame = JSON.parse(data);
  } catch (_) {
    return;
  }
  if (frame && frame.type === 'error' && rt.dragSent && !rt.dragOff) {
    rt.dragOff = true;
    console.info('canopy: drag previews refused on this socket:', frame.error);
  }
  // pong and error frames carry no event.
  if (!frame || typeof frame !== 'object' || typeof frame.event !== 'string') return;
  if (frame.event === 'CONNECTED') {
    onConnected(sock, frame.payload || {});
    applyTransient(frame);
    return;
  }
  if (typeof frame.seq !== 'number' && frame.event !== 'RESYNC_REQUIRED') {
    applyTransient(frame); // presence, drag previews: not part of the stream
    return;
  }
  if (frame.event === 'RESYNC_REQUIRED') {
    resync(frame.payload && frame.payload.reason);
    return;
  }
  const verdict = resume.admit(cursor, frame);
  if (verdict === 'gap') {
    resync(`gap before seq ${frame.seq}`);
    return;
  }
  if (verdict === 'skip') return;
  if (sync.buffering) sync.queue.push([frame, arrivedAt]);
  else deliver(frame, arrivedAt);
}
