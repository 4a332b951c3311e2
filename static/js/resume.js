// Resume bookkeeping for the event stream: which seq the page has applied, which stream (epoch)
// it belongs to, and when it must start over. Pure, so it runs under `node --test`.
//
// The rules are the README's "event stream" section: CONNECTED names the newest seq and the
// epoch; every later frame carries seq n+1; a reconnect asks for `?since=<last>&epoch=<epoch>`;
// a stream that restarted (another epoch, or a newest seq behind ours) or a hole in the seqs
// means what the page holds may be stale, and it reloads.

/** Shortest wait before reconnecting, in ms. */
export const BACKOFF_MIN_MS = 250;
/** Longest wait before reconnecting, in ms. */
export const BACKOFF_MAX_MS = 5000;

/** A cursor that knows no stream yet. */
export function createCursor() {
  // known: a CONNECTED said where the stream is, so a reconnect can resume.
  // anchored: lastSeq is a real position, so a frame skipping past lastSeq + 1 is a gap.
  return { lastSeq: 0, epoch: null, known: false, anchored: false };
}

/** Forgets the stream position (after RESYNC_REQUIRED, a gap, or a restarted stream). */
export function resetCursor(cursor) {
  cursor.lastSeq = 0;
  cursor.epoch = null;
  cursor.known = false;
  cursor.anchored = false;
}

/** The query a (re)connecting socket sends: `{since, epoch?}` when it can resume, else null. */
export function resumeQuery(cursor) {
  if (!cursor.known) return null;
  const query = { since: String(cursor.lastSeq) };
  if (cursor.epoch != null) query.epoch = String(cursor.epoch);
  return query;
}

/**
 * Takes a CONNECTED payload (`{seq, epoch}`; `{}` when the server never sent one).
 * Returns what the page must do:
 * - 'live': a resumed socket in the same stream; the replay follows on it.
 * - 'resync': the stream restarted under a resuming page; reload everything.
 * - 'snapshot': a fresh socket; load `GET /workspaces` (events after `seq` follow).
 */
export function connected(cursor, payload, resuming) {
  const epoch = payload && payload.epoch != null ? payload.epoch : null;
  const newest = payload && payload.seq != null && payload.seq !== '' ? Number(payload.seq) : NaN;
  if (resuming) {
    const epochChanged = epoch != null && cursor.epoch != null && String(epoch) !== String(cursor.epoch);
    if (epochChanged || newest < cursor.lastSeq) return 'resync';
    if (epoch != null) cursor.epoch = epoch;
    return 'live';
  }
  cursor.epoch = epoch;
  cursor.anchored = Number.isFinite(newest);
  cursor.lastSeq = cursor.anchored ? newest : 0;
  cursor.known = true;
  return 'snapshot';
}

/**
 * Decides what to do with a frame carrying an event:
 * - 'apply': new; the cursor has moved to its seq (frames without a seq are always applied).
 * - 'skip': at or below what was applied (a replay overlap, or covered by the snapshot).
 * - 'gap': seqs are missing before it; the page must resync rather than apply it.
 */
export function admit(cursor, frame) {
  if (typeof frame.seq !== 'number') return 'apply';
  if (frame.seq <= cursor.lastSeq) return 'skip';
  if (cursor.anchored && frame.seq > cursor.lastSeq + 1) return 'gap';
  cursor.lastSeq = frame.seq;
  cursor.anchored = true;
  return 'apply';
}

/**
 * The wait before reconnect attempt `attempt` (0 for the first), in ms: exponential from
 * BACKOFF_MIN_MS, capped at BACKOFF_MAX_MS, with "equal jitter" (half fixed, half random) so
 * pages cut off by one restart do not all come back in the same instant. `random` returns a
 * number in [0, 1).
 */
export function backoffDelay(attempt, random = Math.random) {
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 16);
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** exp);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
