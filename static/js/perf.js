// The page's own timings (issue 17, item 5), exposed as `window.canopyPerf` for the `page`
// benchmark and the console. Off until someone calls `canopyPerf.start()`: before that every
// hook below is one boolean test, so a page nobody measures pays nothing for it.
//
// What it measures, once started:
// - event→screen: per sequenced event, from the moment its frame arrived on the socket to the
//   end of the first animation frame after the page applied it (a rAF callback, then a
//   message posted from it, which runs once that frame's style, layout and paint are done);
// - frame durations: the deltas between animation frames while the view is panned or zoomed
//   (and for 150 ms after the last move), in ms;
// - main-thread busy time: long tasks (≥ 50 ms, PerformanceObserver `longtask`) summed, and the
//   time the page's own event handling took (`script_ms`, measured around it). The benchmark
//   adds Chromium's total task time from the DevTools protocol, which a page cannot read.

const SAMPLE_CAP = 65536; // per series; a 20 s run at 50 events/s needs 1,000
const INTERACTION_TAIL_MS = 150;

const rec = {
  on: false,
  startedAt: 0,
  eventMs: [],
  frameMs: [],
  events: 0,
  byKind: Object.create(null),
  scriptMs: 0,
  longTasks: 0,
  longTaskMs: 0,
  pending: [], // arrival times of events applied since the last animation frame
  rafQueued: false,
  interactingUntil: 0,
  lastFrameAt: 0,
  frameLoop: false,
  observer: null,
};

// Only in a page: in Node (the unit tests) a listening port would keep the process alive.
const channel = typeof window !== 'undefined' && typeof MessageChannel === 'function' ? new MessageChannel() : null;
let painted = []; // arrival times waiting for the message that follows their frame
if (channel) {
  channel.port1.onmessage = () => {
    const now = performance.now();
    for (const t of painted) push(rec.eventMs, now - t);
    painted = [];
  };
}

function push(series, value) {
  if (series.length < SAMPLE_CAP) series.push(value);
}

function afterFrame() {
  rec.rafQueued = false;
  if (!rec.on) {
    rec.pending = [];
    return;
  }
  painted.push(...rec.pending);
  rec.pending = [];
  if (channel) channel.port2.postMessage(0);
  else {
    const now = performance.now();
    for (const t of painted) push(rec.eventMs, now - t);
    painted = [];
  }
}

/** Whether timings are being recorded. */
export function recording() {
  return rec.on;
}

/**
 * One sequenced event was applied: `arrivedAt` is performance.now() when its frame came off
 * the socket, `kind` its event name. Also adds the handling time since `arrivedAt`.
 */
export function eventApplied(arrivedAt, kind) {
  if (!rec.on) return;
  rec.events += 1;
  rec.byKind[kind] = (rec.byKind[kind] || 0) + 1;
  if (!arrivedAt) return; // it arrived before recording started: counted, not timed
  rec.scriptMs += performance.now() - arrivedAt;
  rec.pending.push(arrivedAt);
  if (!rec.rafQueued) {
    rec.rafQueued = true;
    requestAnimationFrame(afterFrame);
  }
}

/** Adds time the page spent in its own work outside event handling (a coalesced flush). */
export function scriptTime(ms) {
  if (rec.on) rec.scriptMs += ms;
}

/** The view was panned or zoomed: frames for the next moment count as interaction frames. */
export function interacting() {
  if (!rec.on) return;
  rec.interactingUntil = performance.now() + INTERACTION_TAIL_MS;
  if (!rec.frameLoop) {
    rec.frameLoop = true;
    rec.lastFrameAt = 0;
    requestAnimationFrame(frameTick);
  }
}

function frameTick(t) {
  if (!rec.on || t > rec.interactingUntil) {
    rec.frameLoop = false;
    return;
  }
  if (rec.lastFrameAt) push(rec.frameMs, t - rec.lastFrameAt);
  rec.lastFrameAt = t;
  requestAnimationFrame(frameTick);
}

/** Starts (or restarts) recording from zero. */
export function start() {
  rec.on = true;
  rec.startedAt = performance.now();
  rec.eventMs = [];
  rec.frameMs = [];
  rec.events = 0;
  rec.byKind = Object.create(null);
  rec.scriptMs = 0;
  rec.longTasks = 0;
  rec.longTaskMs = 0;
  if (!rec.observer && typeof PerformanceObserver === 'function' &&
      (PerformanceObserver.supportedEntryTypes || []).includes('longtask')) {
    rec.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if (entry.startTime < rec.startedAt) continue;
        rec.longTasks += 1;
        rec.longTaskMs += entry.duration;
      }
    });
    rec.observer.observe({ type: 'longtask' });
  }
  return true;
}

/** Stops recording (what was recorded stays readable). */
export function stop() {
  rec.on = false;
  if (rec.observer) {
    rec.observer.disconnect();
    rec.observer = null;
  }
}

/** The `q` quantile (0..1) of `values` (nearest rank), or null when empty. */
export function quantile(values, q) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

function summary(values) {
  const round = (v) => (v == null ? null : Math.round(v * 100) / 100);
  return {
    count: values.length,
    p50: round(quantile(values, 0.5)),
    p95: round(quantile(values, 0.95)),
    p99: round(quantile(values, 0.99)),
    max: round(values.length ? Math.max(...values) : null),
  };
}

/**
 * What was recorded: `{elapsed_ms, events, by_kind, event_to_screen_ms, frame_ms, long_tasks,
 * long_task_ms, busy_long_task_pct, script_ms}`; the `*_ms` series as `{count,p50,p95,p99,max}`.
 * With `raw`, the samples too.
 */
export function report(raw = false) {
  const elapsed = performance.now() - rec.startedAt;
  const out = {
    recording: rec.on,
    elapsed_ms: Math.round(elapsed),
    events: rec.events,
    by_kind: { ...rec.byKind },
    event_to_screen_ms: summary(rec.eventMs),
    frame_ms: summary(rec.frameMs),
    long_tasks: rec.longTasks,
    long_task_ms: Math.round(rec.longTaskMs),
    busy_long_task_pct: elapsed > 0 ? Math.round((rec.longTaskMs / elapsed) * 10000) / 100 : 0,
    script_ms: Math.round(rec.scriptMs),
  };
  if (raw) {
    out.event_samples = [...rec.eventMs];
    out.frame_samples = [...rec.frameMs];
  }
  return out;
}

if (typeof window !== 'undefined') {
  window.canopyPerf = { start, stop, report, recording };
}
