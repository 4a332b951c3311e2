// The header's people: who is viewing (initials, names on hover), who this page is signed in
// as, and the sign-out button.

import { api, signOut } from './api.js';
import * as people from './people.js';
import { dom } from './state.js';
import { make } from './util.js';

/** Who has a canvas open (see people.js). */
export const presence = people.createPresence();

/** This page's person (`GET /session`), or null before it is known. */
export const me = { who: null };

function render() {
  const items = people.presentPeople(presence).map(({ actor, since }) => {
    const li = make('li', 'person', people.initials(actor.name));
    const when = since ? ` (since ${new Date(since).toLocaleTimeString()})` : '';
    li.title = `${actor.name}${when}`;
    li.dataset.actorId = actor.id;
    if (me.who && me.who.id === actor.id) li.classList.add('me');
    return li;
  });
  dom.presence.replaceChildren(...items);
}

/** Re-reads who is here (each time the socket connects: frames missed while it was down). */
export async function loadPresence() {
  try {
    people.setPresence(presence, await api('GET', '/canvas/presence', undefined, { prompt: false }));
    render();
  } catch (err) {
    console.warn('canopy: presence', err.message);
  }
}

/** A PRESENCE_JOINED / PRESENCE_LEFT frame. */
export function onPresenceFrame(frame) {
  if (people.applyPresence(presence, frame)) render();
}

/** Reads who this page is; shows the name and the sign-out button for a signed-in person. */
export async function loadMe() {
  try {
    me.who = await api('GET', '/session', undefined, { prompt: false });
  } catch (_) {
    me.who = null;
  }
  // Open mode's implicit local admin has nothing to sign out of.
  const signedIn = !!me.who && me.who.id !== 'local';
  dom.whoami.hidden = !signedIn;
  dom.whoami.textContent = signedIn ? `${me.who.name} (${me.who.role})` : '';
  dom.signOut.hidden = !signedIn;
  render();
}

/** Wires the sign-out button. */
export function wirePresence() {
  dom.signOut.addEventListener('click', () => signOut());
}
