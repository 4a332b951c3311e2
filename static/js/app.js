// Canopy canvas: a live org chart of workspaces, kept in sync over one WebSocket.
//
// Module map (static/js/, plain ES modules, no build step):
//   state.js     the shared state (model, stream cursor, UI flags) and the page's fixed elements
//   model.js     the org model and the event reducer (pure)        — tested in static/tests/
//   resume.js    stream position, gaps, reconnect backoff (pure)   — tested in static/tests/
//   messages.js  chat messages from A2A answers and history (pure) — tested in static/tests/
//   inbox.js     the approvals inbox as data (pure)                — tested in static/tests/
//   people.js    presence and "last changed by" as data (pure)     — tested in static/tests/
//   api.js       HTTP client, sign-in and sign-out (the session cookie)
//   presence.js  the header's people: who is viewing, who I am, sign out
//   preview.js   drag previews: this page's drag frames out, other people's drags drawn
//   conflict.js  If-Match on rename, reparent and delete; the 412 box (what changed, retry)
//   stream.js    the WebSocket: resume, resync, snapshot loading
//   canvas.js    cards, layout, viewport: the view of model effects
//   drag.js      pointer input: drag, drop to nest, pan, collapse
//   panel.js     the side panel and the new-workspace form
//   chat.js      the chat of the open workspace
//   approvals.js the approvals inbox
//   traffic.js   arrows for agent-to-agent calls
//   toast.js     messages in the corner
//   app.js       wiring and start-up (this file)

import { api, onSignedIn, onSignInSubmit } from './api.js';
import { loadPending, onApprovalEvent, toggleInbox, wireApprovals } from './approvals.js';
import { applyViewport, fitView, nodes, onWheel, setViewport, show, updateCount, zoomBy } from './canvas.js';
import { onActivity, onAgentMessage, reloadChat, wireChat } from './chat.js';
import { cancelDrag, isDragging, isDraggingHere, wireCanvasInput } from './drag.js';
import { handles, reduce } from './model.js';
import { noteChange, onWorkspaceEvent, selectWorkspace, toggleNewForm, wirePanel } from './panel.js';
import { loadMe, loadPresence, onPresenceFrame, wirePresence } from './presence.js';
import { onDragFrame, settle } from './preview.js';
import { closeConflict, wireConflict } from './conflict.js';
import { model, ui, dom, byId } from './state.js';
import { dragFrameCount, loadSnapshot, reconnectNow, resync, setConnection, startStream } from './stream.js';
import { reportError, toast } from './toast.js';
import { onTraffic } from './traffic.js';

// One event frame, in seq order: the model changes, the canvas shows it, and the parts of the
// page that care about its kind follow.
function applyEvent(frame) {
  if (!handles(frame.event)) return; // someone else's
  if (frame.workspace_id && (frame.event === 'WORKSPACE_LAYOUT_CHANGED' || frame.event === 'WORKSPACE_MOVED')) {
    settle(String(frame.workspace_id)); // the drop: the server's position wins
  }
  let effect = null;
  try {
    effect = show(reduce(model, frame));
  } catch (err) {
    console.error('canopy: applying', frame.event, err);
  }
  try {
    if (!effect) {
      // Nothing changed here (an echo of this page's own move, a repeated removal): the open
      // panel still lists the event.
    } else if (effect.type === 'message') {
      if (!onAgentMessage(effect.id, effect.text, effect.attachments)) toast(`${effect.name}: ${effect.text}`, 'message');
    } else if (effect.type === 'activity') {
      onActivity(effect.id, effect.activity);
      onTraffic(effect.activity);
    } else if (effect.type === 'approval') {
      onApprovalEvent(frame.event, effect.id, effect.payload);
    }
    const id = frame.workspace_id ? String(frame.workspace_id) : '';
    noteChange(id, frame);
    onWorkspaceEvent(id, frame.event);
  } catch (err) {
    console.error('canopy: showing', frame.event, err);
  }
}

// Frames outside the sequence: CONNECTED (re-read who is here), presence, drag previews.
function applyTransient(frame) {
  if (frame.event === 'CONNECTED') loadPresence();
  else if (frame.event === 'PRESENCE_JOINED' || frame.event === 'PRESENCE_LEFT') onPresenceFrame(frame);
  else if (frame.event === 'DRAG_PREVIEWS') onDragFrame(frame, isDraggingHere);
  else applyEvent(frame);
}

// Every snapshot (start, reconnect without resume, resync) may have missed approval events and
// agents' messages.
async function reload() {
  const ok = await loadSnapshot();
  loadPending();
  reloadChat();
  return ok;
}

function onKey(event) {
  if (event.key !== 'Escape') return;
  if (isDragging()) cancelDrag();
  else if (!dom.conflict.hidden) closeConflict();
  else if (!dom.newForm.hidden) toggleNewForm(false);
  else if (!dom.approvalsPanel.hidden) toggleInbox(false);
  else if (!dom.deleteConfirm.hidden) dom.deleteConfirm.hidden = true;
  else if (ui.selected) selectWorkspace(null);
}

function wire() {
  wireCanvasInput(onWheel);
  document.addEventListener('keydown', onKey);
  byId('zoom-in').addEventListener('click', () => zoomBy(1.25));
  byId('zoom-out').addEventListener('click', () => zoomBy(0.8));
  byId('fit-view').addEventListener('click', fitView);
  dom.tokenForm.addEventListener('submit', onSignInSubmit);
  // A socket that failed for want of the cookie should not wait out its backoff (before boot
  // has opened one, boot opens it signed in); the header shows who signed in.
  onSignedIn(() => {
    reconnectNow();
    loadMe();
  });
  wirePresence();
  wireConflict();
  wirePanel();
  wireChat();
  wireApprovals();
}

// Start-up: viewport and workspaces first (so the page is useful even before the socket is up,
// and a 401 asks to sign in before anything else), then the live stream. The first
// CONNECTED reloads the workspaces once more so nothing between the GET and the socket going
// live is missed.
async function boot() {
  wire();
  applyViewport();
  setConnection('reconnecting');
  updateCount();
  try {
    setViewport(await api('GET', '/canvas/viewport'));
  } catch (err) {
    reportError(err, 'Could not load the view');
  }
  await reload();
  loadMe();
  startStream(applyEvent, reload, applyTransient);
}

/** For tests and the console: the page's state and a few of its actions. */
window.canopy = {
  state: { model, ui },
  reload, // re-GET /workspaces (and pending approvals) and reconcile; resolves true on success
  resync: () => resync('requested'),
  select: selectWorkspace,
  nodes,
  dragFrameCount, // drag frames sent on the socket
};

boot();
