// Chat messages from A2A answers and from the activity rows the chat history is loaded from.
// Pure, so it runs under `node --test`.
//
// Shapes (README "Chat history" and "The A2A proxy"; the reference canvas reads them the same
// way, canvas/src/components/tabs/chat/ of Molecule-AI/molecule-core):
// - an answer from the proxy is JSON-RPC: `{result: {parts:[{kind:'text',text}]}}` (a message),
//   `{result: {artifacts:[{parts}]}, status:{message:{parts}}}` (a task), or `{error:{message}}`;
// - an `a2a_receive` row with no source is the canvas's chat: `request_body` is the envelope the
//   page sent (`params.message.parts`), `response_body` the agent's answer; a /notify row has
//   no request and `response_body` `{result: "<text>", parts: [file parts]}`.

/** A chat message: `role` is 'user', 'agent' or 'system'; `at` an RFC 3339 time or null. */
export function message(role, text, at = null, files = []) {
  return { role, text, at, files };
}

function textsOf(parts) {
  if (!Array.isArray(parts)) return [];
  return parts
    .filter((p) => p && (p.kind === 'text' || p.type === 'text') && p.text != null)
    .map((p) => String(p.text))
    .filter(Boolean);
}

function filesOf(parts) {
  if (!Array.isArray(parts)) return [];
  const out = [];
  for (const p of parts) {
    if (!p || (p.kind !== 'file' && p.type !== 'file')) continue;
    const file = p.file && typeof p.file === 'object' ? p.file : p;
    if (typeof file.uri !== 'string' || !file.uri) continue;
    out.push({ name: typeof file.name === 'string' && file.name ? file.name : file.uri, uri: file.uri });
  }
  return out;
}

// The places an A2A result keeps its parts: a message, a task's artifacts, its status message.
function partLists(result) {
  const lists = [result.parts];
  if (Array.isArray(result.artifacts)) for (const a of result.artifacts) lists.push(a && a.parts);
  if (result.status && result.status.message) lists.push(result.status.message.parts);
  if (result.message) lists.push(result.message.parts);
  return lists;
}

/**
 * The agent's side of a JSON-RPC answer (or a stored response_body) as one message, or null
 * when it says nothing.
 */
export function answerToMessage(answer, at = null) {
  if (!answer || typeof answer !== 'object') return null;
  if (answer.error && typeof answer.error === 'object') {
    const detail = answer.error.message || JSON.stringify(answer.error);
    return message('system', `Agent error: ${detail}`, at);
  }
  const result = answer.result;
  if (typeof result === 'string') {
    // A /notify row: the text, with its files beside it.
    return result || (answer.parts && answer.parts.length) ? message('agent', result, at, filesOf(answer.parts)) : null;
  }
  if (!result || typeof result !== 'object') return null;
  const lists = partLists(result);
  const text = lists.flatMap(textsOf).join('\n');
  const files = lists.flatMap(filesOf);
  return text || files.length ? message('agent', text, at, files) : null;
}

/** The text the person sent, from the envelope the page posted (`params.message.parts`). */
export function requestText(body) {
  const msg = body && body.params && body.params.message;
  return msg ? textsOf(msg.parts).join('\n') : '';
}

/** The messages one canvas `a2a_receive` row stands for (the question, then the answer). */
export function rowToMessages(row) {
  if (!row || typeof row !== 'object') return [];
  const at = row.created_at || null;
  const out = [];
  const asked = requestText(row.request_body);
  if (asked) out.push(message('user', asked, at));
  const answer = answerToMessage(row.response_body, at);
  if (answer && row.status === 'error') answer.role = 'system';
  if (answer) out.push(answer);
  else if (row.status && row.status !== 'ok') {
    out.push(message('system', `No answer (${row.status})${row.error_detail ? `: ${row.error_detail}` : ''}`, at));
  }
  return out;
}

/** A history answer (rows newest first, as the API returns them) as messages, oldest first. */
export function historyToMessages(rows) {
  if (!Array.isArray(rows)) return [];
  return rows.slice().reverse().flatMap(rowToMessages);
}

/** The body the page posts to `POST /workspaces/:id/a2a` for a chat line (A2A `message/send`). */
export function sendBody(text, messageId) {
  return {
    method: 'message/send',
    params: {
      message: { role: 'user', messageId, parts: [{ kind: 'text', text }] },
    },
  };
}
