// The toolbar's search box (issue 17, item 4): type part of a name or role and the matching
// cards are highlighted, the rest dimmed, and the view frames the matches; Enter walks through
// them one at a time (Shift+Enter back), opening collapsed groups that hide the next one; Esc
// clears. What matches is decided in find.js.

import { CARD_H, CARD_W, frameBox, nodes, saveViewportSoon } from './canvas.js';
import { setCollapsed } from './drag.js';
import * as find from './find.js';
import { model, dom } from './state.js';
import { debounce } from './util.js';

const SEARCH_DELAY_MS = 120; // typing pauses this long before the view moves

const st = {
  query: '', // normalized
  ids: [], // matches in reading order
  set: new Set(),
  index: -1, // the match Enter last went to
  stale: false, // a workspace changed since `ids` was built
};

/** Whether a search is on (the cards are highlighted). */
export function searching() {
  return !!st.query;
}

function mark(id, on) {
  const n = nodes.get(id);
  if (!n) return;
  n.el.classList.toggle('match', on);
  if (!on) n.el.classList.remove('current');
}

function hiddenCount() {
  let hidden = 0;
  for (const id of st.ids) if (find.collapsedAncestors(model, id).length) hidden += 1;
  return hidden;
}

function writeStatus() {
  dom.searchStatus.textContent = st.query ? find.describe(st.ids.length, hiddenCount(), st.index) : '';
  dom.searchStatus.dataset.matches = String(st.ids.length);
}

// What stands for a match on screen: itself, or the outermost collapsed group that hides it.
function shownFor(id) {
  const hiding = find.collapsedAncestors(model, id);
  return hiding.length ? hiding[hiding.length - 1] : id;
}

function frame(ids, maxZoom) {
  const box = find.boxAround(model, [...new Set(ids.map(shownFor))], CARD_W, CARD_H);
  if (!box) return;
  frameBox(box, maxZoom);
  saveViewportSoon();
}

function rebuild() {
  for (const id of st.set) mark(id, false);
  st.ids = find.findMatches(model, st.query);
  st.set = new Set(st.ids);
  st.stale = false;
  for (const id of st.ids) mark(id, true);
}

/** Runs the search for `query` (as typed): highlights, frames the matches, says how many. */
export function runSearch(query) {
  st.query = find.normalizeQuery(query);
  st.index = -1;
  dom.world.classList.toggle('searching', !!st.query);
  rebuild();
  writeStatus();
  if (st.ids.length) frame(st.ids, 1);
}

/** Goes to the next match (`step` 1) or the previous one (-1), opening groups that hide it. */
export function nextMatch(step = 1) {
  if (!st.query) return;
  if (st.stale) rebuild();
  if (!st.ids.length) return writeStatus();
  const previous = st.ids[st.index];
  if (previous) mark(previous, true);
  st.index = (st.index + step + st.ids.length) % st.ids.length;
  const id = st.ids[st.index];
  // Outermost first, so each opened group shows the next one down.
  for (const group of find.collapsedAncestors(model, id).reverse()) setCollapsed(group, false);
  const n = nodes.get(id);
  if (n) n.el.classList.add('current');
  writeStatus();
  frame([id], 1);
}

/** Clears the search: every card back to normal, the box empty. */
export function clearSearch() {
  for (const id of st.set) mark(id, false);
  st.query = '';
  st.ids = [];
  st.set = new Set();
  st.index = -1;
  dom.search.value = '';
  dom.world.classList.remove('searching');
  writeStatus();
}

/**
 * A workspace was added, changed or removed: keep its highlight right (only its own; the
 * order Enter walks is rebuilt when next needed).
 */
export function onWorkspaceChanged(id) {
  if (!st.query || !id) return;
  const ws = model.workspaces.get(id);
  const on = find.isMatch(ws, st.query);
  if (on === st.set.has(id) && (on || !ws)) return;
  if (on) st.set.add(id);
  else st.set.delete(id);
  mark(id, on);
  st.stale = true;
  dom.searchStatus.dataset.matches = String(st.set.size);
}

// Enter may have run this query already: then the walk through it goes on undisturbed.
const searchSoon = debounce(() => {
  if (find.normalizeQuery(dom.search.value) !== st.query) runSearch(dom.search.value);
}, SEARCH_DELAY_MS);

function onKey(event) {
  if (event.key === 'Enter') {
    event.preventDefault();
    if (find.normalizeQuery(dom.search.value) !== st.query) runSearch(dom.search.value);
    nextMatch(event.shiftKey ? -1 : 1);
  } else if (event.key === 'Escape') {
    event.preventDefault();
    event.stopPropagation();
    clearSearch();
    dom.search.blur();
  }
}

/** Listens to the search box; `/` anywhere else on the page focuses it. */
export function wireSearch() {
  dom.search.addEventListener('input', searchSoon);
  dom.search.addEventListener('keydown', onKey);
  document.addEventListener('keydown', (event) => {
    if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest('input, textarea, [contenteditable]')) return;
    event.preventDefault();
    dom.search.focus();
  });
}
