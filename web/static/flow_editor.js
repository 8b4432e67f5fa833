// The builder's workflow editor: each flow's states and transitions edited through forms and drawn
// as an SVG diagram (boxes for states, arrows for transitions; SVG built node by node, labels as
// text), its SLA policies and the app's calendars as validated JSON; saved through PUT /draft.
import { el, readJSON, t } from './jimu.js';
import {
  ErrorSlots, exprInput, joinList, jsonInput, rowsEditor, saveAndShow, selectInput, splitList, textInput,
} from './editor_common.js';

const SVG = 'http://www.w3.org/2000/svg';
const data = readJSON('editor-data');
const picker = document.getElementById('flow-pick');
const form = document.getElementById('flow-form');
const status = document.getElementById('flows-status');
const slots = new ErrorSlots(document.getElementById('flows-errors'));
let draft = data ? data.draft : null;
let current = 0;

const flows = () => { draft.flows = Array.isArray(draft.flows) ? draft.flows : []; return draft.flows; };
const dirty = () => { status.textContent = t('Unsaved changes…'); };

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const BOX_W = 150; const BOX_H = 46; const GAP_X = 90; const GAP_Y = 40;

// Where the line from the box's centre towards (dx, dy) leaves the box.
function edge(cx, cy, dx, dy) {
  const sx = dx === 0 ? Infinity : (BOX_W / 2) / Math.abs(dx);
  const sy = dy === 0 ? Infinity : (BOX_H / 2) / Math.abs(dy);
  const s = Math.min(sx, sy);
  return [cx + dx * s, cy + dy * s];
}

// Columns by distance from the initial state (breadth first); unreachable states in a last column.
function ranks(flow, states) {
  const rank = new Map();
  const start = states.some((s) => s.key === flow.initial) ? flow.initial : (states[0] || {}).key;
  if (start === undefined) return rank;
  rank.set(start, 0);
  const queue = [start];
  while (queue.length) {
    const at = queue.shift();
    for (const tr of flow.transitions || []) {
      const froms = tr && (Array.isArray(tr.from) ? tr.from : [tr.from]);
      if (!tr || !froms.includes(at) || rank.has(tr.to) || !states.some((s) => s.key === tr.to)) continue;
      rank.set(tr.to, rank.get(at) + 1);
      queue.push(tr.to);
    }
  }
  const last = Math.max(-1, ...rank.values()) + 1;
  for (const s of states) if (!rank.has(s.key)) rank.set(s.key, last);
  return rank;
}

export function drawDiagram(flow, box) {
  const states = (flow.states || []).filter((s) => s && typeof s.key === 'string' && s.key);
  const rank = ranks(flow, states);
  const perColumn = new Map();
  const pos = new Map();
  for (const s of states) {
    const r = rank.get(s.key);
    const i = perColumn.get(r) || 0;
    perColumn.set(r, i + 1);
    pos.set(s.key, [30 + r * (BOX_W + GAP_X), 40 + i * (BOX_H + GAP_Y)]);
  }
  const columns = Math.max(1, ...[...rank.values()].map((r) => r + 1));
  const tallest = Math.max(1, ...perColumn.values());
  const width = 60 + columns * (BOX_W + GAP_X) - GAP_X;
  const height = 80 + tallest * (BOX_H + GAP_Y);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'flow-diagram', id: 'flow-diagram' });
  root.append(svg('title', {}, t('Workflow %(name)s', { name: flow.key || '' })));
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#475467' }));
  defs.append(marker);
  root.append(defs);
  for (const tr of flow.transitions || []) {
    if (!tr || !pos.has(tr.to)) continue;
    for (const f of (Array.isArray(tr.from) ? tr.from : [tr.from])) {
      if (!pos.has(f) || f === tr.to) continue;
      const [ax, ay] = pos.get(f).map((v, k) => v + (k ? BOX_H : BOX_W) / 2);
      const [bx, by] = pos.get(tr.to).map((v, k) => v + (k ? BOX_H : BOX_W) / 2);
      const len = Math.hypot(bx - ax, by - ay) || 1;
      const ux = (bx - ax) / len; const uy = (by - ay) / len;
      // forward steps are straight; back and skipping edges bow out, each direction to its own side
      const bow = (rank.get(tr.to) === rank.get(f) + 1 ? 6 : 40) * (f < tr.to ? 1 : -1);
      const nx = -uy * bow; const ny = ux * bow;
      const [sx, sy] = edge(ax, ay, ux + nx / len, uy + ny / len);
      const [ex, ey] = edge(bx, by, -ux + nx / len, -uy + ny / len);
      const cx = (sx + ex) / 2 + nx; const cy = (sy + ey) / 2 + ny;
      const g = svg('g', { class: 'transition', 'data-transition': tr.key || '', 'data-from': f, 'data-to': tr.to });
      g.append(svg('path', { d: `M ${sx} ${sy} Q ${cx} ${cy} ${ex} ${ey}`, fill: 'none', stroke: '#475467', 'stroke-width': 1.4, 'marker-end': 'url(#arrow)' }));
      g.append(svg('text', { x: (sx + ex) / 4 + cx / 2, y: (sy + ey) / 4 + cy / 2 - 4, 'text-anchor': 'middle', 'font-size': 11, fill: '#344054', class: 't-label' },
        tr.label || tr.key || ''));
      root.append(g);
    }
  }
  for (const s of states) {
    const [x, y] = pos.get(s.key);
    const g = svg('g', { class: 'state', 'data-state': s.key });
    const initial = s.key === flow.initial;
    g.append(svg('rect', { x, y, width: BOX_W, height: BOX_H, rx: 8, fill: s.final ? '#f2f4f7' : '#fff',
      stroke: initial ? '#1570ef' : '#98a2b3', 'stroke-width': initial ? 2.5 : 1.2 }));
    if (s.final) g.append(svg('rect', { x: x + 3, y: y + 3, width: BOX_W - 6, height: BOX_H - 6, rx: 6, fill: 'none', stroke: '#98a2b3' }));
    g.append(svg('text', { x: x + BOX_W / 2, y: y + 20, 'text-anchor': 'middle', 'font-size': 13, fill: '#101828' }, s.label || s.key));
    g.append(svg('text', { x: x + BOX_W / 2, y: y + 36, 'text-anchor': 'middle', 'font-size': 10, fill: '#667085' }, s.key));
    root.append(g);
  }
  box.replaceChildren(root);
}

function drawPicker() {
  picker.replaceChildren(...flows().map((f, i) => el('option', { value: i, selected: i === current }, `${f.key || i + 1} → ${f.entity || ''}`)));
}

function drawForm() {
  form.replaceChildren();
  const f = flows()[current];
  if (!f) { form.append(el('p', { class: 'muted' }, t('No workflows yet'))); return; }
  const loc = `flows[${current}]`;
  f.states = Array.isArray(f.states) ? f.states : [];
  f.transitions = Array.isArray(f.transitions) ? f.transitions : [];
  const diagram = el('div', { class: 'diagram-box' });
  const changed = () => { dirty(); drawDiagram(f, diagram); drawPicker(); };
  const set = (k) => (v) => { if (v === '' || v === undefined) delete f[k]; else f[k] = v; changed(); };
  const entity = () => f.entity;
  form.append(
    el('div', { class: 'props-grid' },
      textInput(t('Key'), f.key, set('key'), { location: `${loc}.key`, slots, cls: 'mono' }),
      textInput(t('Label'), f.label, set('label'), { location: `${loc}.label`, slots }),
      selectInput(t('Entity'), f.entity, data.entities.map((e) => [e.key, `${e.label} (${e.key})`]), set('entity'), { location: `${loc}.entity`, slots }),
      textInput(t('State field'), f.state_field, set('state_field'), { location: `${loc}.state_field`, slots, cls: 'mono' }),
      textInput(t('Initial state'), f.initial, set('initial'), { location: `${loc}.initial`, slots, cls: 'mono' })),
    el('h3', {}, t('Diagram')), diagram,
    rowsEditor({ title: t('States'), items: f.states, location: `${loc}.states`, slots, onchange: changed,
      blank: () => ({ key: `state_${f.states.length + 1}`, label: '' }),
      columns: [
        { key: 'key', render: (s, on, l) => textInput(t('Key'), s.key, on, { location: l, slots, cls: 'mono' }) },
        { key: 'label', render: (s, on, l) => textInput(t('Label'), s.label, on, { location: l, slots }) },
        { key: 'final', render: (s, on) => el('label', { class: 'check' }, el('input', { type: 'checkbox', checked: Boolean(s.final), onchange: (ev) => on(ev.target.checked || undefined) }), ` ${t('Final')}`) }] }),
    rowsEditor({ title: t('Transitions'), items: f.transitions, location: `${loc}.transitions`, slots, onchange: changed,
      blank: () => ({ key: '', from: [], to: '' }),
      columns: [
        { key: 'key', render: (x, on, l) => textInput(t('Key'), x.key, on, { location: l, slots, cls: 'mono' }) },
        { key: 'from', render: (x, on, l) => textInput(t('From (comma separated)'), joinList(x.from), (v) => on(splitList(v)), { location: l, slots, cls: 'mono' }) },
        { key: 'to', render: (x, on, l) => textInput(t('To'), x.to, on, { location: l, slots, cls: 'mono' }) },
        { key: 'roles', render: (x, on, l) => textInput(t('Roles'), joinList(x.roles), (v) => on(splitList(v).length ? splitList(v) : undefined), { location: l, slots }) },
        { key: 'condition', render: (x, on, l) => exprInput({ app: data.app, entity, label: t('Guard condition'), value: x.condition, expect: 'bool', onchange: on, location: l, slots }) },
        { key: 'require', render: (x, on, l) => textInput(t('Required fields'), joinList(x.require), (v) => on(splitList(v).length ? splitList(v) : undefined), { location: l, slots, cls: 'mono' }) }] }),
    jsonInput(t('SLA policies (JSON)'), f.slas, set('slas'), { location: `${loc}.slas`, slots, rows: 8 }));
  drawDiagram(f, diagram);
}

async function save() {
  draft = (await saveAndShow(data.app, draft, status, slots)) || draft;
}

if (data) {
  picker.addEventListener('change', () => { current = Number(picker.value); drawForm(); });
  document.getElementById('add-flow').addEventListener('click', () => {
    const ent = data.entities[0] ? data.entities[0].key : '';
    flows().push({ key: `flow_${flows().length + 1}`, entity: ent, state_field: 'status', initial: 'new',
      states: [{ key: 'new', label: t('New') }, { key: 'done', label: t('Done'), final: true }],
      transitions: [{ key: 'finish', from: ['new'], to: 'done' }] });
    current = flows().length - 1;
    dirty(); drawPicker(); drawForm();
  });
  document.getElementById('delete-flow').addEventListener('click', () => {
    if (!flows()[current] || !window.confirm(t('Delete this workflow?'))) return;
    flows().splice(current, 1); current = 0; dirty(); drawPicker(); drawForm();
  });
  document.getElementById('save-flows').addEventListener('click', save);
  document.getElementById('calendars-box').append(jsonInput(t('Calendars (JSON)'), draft.calendars || [],
    (v) => { draft.calendars = v === undefined ? [] : v; dirty(); }, { location: 'calendars', slots, rows: 10 }));
  drawPicker(); drawForm();
}
