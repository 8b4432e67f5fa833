// The builder's rule editor: the draft's rules listed, added, edited and deleted (conditions and
// expressions checked live, errors shown at their position), saved through PUT /draft with the
// server's errors next to their location; and the simulate panel (a sample record dry-run).
import { api, el, errorText, readJSON, t } from './jimu.js';
import {
  ErrorSlots, exprInput, joinList, jsonInput, nextId, rowsEditor, saveAndShow, selectInput, splitList, textInput,
} from './editor_common.js';

const data = readJSON('editor-data');
const KINDS = ['validate', 'compute', 'score', 'assign', 'automation'];
const STRATEGIES = ['fixed', 'round_robin', 'least_loaded'];
const COMMON = ['key', 'kind', 'entity', 'label', 'description', 'on', 'schedule'];
const KIND_KEYS = { validate: ['condition', 'message', 'field'], compute: ['target', 'expression'],
  score: ['target', 'components', 'grades'], assign: ['target', 'routes', 'fallback'], automation: ['condition', 'actions'] };

// A rule changing kind keeps only the settings the new kind reads.
function changeKind(rule, kind) {
  rule.kind = kind;
  for (const k of Object.keys(rule)) if (!COMMON.includes(k) && !(KIND_KEYS[kind] || []).includes(k)) delete rule[k];
}
const kindLabels = () => ({ validate: t('Validation'), compute: t('Computed value'), score: t('Score'),
  assign: t('Assignment'), automation: t('Automation') });
const strategyLabels = () => ({ fixed: t('Fixed'), round_robin: t('Round robin'), least_loaded: t('Least loaded') });
const list = document.getElementById('rules-list');
const form = document.getElementById('rule-form');
const status = document.getElementById('rules-status');
const slots = new ErrorSlots(document.getElementById('rules-errors'));
let draft = data ? data.draft : null;
let current = null;

const rules = () => { draft.rules = Array.isArray(draft.rules) ? draft.rules : []; return draft.rules; };
const entityOpts = () => data.entities.map((e) => [e.key, `${e.label} (${e.key})`]);
const dirty = () => { status.textContent = t('Unsaved changes…'); };

function drawList() {
  list.replaceChildren();
  rules().forEach((r, i) => {
    list.append(el('tr', { class: current === i ? 'selected' : null },
      el('td', { class: 'mono' }, r.key || ''), el('td', {}, r.kind || ''), el('td', {}, r.entity || ''),
      el('td', {}, r.label || ''),
      el('td', {},
        el('button', { type: 'button', class: 'small', 'aria-label': t('Edit %(name)s', { name: r.key || i + 1 }),
          onclick: () => { current = i; drawList(); drawForm(); } }, t('Edit')),
        ' ',
        el('button', { type: 'button', class: 'small danger', 'aria-label': t('Delete %(name)s', { name: r.key || i + 1 }),
          onclick: () => { rules().splice(i, 1); current = null; dirty(); drawList(); drawForm(); } }, t('Delete')))));
  });
  if (!rules().length) list.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, t('No rules yet'))));
}

function drawForm() {
  form.replaceChildren();
  const r = rules()[current];
  if (!r) { form.hidden = true; return; }
  form.hidden = false;
  const loc = `rules[${current}]`;
  const set = (k) => (v) => { if (v === '' || v === undefined || v === null) delete r[k]; else r[k] = v; dirty(); drawList(); };
  const entity = () => r.entity;
  const expr = (label, k, expect, l = `${loc}.${k}`) => exprInput({ app: data.app, entity, label, value: r[k], expect,
    allowPrev: r.kind === 'automation', onchange: set(k), location: l, slots });
  form.append(el('h3', {}, t('Rule %(name)s', { name: r.key || current + 1 })),
    el('div', { class: 'props-grid' },
      textInput(t('Key'), r.key, set('key'), { location: `${loc}.key`, slots, cls: 'mono' }),
      textInput(t('Label'), r.label, set('label'), { location: `${loc}.label`, slots }),
      selectInput(t('Kind'), r.kind, KINDS.map((k) => [k, `${kindLabels()[k]} (${k})`]), (v) => { changeKind(r, v); dirty(); drawList(); drawForm(); },
        { location: `${loc}.kind`, slots }),
      selectInput(t('Entity'), r.entity, entityOpts(), (v) => { r.entity = v; dirty(); drawList(); drawForm(); },
        { location: `${loc}.entity`, slots })));
  const part = el('div', { class: 'kind-part' });
  if (r.kind === 'validate') {
    part.append(expr(t('Condition (must hold)'), 'condition', 'bool'),
      textInput(t('Message'), r.message, set('message'), { location: `${loc}.message`, slots }),
      textInput(t('Field'), r.field, set('field'), { location: `${loc}.field`, slots, cls: 'mono' }));
  } else if (r.kind === 'compute') {
    part.append(textInput(t('Target field'), r.target, set('target'), { location: `${loc}.target`, slots, cls: 'mono' }),
      expr(t('Expression'), 'expression'));
  } else if (r.kind === 'score') {
    r.components = Array.isArray(r.components) ? r.components : [];
    const grades = r.grades && typeof r.grades === 'object' ? r.grades : { field: '', bands: [] };
    grades.bands = Array.isArray(grades.bands) ? grades.bands : [];
    const gradesChanged = () => { if (grades.field || grades.bands.length) r.grades = grades; else delete r.grades; dirty(); };
    const cexpr = (k, expect) => (item, onch, l) => exprInput({ app: data.app, entity, label: t(k === 'condition' ? 'Condition' : 'Expression'),
      value: item[k], expect, onchange: onch, location: l, slots });
    part.append(textInput(t('Target field'), r.target, set('target'), { location: `${loc}.target`, slots, cls: 'mono' }),
      rowsEditor({ title: t('Score components'), items: r.components, location: `${loc}.components`, slots, onchange: dirty,
        blank: () => ({ condition: '', points: 10 }),
        columns: [{ key: 'condition', render: cexpr('condition', 'bool') },
          { key: 'points', render: (item, onch, l) => textInput(t('Points'), item.points, onch, { type: 'number', location: l, slots }) },
          { key: 'expression', render: cexpr('expression', 'number') }] }),
      textInput(t('Grade field'), grades.field, (v) => { grades.field = v; gradesChanged(); }, { location: `${loc}.grades.field`, slots, cls: 'mono' }),
      rowsEditor({ title: t('Grade bands'), items: grades.bands, location: `${loc}.grades.bands`, slots, onchange: gradesChanged,
        blank: () => ({ min: 0, value: '' }),
        columns: [{ key: 'min', render: (item, onch, l) => textInput(t('From score'), item.min, onch, { type: 'number', location: l, slots }) },
          { key: 'value', render: (item, onch, l) => textInput(t('Grade'), item.value, onch, { location: l, slots }) }] }));
  } else if (r.kind === 'assign') {
    r.routes = Array.isArray(r.routes) ? r.routes : [];
    const fallback = r.fallback && typeof r.fallback === 'object' ? r.fallback : {};
    const fallbackChanged = () => { if (fallback.to) r.fallback = fallback; else delete r.fallback; dirty(); };
    const strat = (item, onch, l) => selectInput(t('Strategy'), item.strategy || 'fixed', STRATEGIES.map((s) => [s, `${strategyLabels()[s]} (${s})`]), onch, { location: l, slots });
    part.append(textInput(t('Target field'), r.target, set('target'), { location: `${loc}.target`, slots, cls: 'mono' }),
      textInput(t('On (create, update)'), joinList(r.on), (v) => set('on')(splitList(v)), { location: `${loc}.on`, slots }),
      rowsEditor({ title: t('Routes (the first that holds wins)'), items: r.routes, location: `${loc}.routes`, slots, onchange: dirty,
        blank: () => ({ condition: '', to: '', strategy: 'fixed' }),
        columns: [{ key: 'condition', render: (item, onch, l) => exprInput({ app: data.app, entity, label: t('Condition'), value: item.condition, expect: 'bool', onchange: onch, location: l, slots }) },
          { key: 'to', render: (item, onch, l) => textInput(t('Assign to (user:… team:… role:…)'), item.to, onch, { location: l, slots, cls: 'mono' }) },
          { key: 'strategy', render: strat }] }),
      el('div', { class: 'props-grid' },
        textInput(t('Fallback: assign to'), fallback.to, (v) => { fallback.to = v; fallbackChanged(); }, { location: `${loc}.fallback.to`, slots, cls: 'mono' }),
        strat(fallback, (v) => { fallback.strategy = v; fallbackChanged(); }, `${loc}.fallback.strategy`)));
  } else if (r.kind === 'automation') {
    part.append(textInput(t('On (create, update, schedule)'), joinList(r.on), (v) => set('on')(splitList(v)), { location: `${loc}.on`, slots }),
      expr(t('Condition'), 'condition', 'bool'),
      jsonInput(t('Actions (JSON)'), r.actions, set('actions'), { location: `${loc}.actions`, slots, rows: 8 }));
  }
  form.append(part);
}

async function save() {
  draft = (await saveAndShow(data.app, draft, status, slots)) || draft;
}

// ---------------------------------------------------------------- simulate panel
const simEntity = document.getElementById('sim-entity');
const simFields = document.getElementById('sim-fields');
const simOut = document.getElementById('sim-result');

function drawSimFields() {
  const ent = data.entities.find((e) => e.key === simEntity.value);
  simFields.replaceChildren();
  for (const f of (ent ? ent.fields : [])) {
    if (f.computed) continue;
    const id = nextId('sim');
    let input;
    if (f.type === 'boolean') input = el('input', { id, type: 'checkbox', 'data-key': f.key, 'data-type': f.type });
    else if (f.options && f.options.length) {
      input = el('select', { id, 'data-key': f.key, 'data-type': f.type }, el('option', { value: '' }, ''),
        f.options.map((o) => el('option', { value: o.value }, o.label || o.value)));
    } else input = el('input', { id, 'data-key': f.key, 'data-type': f.type, type: ['number', 'integer', 'decimal', 'currency', 'percent'].includes(f.type) ? 'number' : 'text', step: 'any' });
    simFields.append(el('div', { class: 'prop' }, el('label', { for: id }, `${f.label} `, el('span', { class: 'mono muted' }, f.key)), input));
  }
}

function sampleRecord() {
  const rec = {};
  for (const input of simFields.querySelectorAll('[data-key]')) {
    const k = input.dataset.key;
    if (input.type === 'checkbox') { if (input.checked) rec[k] = true; continue; }
    if (input.value === '') continue;
    rec[k] = input.type === 'number' ? Number(input.value) : (input.dataset.type === 'multiselect' || input.dataset.type === 'tags' ? splitList(input.value) : input.value);
  }
  return rec;
}

const show = (v) => (v === null || v === undefined ? '—' : (typeof v === 'object' ? JSON.stringify(v) : String(v)));

function table(caption, head, rows) {
  return el('table', { class: 'records sim-table' }, el('caption', {}, caption),
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, show(c)))))));
}

function drawResult(res) {
  const parts = [el('p', { class: res.valid ? 'badge ok' : 'badge warn', role: 'status' }, res.valid ? t('Valid record') : t('The record would be refused'))];
  const computed = Object.entries(res.computed || {});
  if (computed.length) parts.push(table(t('Computed values'), [t('Field'), t('Value')], computed));
  const errors = Object.entries(res.errors || {});
  if (errors.length) parts.push(table(t('Errors'), [t('Field'), t('Message')], errors.map(([k, v]) => [k, Array.isArray(v) ? v.join('; ') : v])));
  for (const s of res.scores || []) {
    parts.push(table(t('Score %(rule)s: %(score)s (grade %(grade)s)', { rule: s.rule, score: show(s.score), grade: show(s.grade) }),
      [t('Component'), t('Condition'), t('Inputs'), t('Result'), t('Points')],
      (s.breakdown || []).map((b) => [b.label || b.component + 1, b.condition || b.expression, b.inputs, b.result, b.points])));
  }
  for (const a of res.assignments || []) {
    const chosen = a.assignment || a;
    parts.push(table(t('Assignment %(rule)s: %(who)s', { rule: a.rule, who: show(chosen.chosen) }),
      [t('Route'), t('Condition'), t('Inputs'), t('Result'), t('Assign to')],
      (a.routes || []).map((r) => [r.route + 1, r.condition, r.inputs, r.result, r.to])));
    parts.push(el('p', { class: 'sim-why' }, `${t('Why')}: ${show(chosen.why)}`,
      chosen.loads ? ` · ${t('Loads')}: ${show(chosen.loads)}` : '', ` · ${t('Matched route')}: ${show(a.matched)}`));
  }
  if ((res.actions || []).length) {
    parts.push(table(t('Actions that would run'), [t('Rule'), t('Condition'), t('Inputs'), t('Actions')],
      res.actions.map((a) => [a.rule, a.condition, a.inputs, a.actions])));
  }
  simOut.replaceChildren(...parts);
}

async function simulate(ev) {
  ev.preventDefault();
  simOut.replaceChildren(el('p', { class: 'muted' }, t('Running…')));
  const { status: code, data: res } = await api('POST', `/api/v1/apps/${encodeURIComponent(data.app)}/simulate`,
    { entity: simEntity.value, record: sampleRecord() });
  if (code !== 200) { simOut.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(res, code))); return; }
  drawResult(res);
}

if (data) {
  document.getElementById('add-rule').addEventListener('click', () => {
    const ent = data.entities[0] ? data.entities[0].key : '';
    rules().push({ key: `rule_${rules().length + 1}`, kind: 'validate', entity: ent, condition: '', message: '' });
    current = rules().length - 1;
    dirty(); drawList(); drawForm();
  });
  document.getElementById('save-rules').addEventListener('click', save);
  for (const e of data.entities) simEntity.append(el('option', { value: e.key }, `${e.label} (${e.key})`));
  simEntity.addEventListener('change', drawSimFields);
  document.getElementById('sim-form').addEventListener('submit', simulate);
  drawList(); drawForm(); drawSimFields();
}
