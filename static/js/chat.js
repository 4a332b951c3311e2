// The chat of the open workspace: lines go to its agent through the A2A proxy
// (`POST /workspaces/:id/a2a`, JSON-RPC `message/send`); answers, the agent's /notify messages
// (AGENT_MESSAGE) and chats from other open pages (ACTIVITY_LOGGED) show live; the history
// comes back after a reload from the activity rows the proxy and /notify store.

import { api, workspacePath } from './api.js';
import { answerToMessage, historyToMessages, message, sendBody } from './messages.js';
import { dom } from './state.js';
import { debounce, make, shortTime } from './util.js';

const HISTORY_LIMIT = 50;
const HISTORY_RELOAD_DELAY_MS = 300;

const chat = {
  id: null, // the workspace whose chat is shown
  gen: 0, // bumps on every switch, so late answers for another workspace are dropped
  sending: 0, // lines of this page still waiting for their answer
  loading: false, // a history load is in flight
  stale: false, // a live message arrived during that load, which may predate it
};

function newMessageId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `canopy-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function bubble(msg) {
  const li = make('li', `msg msg-${msg.role}`);
  li.dataset.role = msg.role;
  const who = msg.role === 'user' ? 'You' : msg.role === 'agent' ? 'Agent' : 'Note';
  const head = make('div', 'msg-head');
  head.append(make('span', 'msg-who', who));
  if (msg.at) head.append(make('time', '', shortTime(msg.at)));
  li.append(head, make('p', 'msg-text', msg.text));
  for (const file of msg.files || []) li.append(make('span', 'msg-file', `📎 ${file.name} (${file.uri})`));
  return li;
}

function append(msg) {
  const empty = dom.chatLog.querySelector('.empty');
  if (empty) empty.remove();
  dom.chatLog.append(bubble(msg));
  dom.chatLog.scrollTop = dom.chatLog.scrollHeight;
}

function setStatus(text) {
  dom.chatStatus.textContent = text;
}

/** Shows the chat of workspace `id` (null: none) and loads its history. */
export function openChat(id) {
  chat.id = id;
  chat.gen += 1;
  chat.sending = 0;
  chat.loading = false;
  chat.stale = false;
  setStatus('');
  dom.chatLog.replaceChildren();
  if (id) {
    dom.chatLog.append(make('li', 'empty', 'Loading…'));
    loadHistory();
  }
}

async function loadHistory() {
  const { id, gen } = chat;
  if (!id) return;
  chat.loading = true;
  chat.stale = false;
  try {
    const rows = await api('GET', workspacePath(id, `/activity?type=a2a_receive&source=canvas&limit=${HISTORY_LIMIT}`));
    if (chat.gen !== gen) return;
    const messages = historyToMessages(rows);
    dom.chatLog.replaceChildren(...messages.map(bubble));
    if (!messages.length) dom.chatLog.append(make('li', 'empty', 'No messages yet.'));
    dom.chatLog.scrollTop = dom.chatLog.scrollHeight;
  } catch (err) {
    if (chat.gen === gen) dom.chatLog.replaceChildren(make('li', 'empty', `Chat history unavailable: ${err.message}`));
  } finally {
    if (chat.gen === gen) {
      chat.loading = false;
      // The answer replaced the log and may have been read before that message was stored.
      if (chat.stale) reloadHistorySoon();
    }
  }
}

const reloadHistorySoon = debounce(loadHistory, HISTORY_RELOAD_DELAY_MS);

async function onSend(event) {
  event.preventDefault();
  const text = dom.chatInput.value.trim();
  const { id, gen } = chat;
  if (!id || !text) return;
  dom.chatInput.value = '';
  append(message('user', text, new Date().toISOString()));
  chat.sending += 1;
  setStatus('Waiting for the agent…');
  try {
    const answer = await api('POST', workspacePath(id, '/a2a'), sendBody(text, newMessageId()));
    if (chat.gen !== gen) return;
    append(answerToMessage(answer, new Date().toISOString()) || message('system', 'The agent answered without text.'));
  } catch (err) {
    if (chat.gen !== gen) return;
    append(message('system', `Not delivered: ${err.message}`));
  } finally {
    if (chat.gen === gen) {
      chat.sending -= 1;
      if (!chat.sending) setStatus('');
    }
  }
}

/** An agent's /notify message (AGENT_MESSAGE) for workspace `id`; true when the chat showed it. */
export function onAgentMessage(id, text, attachments) {
  if (id !== chat.id) return false;
  const files = (attachments || [])
    .filter((a) => a && typeof a.uri === 'string')
    .map((a) => ({ name: a.name || a.uri, uri: a.uri }));
  append(message('agent', text, new Date().toISOString(), files));
  if (chat.loading) chat.stale = true;
  return true;
}

/**
 * An ACTIVITY_LOGGED payload about workspace `id`: a canvas chat line answered while this page
 * was not the one asking (another open page) reloads the history.
 */
export function onActivity(id, activity) {
  if (id !== chat.id || chat.sending) return;
  if (activity.activity_type === 'a2a_receive' && activity.source_id == null) reloadHistorySoon();
}

/**
 * Says in the input whether the open workspace's agent can be reached: the proxy answers 503
 * unless it is online or degraded.
 */
export function showReachability(status) {
  const reachable = status === 'online' || status === 'degraded';
  dom.chatInput.placeholder = reachable ? 'Message the agent' : `The agent is ${status || 'unknown'}: messages will not reach it`;
  dom.chatForm.dataset.reachable = String(reachable);
}

/** Reloads the open chat's history (after a snapshot, when live messages may have been missed). */
export function reloadChat() {
  if (chat.id && !chat.sending) loadHistory();
}

/** Listens to the chat form. */
export function wireChat() {
  dom.chatForm.addEventListener('submit', onSend);
}
