// Arrange (issue 17, item 3): the toolbar's button lays out the whole canvas, the side panel's
// the selected workspace's subtree, as a tidy org chart — on the server (`POST /canvas/arrange`),
// in one transaction. The page moves nothing itself: every moved card arrives as its
// WORKSPACE_LAYOUT_CHANGED event, like any drag, on this page and every other one.

import { api } from './api.js';
import { toast, reportError } from './toast.js';

let running = false;

/**
 * Asks the server to arrange the subtree under `rootId` (null: the whole canvas). Resolves to
 * the number of workspaces moved, or null when it was refused or failed (and said so).
 */
export async function arrange(rootId) {
  if (running) return null;
  running = true;
  const buttons = document.querySelectorAll('[data-arrange]');
  for (const b of buttons) b.disabled = true;
  try {
    const res = await api('POST', '/canvas/arrange', rootId ? { root_id: rootId } : {});
    const moved = res && Array.isArray(res.moved) ? res.moved.length : 0;
    if (moved === 0) toast('Already arranged: nothing moved.', 'info');
    return moved;
  } catch (err) {
    if (err.status === 403) {
      toast('Arrange refused: you can view this canvas but not edit it (the server answered 403).', 'error');
    } else if (err.status === 404) {
      toast('Arrange: that workspace is gone.', 'error');
    } else {
      reportError(err, 'Could not arrange');
    }
    return null;
  } finally {
    running = false;
    for (const b of buttons) b.disabled = false;
  }
}
