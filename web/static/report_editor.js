// The builder's report builder and dashboard layout: a report's entity, group-by fields, measures,
// chart and filter (checked live); a live preview that saves the draft and runs the spec through
// POST /reports/preview (table + chart image); dashboards as widgets (report + width 1–12) that
// can be reordered. Saved through PUT /draft.
import { api, el, errorText, readJSON, t } from './jimu.js';
import { ErrorSlots, exprInput, rowsEditor, saveAndShow, selectInput, textInput } from './editor_common.js';

const data = readJSON('editor-data');
const AGGS = ['count', 'count_distinct', 'sum', 'avg', 'min', 'max'];
const BUCKETS = ['', 'day', 'week', 'month', 'quarter', 'year'];
const CHARTS = data ? data.charts : [];
const picker = document.getElementById('report-pick');
const form = document.getElementById('report-form');
const preview = document.getElementById('report-preview');
const dashBox = document.getElementById('dashboards-box');
const status = document.getElementById('reports-status');
const slots = new ErrorSlots(document.getElementById('reports-errors'));
let draft = data ? data.draft : null;
let current = 0;

const reports = () => { draft.reports = Array.isArray(draft.reports) ? draft.reports : []; return draft.reports; };
const dashboards = () => { draft.dashboards = Array.isArray(draft.dashboards) ? draft.dashboards : []; return draft.dashboards; };
const dirty = () => { status.textContent = t('Unsaved changes…'); };
const fieldsOf = (key) => { const e = data.entities.find((x) => x.key === key); return e ? e.fields : []; };

function drawPicker() {
  picker.replaceChildren(...reports().map((r, i) => el('option', { value: i, selected: i === current }, `${r.key || i + 1} · ${r.label || ''}`)));
}

function drawForm() {
  form.replaceChildren();
  const r = reports()[current];
  if (!r) { form.append(el('p', { class: 'muted' }, t('No reports yet'))); return; }
  const loc = `reports[${current}]`;
  const set = (k, redraw) => (v) => { if (v === '' || v === undefined || v === null) delete r[k]; else r[k] = v; dirty(); drawPicker(); if (redraw) drawForm(); };
  const fieldOpts = () => [['', '—'], ...fieldsOf(r.entity).map((f) => [f.key, `${f.label} (${f.key})`])];
  const kind = r.kind || 'table';
  form.append(el('div', { class: 'props-grid' },
    textInput(t('Key'), r.key, set('key'), { location: `${loc}.key`, slots, cls: 'mono' }),
    textInput(t('Label'), r.label, set('label'), { location: `${loc}.label`, slots }),
    selectInput(t('Entity'), r.entity, data.entities.map((e) => [e.key, `${e.label} (${e.key})`]), set('entity', true), { location: `${loc}.entity`, slots }),
    selectInput(t('Chart'), r.chart || '', [['', t('Default')], ...CHARTS.map((c) => [c, c])], set('chart'), { location: `${loc}.chart`, slots })),
  exprInput({ app: data.app, entity: () => r.entity, label: t('Filter'), value: r.filter, expect: 'bool', onchange: set('filter'), location: `${loc}.filter`, slots }));
  if (kind !== 'table') {
    form.append(el('p', { class: 'muted' }, t('This %(kind)s report is edited as JSON in the app page.', { kind })));
    return;
  }
  r.group_by = (Array.isArray(r.group_by) ? r.group_by : []).map((g) => (typeof g === 'string' ? { field: g } : g));
  r.measures = Array.isArray(r.measures) ? r.measures : [{ agg: 'count' }];
  form.append(
    rowsEditor({ title: t('Group by'), items: r.group_by, location: `${loc}.group_by`, slots, onchange: dirty, blank: () => ({ field: '' }),
      columns: [{ key: 'field', render: (g, on, l) => selectInput(t('Field'), g.field || '', fieldOpts(), on, { location: l, slots }) },
        { key: 'bucket', render: (g, on, l) => selectInput(t('Bucket'), g.bucket || '', BUCKETS.map((b) => [b, b || '—']), on, { location: l, slots }) }] }),
    rowsEditor({ title: t('Measures'), items: r.measures, location: `${loc}.measures`, slots, onchange: dirty, blank: () => ({ agg: 'count' }),
      columns: [{ key: 'agg', render: (m, on, l) => selectInput(t('Aggregate'), m.agg || 'count', AGGS.map((a) => [a, a]), on, { location: l, slots }) },
        { key: 'field', render: (m, on, l) => selectInput(t('Field'), m.field || '', fieldOpts(), on, { location: l, slots }) },
        { key: 'label', render: (m, on, l) => textInput(t('Label'), m.label, on, { location: l, slots }) }] }));
}

async function save() {
  const saved = await saveAndShow(data.app, draft, status, slots);
  if (saved) draft = saved;
  return saved !== null;
}

function resultTable(result) {
  const cols = result.columns || [];
  const cell = (v) => (v === null || v === undefined ? '' : (typeof v === 'object' ? JSON.stringify(v) : String(v)));
  return el('table', { class: 'records' },
    el('thead', {}, el('tr', {}, cols.map((c) => el('th', { scope: 'col' }, c.label || c.key)))),
    el('tbody', {}, (result.rows || []).map((row) => el('tr', {}, cols.map((c) => el('td', {}, cell(Array.isArray(row) ? row[cols.indexOf(c)] : row[c.key])))))));
}

async function runPreview() {
  const r = reports()[current];
  if (!r) return;
  preview.replaceChildren(el('p', { class: 'muted' }, t('Running…')));
  if (!(await save())) { preview.replaceChildren(el('p', { class: 'error', role: 'alert' }, t('Fix the problems of the draft first'))); return; }
  const { status: code, data: res } = await api('POST', `/api/v1/apps/${encodeURIComponent(data.app)}/reports/preview`, reports()[current]);
  if (code !== 200) {
    preview.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(res, code)));
    if (res && res.error && Array.isArray(res.error.details)) {
      slots.show(res.error.details.map((d) => ({ ...d, location: `reports[${current}]${d.location ? `.${d.location}` : ''}` })));
    }
    return;
  }
  // The chart is an image (data: URL): whatever it holds is drawn, never run.
  const img = el('img', { class: 'chart', alt: r.label || r.key || t('Chart'), src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(res.svg)}` });
  preview.replaceChildren(img, resultTable(res.result));
}

// ---------------------------------------------------------------- dashboards
function drawDashboards() {
  dashBox.replaceChildren();
  const reportOpts = () => reports().map((r) => [r.key, `${r.label || r.key} (${r.key})`]);
  dashboards().forEach((d, di) => {
    const loc = `dashboards[${di}]`;
    d.widgets = Array.isArray(d.widgets) ? d.widgets : [];
    const widgets = el('ol', { class: 'widgets' });
    d.widgets.forEach((w, wi) => {
      const move = (to) => { const [x] = d.widgets.splice(wi, 1); d.widgets.splice(to, 0, x); dirty(); drawDashboards(); };
      widgets.append(el('li', { class: 'widget-row' },
        selectInput(t('Report'), w.report, reportOpts(), (v) => { w.report = v; dirty(); }, { location: `${loc}.widgets[${wi}].report`, slots }),
        textInput(t('Width (1–12)'), w.width ?? 6, (v) => { w.width = v; dirty(); }, { type: 'number', min: 1, max: 12, location: `${loc}.widgets[${wi}].width`, slots }),
        el('button', { type: 'button', class: 'small', disabled: wi === 0, 'aria-label': t('Move %(name)s up', { name: w.report }), onclick: () => move(wi - 1) }, '↑'),
        el('button', { type: 'button', class: 'small', disabled: wi === d.widgets.length - 1, 'aria-label': t('Move %(name)s down', { name: w.report }), onclick: () => move(wi + 1) }, '↓'),
        el('button', { type: 'button', class: 'small danger', 'aria-label': t('Remove %(name)s', { name: w.report }), onclick: () => { d.widgets.splice(wi, 1); dirty(); drawDashboards(); } }, '×')));
    });
    dashBox.append(el('fieldset', { class: 'dashboard-edit' }, el('legend', {}, d.label || d.key),
      el('div', { class: 'props-grid' },
        textInput(t('Key'), d.key, (v) => { d.key = v; dirty(); }, { location: `${loc}.key`, slots, cls: 'mono' }),
        textInput(t('Label'), d.label, (v) => { d.label = v; dirty(); }, { location: `${loc}.label`, slots })),
      widgets,
      el('button', { type: 'button', class: 'small', onclick: () => { d.widgets.push({ report: (reports()[0] || {}).key || '', width: 6 }); dirty(); drawDashboards(); } }, t('Add widget')),
      ' ',
      el('button', { type: 'button', class: 'small danger', onclick: () => { dashboards().splice(di, 1); dirty(); drawDashboards(); } }, t('Delete dashboard'))));
  });
}

if (data) {
  picker.addEventListener('change', () => { current = Number(picker.value); drawForm(); preview.replaceChildren(); });
  document.getElementById('add-report').addEventListener('click', () => {
    const ent = data.entities[0] ? data.entities[0].key : '';
    reports().push({ key: `report_${reports().length + 1}`, label: '', entity: ent, group_by: [], measures: [{ agg: 'count' }], chart: 'bar' });
    current = reports().length - 1;
    dirty(); drawPicker(); drawForm(); drawDashboards();
  });
  document.getElementById('delete-report').addEventListener('click', () => {
    if (!reports()[current] || !window.confirm(t('Delete this report?'))) return;
    reports().splice(current, 1); current = 0; dirty(); drawPicker(); drawForm(); drawDashboards();
  });
  document.getElementById('preview-report').addEventListener('click', runPreview);
  document.getElementById('add-dashboard').addEventListener('click', () => {
    dashboards().push({ key: `dashboard_${dashboards().length + 1}`, label: '', widgets: [] }); dirty(); drawDashboards();
  });
  document.getElementById('save-reports').addEventListener('click', save);
  drawPicker(); drawForm(); drawDashboards();
}
