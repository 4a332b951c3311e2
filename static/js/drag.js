// Pointer input on the canvas: drag a card by its head (drop onto another card to nest it, onto
// empty canvas to un-nest it), drag empty canvas to pan, click to select, the collapse toggle.

import { api, workspacePath } from './api.js';
import {
  fit, fitUp, nodes, overrides, frozenBoxes, positionOf, applyViewport,
  saveViewportSoon, show, CARD_W, CARD_H,
} from './canvas.js';
import * as m from './model.js';
import { heldCopy, ifMatch, showConflict } from './conflict.js';
import { renderPanelDetails, selectWorkspace } from './panel.js';
import { clearPreview, dragMoved, stopDragFrames } from './preview.js';
import { model, ui, dom } from './state.js';
import { reportError, toast } from './toast.js';

const DRAG_THRESHOLD_PX = 4; // less than this is a click, not a drag

let drag = null; // { id, pointerId, startX, startY, originX, originY, moved, target }
let pan = null; // { pointerId, startX, startY, vx, vy, moved }

/** Whether a card is being dragged. */
export function isDragging() {
  return !!drag;
}

/** Whether this page is dragging `id` (another person's preview of it is not drawn then). */
export function isDraggingHere(id) {
  return !!drag && drag.id === id;
}

/** Called when a workspace leaves the canvas: a drag of it ends without saving. */
export function forgetDrag(id) {
  if (drag && drag.id === id) {
    endDragVisuals(drag);
    drag = null;
    stopDragFrames();
  }
}

function onPointerDown(event) {
  if (event.button !== 0 || drag || pan) return;
  if (event.target.closest('button, input, a')) return;
  const card = event.target.closest('.card');
  if (card) startDrag(event, card.dataset.workspaceId);
  else startPan(event);
}

function startDrag(event, id) {
  if (!model.workspaces.has(id) || overrides.has(id)) return; // its last move is still saving
  clearPreview(id); // someone else's drag of it: this one takes over here
  const p = positionOf(id);
  drag = {
    id, pointerId: event.pointerId, startX: event.clientX, startY: event.clientY,
    originX: p.x, originY: p.y, moved: false, target: null,
  };
  dom.viewport.setPointerCapture(event.pointerId);
  event.preventDefault();
}

function startPan(event) {
  const v = ui.viewport;
  pan = { pointerId: event.pointerId, startX: event.clientX, startY: event.clientY, vx: v.x, vy: v.y, moved: false };
  dom.viewport.setPointerCapture(event.pointerId);
  event.preventDefault();
}

function onPointerMove(event) {
  if (drag && event.pointerId === drag.pointerId) moveDrag(event);
  else if (pan && event.pointerId === pan.pointerId) movePan(event);
}

function moveDrag(event) {
  const dx = event.clientX - drag.startX;
  const dy = event.clientY - drag.startY;
  if (!drag.moved) {
    if (Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
    drag.moved = true;
    // Ancestors keep the card's old box while it moves, so it can be dragged out of them.
    frozenBoxes.set(drag.id, nodes.get(drag.id).box);
    nodes.get(drag.id).el.classList.add('dragging');
    document.body.classList.add('is-dragging');
  }
  const z = ui.viewport.zoom;
  const pos = { x: Math.round(drag.originX + dx / z), y: Math.round(drag.originY + dy / z) };
  overrides.set(drag.id, pos);
  fit(drag.id);
  dragMoved(drag.id, pos.x, pos.y);
  setDropTarget(dropTargetAt(event.clientX, event.clientY));
}

function movePan(event) {
  const dx = event.clientX - pan.startX;
  const dy = event.clientY - pan.startY;
  if (!pan.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
  if (!pan.moved) dom.viewport.classList.add('panning');
  pan.moved = true;
  ui.viewport = { ...ui.viewport, x: pan.vx + dx, y: pan.vy + dy };
  applyViewport();
}

function onPointerUp(event) {
  if (drag && event.pointerId === drag.pointerId) {
    const d = drag;
    if (!d.moved) {
      drag = null;
      selectWorkspace(d.id);
    } else {
      finishDrag(d, dropTargetAt(event.clientX, event.clientY));
    }
  } else if (pan && event.pointerId === pan.pointerId) {
    const moved = pan.moved;
    pan = null;
    dom.viewport.classList.remove('panning');
    if (moved) saveViewportSoon();
    else selectWorkspace(null); // a click on empty canvas closes the panel
  }
}

function onPointerCancel(event) {
  if (drag && event.pointerId === drag.pointerId) cancelDrag();
  if (pan && event.pointerId === pan.pointerId) {
    pan = null;
    dom.viewport.classList.remove('panning');
  }
}

function overlapsHead(pos, id) {
  const other = positionOf(id);
  return Math.abs(pos.x - other.x) < CARD_W && Math.abs(pos.y - other.y) < CARD_H;
}

// The topmost card under the pointer that the dragged card may nest into.
function dropTargetAt(clientX, clientY) {
  if (!drag) return null;
  for (const element of document.elementsFromPoint(clientX, clientY)) {
    const card = element.closest && element.closest('.card');
    if (!card) continue;
    const id = card.dataset.workspaceId;
    if (id === drag.id || m.isDescendant(model, id, drag.id)) continue; // nesting there is a cycle
    return id;
  }
  return null;
}

function setDropTarget(id) {
  if (!drag || drag.target === id) return;
  const old = drag.target && nodes.get(drag.target);
  if (old) old.el.classList.remove('drop-target');
  drag.target = id;
  const next = id && nodes.get(id);
  if (next) next.el.classList.add('drop-target');
}

function endDragVisuals(d) {
  const old = d.target && nodes.get(d.target);
  if (old) old.el.classList.remove('drop-target');
  const n = nodes.get(d.id);
  if (n) n.el.classList.remove('dragging');
  document.body.classList.remove('is-dragging');
}

/** Puts a dragged card back where it was (Escape). */
export function cancelDrag() {
  if (!drag) return;
  const d = drag;
  drag = null;
  endDragVisuals(d);
  if (d.moved) stopDragFrames({ x: d.originX, y: d.originY });
  overrides.delete(d.id);
  frozenBoxes.delete(d.id);
  if (model.workspaces.has(d.id)) fitUp(d.id);
}

// Saves a drop as one PATCH: the new x,y, plus parent_id when it lands in a new parent (or on
// empty canvas, which un-nests it). The card stays where it was dropped until the server
// answers; a refusal puts it back where the server says it is.
async function finishDrag(d, targetId) {
  drag = null;
  endDragVisuals(d);
  stopDragFrames();
  const id = d.id;
  const pos = overrides.get(id);
  if (!model.workspaces.has(id) || !pos) {
    overrides.delete(id);
    frozenBoxes.delete(id);
    return;
  }
  const body = { x: pos.x, y: pos.y };
  if (targetId !== m.parentOf(model, id)) {
    body.parent_id = targetId;
    // Dropped onto its new parent's head: send no position, and the server places it inside
    // the parent's area beside its siblings (its WORKSPACE_LAYOUT_CHANGED events bring the
    // place, and those of any neighbour that made room) instead of hiding the parent's name.
    if (targetId && overlapsHead(pos, targetId)) {
      delete body.x;
      delete body.y;
    }
  }
  const held = heldCopy(id);
  if (!('parent_id' in body) && pos.x === d.originX && pos.y === d.originY) {
    overrides.delete(id);
    frozenBoxes.delete(id);
    fitUp(id);
    return;
  }
  const error = await saveMove(id, body, m.versionOf(model, id));
  overrides.delete(id);
  frozenBoxes.delete(id);
  if (!model.workspaces.has(id)) return; // removed while saving
  fitUp(id);
  if (error && error.status === 412) {
    // Reparented by someone else meanwhile (or renamed, paused…): say what, offer the move again.
    showConflict('Move', id, held, error, (v) => retryMove(id, body, v));
  } else if (error) {
    if (error.status === 403) {
      toast('Move refused: you can view this canvas but not edit it (the server answered 403).', 'error');
    } else {
      reportError(error, error.status === 409 ? 'Move refused' : 'Could not save the move');
    }
  }
  if (ui.selected === id) renderPanelDetails();
}

// One PATCH for a drop; a reparent carries If-Match (a plain move does not: the last position
// wins). On success the model takes it now; the echoed LAYOUT_CHANGED / MOVED events are
// idempotent. Resolves to the error, or null.
async function saveMove(id, body, version) {
  const headers = 'parent_id' in body ? ifMatch(id, version) : {};
  try {
    const res = await api('PATCH', workspacePath(id), body, { headers });
    if (model.workspaces.has(id)) {
      if ('x' in body) m.setLayout(model, id, body.x, body.y);
      if ('parent_id' in body) show(m.setParent(model, id, body.parent_id));
      m.noteVersion(model, id, res && res.version);
    }
    return null;
  } catch (err) {
    return err;
  }
}

async function retryMove(id, body, version) {
  const held = heldCopy(id);
  const error = await saveMove(id, body, version);
  if (!model.workspaces.has(id)) return;
  fitUp(id);
  if (error && error.status === 412) showConflict('Move', id, held, error, (v) => retryMove(id, body, v));
  else if (error) reportError(error, 'Could not save the move');
  if (ui.selected === id) renderPanelDetails();
}

function toggleCollapsed(id) {
  const ws = model.workspaces.get(id);
  if (ws) setCollapsed(id, !ws.collapsed);
}

/**
 * Collapses or expands `id` on the page at once and saves it (PATCH `collapsed`, which every
 * other page sees); a refusal puts it back and says why.
 */
export async function setCollapsed(id, next) {
  const ws = model.workspaces.get(id);
  if (!ws || ws.collapsed === next) return;
  show(m.setLayout(model, id, undefined, undefined, next));
  try {
    await api('PATCH', workspacePath(id), { collapsed: next });
  } catch (err) {
    show(m.setLayout(model, id, undefined, undefined, !next));
    reportError(err, 'Could not collapse');
  }
}

function onCanvasClick(event) {
  const toggle = event.target.closest('.card-toggle');
  if (!toggle) return;
  const card = toggle.closest('.card');
  if (card) toggleCollapsed(card.dataset.workspaceId);
}

function onCanvasKey(event) {
  if (event.key !== 'Enter' || !event.target.classList.contains('card-head')) return;
  const card = event.target.closest('.card');
  if (card) selectWorkspace(card.dataset.workspaceId);
}

/** Listens for pointer, click and key input on the canvas. */
export function wireCanvasInput(onWheel) {
  const v = dom.viewport;
  v.addEventListener('pointerdown', onPointerDown);
  v.addEventListener('pointermove', onPointerMove);
  v.addEventListener('pointerup', onPointerUp);
  v.addEventListener('pointercancel', onPointerCancel);
  v.addEventListener('wheel', onWheel, { passive: false });
  v.addEventListener('click', onCanvasClick);
  v.addEventListener('keydown', onCanvasKey);
}
