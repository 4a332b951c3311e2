// Nodes move while they are dragged (issue 15): this page's drag sends its position on the
// socket (at most ~30 frames a second, the last one repeated while the pointer rests so the
// server does not end the drag), and other people's drags arrive in DRAG_PREVIEWS frames (one
// per server tick, with every drag of that tick) and are drawn until their drop (the layout
// event) or an `ended` entry puts the card where the server says.

import { fitUp, nodes, previews } from './canvas.js';
import { me } from './presence.js';
import { model } from './state.js';
import { sendDragFrame } from './stream.js';

const DRAG_FRAME_INTERVAL_MS = 34; // at most ~30 drag frames a second
const DRAG_REST_REPEAT_MS = 1000; // the server ends a drag after 2 s without a frame
// After a drop's layout event, previews of that card are ignored this long: the dragging page's
// last positions travel on another lane and may arrive after the drop, and nothing ends them.
const SETTLE_MS = 1000;

const settledAt = new Map(); // id -> performance.now() of its last layout event
// A preview not refreshed for this long is dropped and the card put back. A dragging page
// repeats its position every second while the pointer rests, and the server ends a drag after
// 2 s without a frame with an `ended` entry; but previews are volatile, and a canvas that fell
// behind may lose that entry with the rest (the server drops previews, never events, for a
// full queue). Without this a lost `ended` would leave the card at the preview spot.
const PREVIEW_TTL_MS = 4000;
let staleSweep = null;

function sweepStalePreviews() {
  const cutoff = performance.now() - PREVIEW_TTL_MS;
  for (const [id, p] of previews) {
    if (p.at < cutoff) clearPreview(id);
  }
  if (previews.size === 0) {
    clearInterval(staleSweep);
    staleSweep = null;
  }
}

// This page's drag: the last position, when it was sent, and the timers.
let out = null; // { id, x, y, sentAt, pending, trailing, rest }

function mayEdit() {
  // A viewer's frames would be refused (and count as invalid frames): send none.
  return !me.who || me.who.role !== 'viewer';
}

function flush() {
  if (!out) return;
  clearTimeout(out.trailing);
  out.trailing = null;
  out.pending = false;
  out.sentAt = performance.now();
  sendDragFrame({ type: 'drag', workspace_id: out.id, x: out.x, y: out.y });
}

/** This page's drag of `id` is at x,y: tell the others (throttled). */
export function dragMoved(id, x, y) {
  if (!mayEdit()) return;
  if (!out || out.id !== id) {
    stopDragFrames();
    out = { id, x, y, sentAt: -Infinity, pending: false, trailing: null, rest: null };
    out.rest = setInterval(() => {
      if (out && performance.now() - out.sentAt >= DRAG_REST_REPEAT_MS) flush();
    }, DRAG_REST_REPEAT_MS / 2);
  }
  out.x = x;
  out.y = y;
  const wait = out.sentAt + DRAG_FRAME_INTERVAL_MS - performance.now();
  if (wait <= 0) flush();
  else if (!out.pending) {
    out.pending = true;
    out.trailing = setTimeout(flush, wait);
  }
}

/**
 * This page's drag ended. `finalPosition` (a cancelled drag's origin) is sent at once so the
 * others show it; after a drop the PATCH's layout event settles them.
 */
export function stopDragFrames(finalPosition) {
  if (!out) return;
  if (finalPosition) {
    out.x = finalPosition.x;
    out.y = finalPosition.y;
    flush();
  } else if (out.pending) {
    flush();
  }
  clearTimeout(out.trailing);
  clearInterval(out.rest);
  out = null;
}

function setPreviewClass(id, on) {
  const n = nodes.get(id);
  if (n) n.el.classList.toggle('previewing', on);
}

/** Forgets another person's drag of `id` and shows the card where the model has it. */
export function clearPreview(id) {
  if (!previews.delete(id)) return;
  setPreviewClass(id, false);
  if (model.workspaces.has(id)) fitUp(id);
}

/** A layout event for `id` arrived (a drop): the server's position wins over any preview. */
export function settle(id) {
  settledAt.set(id, performance.now());
  clearPreview(id);
}

/**
 * DRAG_PREVIEWS from the server: `payload.ended` (drags that stopped without a drop) first,
 * then `payload.previews` (the latest position of each node dragged elsewhere, newer than any
 * ended entry for the same node). `isDraggingHere(id)`: this page holds it.
 */
export function onDragFrame(frame, isDraggingHere) {
  const p = frame.payload || {};
  for (const ended of Array.isArray(p.ended) ? p.ended : []) {
    const id = String((ended && ended.workspace_id) || '');
    if (id && model.workspaces.has(id)) clearPreview(id);
  }
  for (const preview of Array.isArray(p.previews) ? p.previews : []) {
    if (preview && typeof preview === 'object') showPreview(preview, isDraggingHere);
  }
}

function showPreview(p, isDraggingHere) {
  const id = String(p.workspace_id || '');
  if (!id || !model.workspaces.has(id)) return;
  const x = Number(p.x);
  const y = Number(p.y);
  if (!Number.isFinite(x) || !Number.isFinite(y) || isDraggingHere(id)) return;
  const settled = settledAt.get(id);
  if (settled !== undefined) {
    if (performance.now() - settled < SETTLE_MS) return; // a late preview of the drop
    settledAt.delete(id);
  }
  previews.set(id, { x: Math.round(x), y: Math.round(y), at: performance.now() });
  if (staleSweep === null) staleSweep = setInterval(sweepStalePreviews, PREVIEW_TTL_MS / 4);
  setPreviewClass(id, true);
  fitUp(id);
}
