// Agent-to-agent traffic on the canvas: when a workspace calls another through the A2A proxy
// (an `a2a_send` ACTIVITY_LOGGED event), a short-lived arrow runs from caller to callee.

import { CARD_H, CARD_W, headCentre } from './canvas.js';
import { dom } from './state.js';

const SVG = 'http://www.w3.org/2000/svg';
/** How long an arrow stays on the canvas, in ms. */
const TRAFFIC_SHOW_MS = 4000;
/** Arrows at once; older ones go first. */
const MAX_ARROWS = 50;

/** Draws an arrow for an ACTIVITY_LOGGED payload when it is one workspace calling another. */
export function onTraffic(activity) {
  if (!activity || activity.activity_type !== 'a2a_send') return;
  const from = activity.source_id && String(activity.source_id);
  const to = activity.target_id && String(activity.target_id);
  if (!from || !to || from === to) return;
  const a = headCentre(from);
  const b = headCentre(to);
  if (!a || !b) return;
  const [start, end] = betweenHeads(a, b);
  const line = document.createElementNS(SVG, 'line');
  line.setAttribute('x1', String(start.x));
  line.setAttribute('y1', String(start.y));
  line.setAttribute('x2', String(end.x));
  line.setAttribute('y2', String(end.y));
  line.setAttribute('marker-end', 'url(#arrow-head)');
  line.classList.add('traffic-arrow');
  if (activity.status && activity.status !== 'ok') line.classList.add('traffic-failed');
  line.dataset.source = from;
  line.dataset.target = to;
  const title = document.createElementNS(SVG, 'title');
  title.textContent = activity.summary || activity.method || 'a2a';
  line.append(title);
  dom.arrows.append(line);
  while (dom.arrows.querySelectorAll('.traffic-arrow').length > MAX_ARROWS) {
    dom.arrows.querySelector('.traffic-arrow').remove();
  }
  setTimeout(() => line.remove(), TRAFFIC_SHOW_MS);
}

// The segment between two head centres, cut where it leaves the first head and enters the
// second, so the arrow head lands on the callee's edge instead of under its text.
function betweenHeads(a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const cut = Math.min(
    dx ? CARD_W / 2 / Math.abs(dx) : Infinity,
    dy ? CARD_H / 2 / Math.abs(dy) : Infinity,
  );
  if (!(cut < 0.5)) return [a, b]; // the heads overlap: nothing to cut
  return [
    { x: a.x + dx * cut, y: a.y + dy * cut },
    { x: b.x - dx * cut, y: b.y - dy * cut },
  ];
}
