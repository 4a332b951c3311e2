// The page's one instance of each piece of state, shared by the modules that need it.

import { createModel } from './model.js';
import { createCursor } from './resume.js';

/** The org as the page knows it (see model.js). */
export const model = createModel();

/** The stream position (see resume.js). */
export const cursor = createCursor();

/** What the page shows around the org. */
export const ui = {
  viewport: { x: 0, y: 0, zoom: 1 },
  connection: 'reconnecting',
  selected: null, // workspace id whose panel is open
  loaded: false, // a GET /workspaces answer has been applied
};

const byId = (id) => document.getElementById(id);

/** The page's fixed elements (index.html), looked up once. */
export const dom = {
  viewport: byId('viewport'),
  world: byId('world'),
  arrows: byId('arrows'),
  emptyHint: byId('empty-hint'),
  connection: byId('connection'),
  count: byId('count'),
  zoomLevel: byId('zoom-level'),
  toasts: byId('toasts'),
  search: byId('search'),
  searchStatus: byId('search-status'),
  presence: byId('presence'),
  conflict: byId('conflict'),
  conflictTitle: byId('conflict-title'),
  conflictText: byId('conflict-text'),
  conflictRetry: byId('conflict-retry'),
  conflictCancel: byId('conflict-cancel'),
  whoami: byId('whoami'),
  signOut: byId('sign-out'),
  tokenForm: byId('token-form'),
  tokenInput: byId('token-input'),
  tokenMessage: byId('token-message'),
  newButton: byId('new-workspace'),
  newForm: byId('new-workspace-form'),
  newName: byId('new-name'),
  newRole: byId('new-role'),
  newAsChild: byId('new-as-child'),
  newAsChildLabel: byId('new-as-child-label'),
  newParentName: byId('new-parent-name'),
  panel: byId('panel'),
  panelTitle: byId('panel-title'),
  panelStatus: byId('panel-status'),
  panelDetails: byId('panel-details'),
  renameForm: byId('rename-form'),
  renameInput: byId('rename-input'),
  deleteConfirm: byId('delete-confirm'),
  deleteConfirmText: byId('delete-confirm-text'),
  activity: byId('panel-activity'),
  events: byId('panel-events'),
  chatLog: byId('chat-log'),
  chatForm: byId('chat-form'),
  chatInput: byId('chat-input'),
  chatStatus: byId('chat-status'),
  approvalsButton: byId('approvals-button'),
  approvalsCount: byId('approvals-count'),
  approvalsPanel: byId('approvals'),
  approvalsList: byId('approvals-list'),
};

export { byId };
