// Chat messages from A2A answers and the history rows the server stores.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { answerToMessage, historyToMessages, rowToMessages, sendBody } from '../js/messages.js';

test('the send body is an A2A message/send with one text part', () => {
  assert.deepEqual(sendBody('hi', 'm-1'), {
    method: 'message/send',
    params: { message: { role: 'user', messageId: 'm-1', parts: [{ kind: 'text', text: 'hi' }] } },
  });
});

test('answers: a message, a task, and a JSON-RPC error', () => {
  assert.equal(answerToMessage({ result: { parts: [{ kind: 'text', text: 'echo: hi' }] } }).text, 'echo: hi');
  const task = answerToMessage({
    result: { artifacts: [{ parts: [{ kind: 'text', text: 'a' }] }], status: { message: { parts: [{ type: 'text', text: 'b' }] } } },
  });
  assert.equal(task.text, 'a\nb');
  assert.equal(task.role, 'agent');
  const err = answerToMessage({ error: { code: -32000, message: 'busy' } });
  assert.equal(err.role, 'system');
  assert.match(err.text, /busy/);
  assert.equal(answerToMessage({ result: {} }), null);
  assert.equal(answerToMessage(null), null);
});

test('a proxied chat row is the question and the answer', () => {
  const row = {
    created_at: '2026-12-06T10:00:00Z', status: 'ok',
    request_body: { jsonrpc: '2.0', method: 'message/send', params: { message: { parts: [{ kind: 'text', text: 'hello' }] } } },
    response_body: { jsonrpc: '2.0', result: { parts: [{ kind: 'text', text: 'echo: hello' }] } },
  };
  assert.deepEqual(rowToMessages(row).map((m) => [m.role, m.text, m.at]), [
    ['user', 'hello', '2026-12-06T10:00:00Z'],
    ['agent', 'echo: hello', '2026-12-06T10:00:00Z'],
  ]);
});

test('a notify row is an agent message with its files', () => {
  const row = {
    created_at: 't', status: 'ok', method: 'notify',
    response_body: { result: 'Report ready', parts: [{ kind: 'file', file: { uri: 'file:///r.pdf', name: 'r.pdf' } }] },
  };
  const [only, ...rest] = rowToMessages(row);
  assert.equal(rest.length, 0);
  assert.equal(only.role, 'agent');
  assert.equal(only.text, 'Report ready');
  assert.deepEqual(only.files, [{ name: 'r.pdf', uri: 'file:///r.pdf' }]);
});

test('a failed call without an answer says so', () => {
  const row = {
    created_at: 't', status: 'timeout', error_detail: 'no answer in 5 s',
    request_body: { params: { message: { parts: [{ kind: 'text', text: 'hi' }] } } },
  };
  const messages = rowToMessages(row);
  assert.deepEqual(messages.map((m) => m.role), ['user', 'system']);
  assert.match(messages[1].text, /timeout.*no answer in 5 s/);
});

test('history comes newest first and is shown oldest first', () => {
  const rows = [
    { created_at: '2', status: 'ok', response_body: { result: 'second' } },
    { created_at: '1', status: 'ok', response_body: { result: 'first' } },
  ];
  assert.deepEqual(historyToMessages(rows).map((m) => m.text), ['first', 'second']);
  assert.deepEqual(historyToMessages(null), []);
});
