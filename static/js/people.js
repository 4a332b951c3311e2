// Who is here and who did what, as data (pure: no DOM, tested in static/tests/): the presence
// list from `GET /canvas/presence` and PRESENCE_JOINED / PRESENCE_LEFT, and per workspace the
// last person to move, rename or pause it, from the events' `actor`.

/** An empty presence list: actor id → `{ actor, since }`. */
export function createPresence() {
  return new Map();
}

function validActor(actor) {
  return !!actor && typeof actor === 'object' && typeof actor.id === 'string' && actor.id !== '';
}

/** Replaces the list with a `GET /canvas/presence` answer (`[{actor, since}]`). */
export function setPresence(presence, rows) {
  presence.clear();
  for (const row of Array.isArray(rows) ? rows : []) {
    if (row && validActor(row.actor)) presence.set(row.actor.id, { actor: row.actor, since: row.since || null });
  }
}

/** Applies a PRESENCE_JOINED / PRESENCE_LEFT frame; returns whether the list changed. */
export function applyPresence(presence, frame) {
  const payload = frame && frame.payload;
  const actor = payload && payload.actor;
  if (!validActor(actor)) return false;
  if (frame.event === 'PRESENCE_JOINED') {
    presence.set(actor.id, { actor, since: payload.since || null });
    return true;
  }
  if (frame.event === 'PRESENCE_LEFT') return presence.delete(actor.id);
  return false;
}

/** The people present, longest present first (then by name). */
export function presentPeople(presence) {
  return [...presence.values()].sort((a, b) => {
    const ta = a.since ? Date.parse(a.since) : Infinity;
    const tb = b.since ? Date.parse(b.since) : Infinity;
    if (ta !== tb) return ta - tb;
    return String(a.actor.name).localeCompare(String(b.actor.name));
  });
}

/** Up to two initials of a name: "Ada Lovelace" → "AL", "ops-bot" → "OB", "" → "?". */
export function initials(name) {
  const words = String(name || '').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (words.length === 0) return '?';
  const first = [...words[0]][0];
  const second = words.length > 1 ? [...words[words.length - 1]][0] : [...words[0]][1];
  return (first + (second || '')).toUpperCase();
}

/** Which change an event is, for "last moved / renamed / paused by": 'moved', 'renamed', 'paused' or null. */
export function changeKind(event, payload) {
  if (event === 'WORKSPACE_LAYOUT_CHANGED' || event === 'WORKSPACE_MOVED') return 'moved';
  if (event === 'WORKSPACE_UPDATED' && payload && typeof payload.name === 'string') return 'renamed';
  if (event === 'WORKSPACE_PAUSED') return 'paused';
  return null;
}

/** An empty record of who changed what: workspace id → { moved, renamed, paused } of `{ actor, at, seq }`. */
export function createChanges() {
  return new Map();
}

/**
 * Notes an event (a stream frame, or a `GET /events` row: `event_type`, `created_at`) in
 * `changes`; a record never goes back to an older event. Returns whether it changed.
 */
export function noteChange(changes, id, item) {
  if (!id || !item) return false;
  const event = item.event || item.event_type;
  const kind = changeKind(event, item.payload);
  if (!kind || !validActor(item.actor)) return false;
  const at = item.timestamp || item.created_at || null;
  const seq = typeof item.seq === 'number' ? item.seq : null;
  const record = changes.get(id) || {};
  const old = record[kind];
  if (old && seq !== null && old.seq !== null && old.seq >= seq) return false;
  if (old && (seq === null || old.seq === null) && old.at && at && Date.parse(old.at) > Date.parse(at)) return false;
  record[kind] = { actor: item.actor, at, seq };
  changes.set(id, record);
  return true;
}
