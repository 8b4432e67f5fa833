// The drag-and-drop form designer of one entity.
// Edits the app draft in the browser: the entity's fields and its first form's layout (sections of
// 1–3 columns). Every step can be undone; the draft is saved through PUT /api/v1/apps/{app}/draft
// (the server validates and assigns ids) and published through the publish dialog.
// Labels, keys and options are user data: they reach the DOM only as text.
import { api, el, errorText, readJSON, t } from './jimu.js';
import { renderProps as drawProps } from './designer_props.js';
import { setupPublish } from './publish.js';

const data = readJSON('designer-data');
const ENTITY = data.entity;
const TYPES = Object.fromEntries(data.types.map((x) => [x.name, x]));
const RESERVED = new Set(data.reserved || []);
const PUBLISHED = new Set(data.published_ids || []);   // fields whose key is a column already
const isNew = (f) => !f.id || !PUBLISHED.has(f.id);
const LANG = document.documentElement.lang;
let draft = data.draft;
let selected = null;            // key of the selected field
let activeSection = 0;          // where Enter on a palette item adds
let previewing = false;
let lastErrors = [];
const manualKeys = new Set();   // fields whose key the user typed
const undoStack = [];
const redoStack = [];

const $ = (id) => document.getElementById(id);
const typeLabel = (name) => (TYPES[name] ? (LANG === 'en' ? TYPES[name].en : TYPES[name].zh) : name);

// ------------------------------------------------------------------ the model
function entity() { return draft.entities.find((e) => e.key === ENTITY); }
function fields() { return entity().fields || (entity().fields = []); }
function field(key) { return fields().find((f) => f.key === key); }

function form() {
  draft.forms = draft.forms || [];
  let f = draft.forms.find((x) => x.entity === ENTITY && !x.public) || draft.forms.find((x) => x.entity === ENTITY);
  if (!f) {
    const taken = new Set(draft.forms.map((x) => x.key));
    let key = `${ENTITY}_form`.slice(0, 36);
    for (let n = 2; taken.has(key); n += 1) key = `${ENTITY}_form${n}`;
    f = { key, entity: ENTITY, label: entity().label || ENTITY,
      layout: [{ section: entity().label || ENTITY, columns: 1, fields: fields().map((x) => x.key) }] };
    draft.forms.push(f);
  }
  if (!Array.isArray(f.layout) || !f.layout.length) f.layout = [{ section: '', columns: 1, fields: [] }];
  return f;
}
function sections() { return form().layout; }
function placed() { return new Set(sections().flatMap((s) => s.fields)); }

function snapshot() {
  const e = entity();
  return JSON.stringify({ label: e.label, title_field: e.title_field, fields: e.fields, layout: form().layout });
}
function restore(snap) {
  const s = JSON.parse(snap);
  const e = entity();
  e.label = s.label;
  if (s.title_field) e.title_field = s.title_field; else delete e.title_field;
  e.fields = s.fields;
  form().layout = s.layout;
}

function commit(mutate) {
  undoStack.push(snapshot());
  if (undoStack.length > 200) undoStack.shift();
  redoStack.length = 0;
  mutate();
  changed();
}
function changed() {
  render();
  scheduleSave();
}

function slug(text) {
  return String(text || '').toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '')
    .replace(/^[^a-z]+/, '').slice(0, 36);
}
function freeKey(base, except) {
  let key = base && !RESERVED.has(base) ? base : `${base || 'field'}_1`;
  const taken = new Set(fields().filter((f) => f !== except).map((f) => f.key));
  if (!taken.has(key) && !RESERVED.has(key)) return key;
  for (let n = 2; ; n += 1) {
    const k = `${base || 'field'}_${n}`;
    if (!taken.has(k) && !RESERVED.has(k)) return k;
  }
}
function freeLabel(base) {
  const labels = new Set(fields().map((f) => f.label));
  if (!labels.has(base)) return base;
  for (let n = 2; ; n += 1) if (!labels.has(`${base} ${n}`)) return `${base} ${n}`;
}

function newField(type) {
  const label = freeLabel(typeLabel(type));
  const f = { key: freeKey(slug(label) || type), type, label };
  if (type === 'select' || type === 'multiselect') {
    f.options = [{ value: 'option_1', label: t('Option 1') }, { value: 'option_2', label: t('Option 2') }];
  } else if (type === 'lookup') {
    f.target = (draft.entities.find((e) => e.key !== ENTITY) || entity()).key;
  } else if (type === 'formula') {
    f.expression = '1'; f.result_type = 'number';
  } else if (type === 'autonumber') {
    f.format = '{0000}';
  } else if (type === 'subtable') {
    f.fields = [{ key: 'item', type: 'text', label: t('Item') }];
  } else if (type === 'rollup') {
    f.rollup = { entity: ENTITY, via: '', agg: 'count' };
  }
  return f;
}

function insertAt(sectionIdx, index, key) {
  for (const s of sections()) s.fields = s.fields.filter((k) => k !== key);
  const target = sections()[sectionIdx] || sections()[sections().length - 1];
  const i = Math.max(0, Math.min(index ?? target.fields.length, target.fields.length));
  target.fields.splice(i, 0, key);
}

function addField(type, sectionIdx, index) {
  focusLater('[data-fid="prop-label"]');
  commit(() => {
    const f = newField(type);
    fields().push(f);
    insertAt(sectionIdx, index, f.key);
    selected = f.key;
  });
}

function moveField(key, sectionIdx, index) {
  const where = locate(key);
  if (where && where.section === sectionIdx && index > where.index) index -= 1;
  if (where && where.section === sectionIdx && index === where.index) return;
  commit(() => insertAt(sectionIdx, index, key));
}

function locate(key) {
  const list = sections();
  for (let s = 0; s < list.length; s += 1) {
    const i = list[s].fields.indexOf(key);
    if (i >= 0) return { section: s, index: i };
  }
  return null;
}

function step(key, delta) {
  const where = locate(key);
  if (!where) return;
  const list = sections();
  let { section, index } = where;
  index += delta;
  if (index < 0) {
    if (section === 0) return;
    section -= 1; index = list[section].fields.length;
  } else if (index >= list[section].fields.length) {
    if (section === list.length - 1) return;
    section += 1; index = 0;
  }
  focusLater(`[data-fid="${delta < 0 ? 'up' : 'down'}-${key}"]`);
  commit(() => {
    list[where.section].fields.splice(where.index, 1);
    list[section].fields.splice(index, 0, key);
  });
}

function removeField(key) {
  commit(() => {
    const e = entity();
    e.fields = fields().filter((f) => f.key !== key);
    for (const s of sections()) s.fields = s.fields.filter((k) => k !== key);
    if (e.title_field === key) delete e.title_field;
    if (selected === key) selected = null;
  });
}

function renameKey(f, key) {
  const old = f.key;
  f.key = key;
  for (const s of sections()) s.fields = s.fields.map((k) => (k === old ? key : k));
  if (entity().title_field === old) entity().title_field = key;
  if (selected === old) selected = key;
  if (manualKeys.delete(old)) manualKeys.add(key);
}

// ------------------------------------------------------------------ rendering
let pendingFocus = null;
function focusLater(selector) { pendingFocus = selector; }

function render() {
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.fid : null;
  renderEntityProps();
  renderCanvas();
  renderTray();
  renderProps();
  if (previewing) renderPreview();
  $('undo').disabled = !undoStack.length;
  $('redo').disabled = !redoStack.length;
  const target = pendingFocus ? document.querySelector(pendingFocus)
    : (focused ? document.querySelector(`[data-fid="${CSS.escape(focused)}"]`) : null);
  pendingFocus = null;
  if (target) target.focus();
}

function renderEntityProps() {
  const e = entity();
  const label = $('entity-label');
  if (document.activeElement !== label) label.value = e.label || '';
  $('entity-title').textContent = e.label || e.key;
  const select = $('title-field');
  select.replaceChildren(el('option', { value: '', text: '—' }),
    fields().filter((f) => ['text', 'email', 'phone', 'autonumber', 'select'].includes(f.type))
      .map((f) => el('option', { value: f.key, text: f.label || f.key, selected: e.title_field === f.key })));
}

function errorsFor(key) {
  const idx = draft.entities.findIndex((e) => e.key === ENTITY);
  const i = fields().findIndex((f) => f.key === key);
  const prefix = `entities[${idx}].fields[${i}]`;
  return lastErrors.filter((e) => String(e.location || '').startsWith(prefix)
    && !/^\[\d/.test(String(e.location).slice(prefix.length)));
}

function card(key, sectionIdx) {
  const f = field(key);
  const errs = errorsFor(key);
  const name = f.label || f.key;
  return el('li', {
    class: `dcard${selected === key ? ' selected' : ''}${errs.length ? ' has-error' : ''}`,
    draggable: 'true', dataset: { key, section: String(sectionIdx) },
  },
  el('span', { class: 'handle', 'aria-hidden': 'true', title: t('Drag to move'), text: '⠿' }),
  el('button', {
    type: 'button', class: 'card-main', 'data-fid': `card-${key}`, 'aria-pressed': selected === key ? 'true' : 'false',
    onclick: () => { selected = key; activeSection = sectionIdx; focusLater('[data-fid="prop-label"]'); render(); },
  },
  el('span', { class: 'card-label', text: name }),
  f.required ? el('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null,
  el('span', { class: 'card-type muted', text: ` ${typeLabel(f.type)}` }),
  f.required_if ? el('span', { class: 'muted small', text: ` · ${t('required if')}` }) : null),
  el('span', { class: 'card-tools' },
    el('button', { type: 'button', class: 'icon', 'data-fid': `up-${key}`, 'aria-label': t('Move %(name)s up', { name }), onclick: () => step(key, -1), text: '↑' }),
    el('button', { type: 'button', class: 'icon', 'data-fid': `down-${key}`, 'aria-label': t('Move %(name)s down', { name }), onclick: () => step(key, 1), text: '↓' }),
    el('button', { type: 'button', class: 'icon danger', 'aria-label': t('Remove %(name)s', { name }), onclick: () => removeField(key), text: '×' })),
  errs.length ? el('span', { class: 'card-error', text: errs.map((e) => e.message).join('; ') }) : null);
}

function renderCanvas() {
  const canvas = $('canvas');
  canvas.replaceChildren(...sections().map((s, i) => el('section', {
    class: `dsection cols-${s.columns || 1}${i === activeSection ? ' active' : ''}`, dataset: { section: String(i) },
    'aria-label': s.section || t('Section %(n)s', { n: i + 1 }),
  },
  el('div', { class: 'dsection-head' },
    el('label', { for: `sec-title-${i}`, class: 'sr-only', text: t('Section title') }),
    el('input', { id: `sec-title-${i}`, 'data-fid': `sec-title-${i}`, class: 'sec-title', value: s.section || '',
      placeholder: t('Section title'), onchange: (ev) => commit(() => { s.section = ev.target.value; }) }),
    el('label', { for: `sec-cols-${i}`, text: t('Columns') }),
    el('select', { id: `sec-cols-${i}`, 'data-fid': `sec-cols-${i}`,
      onchange: (ev) => commit(() => { s.columns = Number(ev.target.value); }) },
    [1, 2, 3].map((n) => el('option', { value: String(n), text: String(n), selected: (s.columns || 1) === n }))),
    el('button', { type: 'button', class: 'small', 'aria-label': t('Select section %(n)s', { n: i + 1 }),
      'aria-pressed': i === activeSection ? 'true' : 'false', 'data-fid': `sec-pick-${i}`,
      onclick: () => { activeSection = i; render(); }, text: t('Add here') }),
    sections().length > 1 ? el('button', { type: 'button', class: 'small danger', text: t('Remove section'),
      onclick: () => commit(() => { sections().splice(i, 1); activeSection = 0; }) }) : null),
  el('ul', { class: 'dgrid', dataset: { section: String(i) } },
    s.fields.length ? s.fields.map((k) => card(k, i)) : el('li', { class: 'drop-empty', text: t('Drop fields here') })))));
}

function renderTray() {
  const on = placed();
  const loose = fields().filter((f) => !on.has(f.key));
  $('tray-wrap').hidden = !loose.length;
  $('tray').replaceChildren(...loose.map((f) => el('li', { class: 'tray-item', draggable: 'true', dataset: { key: f.key } },
    el('span', { text: `${f.label || f.key} (${typeLabel(f.type)})` }),
    el('button', { type: 'button', class: 'small', text: t('Add to form'),
      onclick: () => commit(() => insertAt(activeSection, undefined, f.key)) }))));
}

function renderPalette() {
  $('palette').replaceChildren(...data.types.map((ty) => el('li', {
    class: 'ptype', draggable: 'true', tabindex: '0', role: 'button', dataset: { type: ty.name },
    'aria-label': t('Add field: %(type)s', { type: typeLabel(ty.name) }),
    onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); addField(ty.name, activeSection); } },
  }, el('span', { text: typeLabel(ty.name) }), el('span', { class: 'muted small mono', text: ` ${ty.name}` }))));
}

// ------------------------------------------------------------------ properties panel
const designer = {
  app: data.app, entityKey: ENTITY, urls: data.urls, TYPES, RESERVED, manualKeys,
  draft: () => draft, selected: () => selected, fields, field, commit, renameKey, removeField, errorsFor,
  isNew, freeKey, slug, typeLabel,
};
function renderProps() { drawProps(designer); }

// ------------------------------------------------------------------ preview
function renderPreview() {
  const out = sections().map((s, i) => el('fieldset', { class: `section cols-${s.columns || 1}` },
    s.section ? el('legend', { text: s.section }) : null,
    el('div', { class: 'grid' }, s.fields.map((k) => {
      const f = field(k);
      const id = `pv-${i}-${k}`;
      let control;
      if (f.type === 'select') control = el('select', { id, disabled: true }, el('option', { text: '—' }), (f.options || []).map((o) => el('option', { text: typeof o === 'object' ? (o.label || o.value) : o })));
      else if (f.type === 'textarea') control = el('textarea', { id, disabled: true, rows: '3' });
      else if (TYPES[f.type] && TYPES[f.type].computed) control = el('span', { id, class: 'muted', text: t('(computed)') });
      else control = el('input', { id, disabled: true, type: f.type === 'date' ? 'date' : 'text' });
      return el('div', { class: 'field' }, el('label', { for: id }, f.label || f.key, f.required ? el('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null), control);
    }))));
  $('preview').replaceChildren(el('h3', { text: t('Preview') }), ...out);
}

// ------------------------------------------------------------------ saving
let saveTimer = null;
let saving = null;
let dirty = false;
let revision = 0;

function scheduleSave() {
  dirty = true;
  revision += 1;
  $('save-status').textContent = t('Unsaved changes…');
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, 600);
}

async function save() {
  clearTimeout(saveTimer);
  if (saving) { await saving; if (!dirty) return !lastErrors.length; }
  if (!dirty) return !lastErrors.length;
  const sent = revision;
  form();
  $('save-status').textContent = t('Saving…');
  saving = api('PUT', data.urls.draft, draft);
  const { status, data: res } = await saving;
  saving = null;
  if (status === 200) {
    lastErrors = [];
    mergeIds(res);
    if (sent === revision) { dirty = false; $('save-status').textContent = t('All changes saved'); }
    $('unpublished-badge').hidden = false;
    showErrors();
  } else {
    if (sent === revision) dirty = false;
    lastErrors = res && res.error && Array.isArray(res.error.details) ? res.error.details
      : [{ location: '', message: errorText(res, status) }];
    $('save-status').textContent = t('Not saved: %(n)s problems', { n: lastErrors.length });
    showErrors();
  }
  render();
  if (dirty) return save();
  return !lastErrors.length;
}

function mergeIds(saved) {
  const ids = {};
  for (const e of saved.entities || []) {
    ids[`e:${e.key}`] = e.id;
    for (const f of e.fields || []) ids[`${e.key}:${f.key}`] = f.id;
  }
  for (const e of draft.entities) {
    if (!e.id && ids[`e:${e.key}`]) e.id = ids[`e:${e.key}`];
    for (const f of e.fields || []) if (!f.id && ids[`${e.key}:${f.key}`]) f.id = ids[`${e.key}:${f.key}`];
  }
  const patch = (snap) => {
    const s = JSON.parse(snap);
    for (const f of s.fields || []) if (!f.id && ids[`${ENTITY}:${f.key}`]) f.id = ids[`${ENTITY}:${f.key}`];
    return JSON.stringify(s);
  };
  undoStack.splice(0, undoStack.length, ...undoStack.map(patch));
  redoStack.splice(0, redoStack.length, ...redoStack.map(patch));
}

function showErrors() {
  const box = $('designer-errors');
  const idx = draft.entities.findIndex((e) => e.key === ENTITY);
  const mine = `entities[${idx}].fields[`;
  const other = lastErrors.filter((e) => !String(e.location || '').startsWith(mine));
  box.hidden = !lastErrors.length;
  box.replaceChildren(...(lastErrors.length ? [
    el('p', { text: t('The draft was not saved: %(n)s problems', { n: lastErrors.length }) }),
    el('ul', {}, other.map((e) => el('li', { text: `${e.location}: ${e.message}` }))),
  ] : []));
}

// ------------------------------------------------------------------ drag and drop
function dropPlace(ev) {
  const cardEl = ev.target.closest('.dcard');
  const grid = ev.target.closest('.dgrid');
  if (!grid) return null;
  const sectionIdx = Number(grid.dataset.section);
  if (!cardEl) return { sectionIdx, index: undefined, marker: grid, where: 'end' };
  const rect = cardEl.getBoundingClientRect();
  const cols = sections()[sectionIdx].columns || 1;
  const before = cols > 1 ? ev.clientX < rect.left + rect.width / 2 : ev.clientY < rect.top + rect.height / 2;
  const index = sections()[sectionIdx].fields.indexOf(cardEl.dataset.key) + (before ? 0 : 1);
  return { sectionIdx, index, marker: cardEl, where: before ? 'before' : 'after' };
}

function clearMarkers() {
  for (const n of document.querySelectorAll('.drop-before, .drop-after, .drop-end')) {
    n.classList.remove('drop-before', 'drop-after', 'drop-end');
  }
}

function setupDnd() {
  document.addEventListener('dragstart', (ev) => {
    const p = ev.target.closest && ev.target.closest('.ptype, .dcard, .tray-item');
    if (!p) return;
    const payload = p.classList.contains('ptype') ? `type:${p.dataset.type}` : `field:${p.dataset.key}`;
    ev.dataTransfer.setData('text/plain', payload);
    ev.dataTransfer.effectAllowed = p.classList.contains('ptype') ? 'copy' : 'move';
    p.classList.add('dragging');
  });
  document.addEventListener('dragend', (ev) => {
    if (ev.target.classList) ev.target.classList.remove('dragging');
    clearMarkers();
  });
  const canvas = $('canvas');
  canvas.addEventListener('dragover', (ev) => {
    const place = dropPlace(ev);
    if (!place) return;
    ev.preventDefault();
    clearMarkers();
    place.marker.classList.add(`drop-${place.where}`);
  });
  canvas.addEventListener('dragleave', (ev) => { if (!canvas.contains(ev.relatedTarget)) clearMarkers(); });
  canvas.addEventListener('drop', (ev) => {
    const place = dropPlace(ev);
    clearMarkers();
    if (!place) return;
    ev.preventDefault();
    const payload = ev.dataTransfer.getData('text/plain') || '';
    const [kind, name] = [payload.slice(0, payload.indexOf(':')), payload.slice(payload.indexOf(':') + 1)];
    activeSection = place.sectionIdx;
    if (kind === 'type' && TYPES[name]) addField(name, place.sectionIdx, place.index);
    else if (kind === 'field' && field(name)) moveField(name, place.sectionIdx, place.index ?? sections()[place.sectionIdx].fields.length);
  });
}

// ------------------------------------------------------------------ wiring
function undo() {
  if (!undoStack.length) return;
  redoStack.push(snapshot());
  restore(undoStack.pop());
  if (selected && !field(selected)) selected = null;
  changed();
}
function redo() {
  if (!redoStack.length) return;
  undoStack.push(snapshot());
  restore(redoStack.pop());
  if (selected && !field(selected)) selected = null;
  changed();
}

$('undo').addEventListener('click', undo);
$('redo').addEventListener('click', redo);
document.addEventListener('keydown', (ev) => {
  const inField = ev.target.closest && ev.target.closest('input, textarea, select');
  if (!(ev.ctrlKey || ev.metaKey) || inField) return;
  if (ev.key === 'z' && !ev.shiftKey) { ev.preventDefault(); undo(); }
  if (ev.key === 'y' || (ev.key === 'z' && ev.shiftKey)) { ev.preventDefault(); redo(); }
});
$('add-section').addEventListener('click', () => commit(() => {
  sections().push({ section: t('Section %(n)s', { n: sections().length + 1 }), columns: 1, fields: [] });
  activeSection = sections().length - 1;
}));
$('preview-toggle').addEventListener('click', (ev) => {
  previewing = !previewing;
  ev.currentTarget.setAttribute('aria-pressed', previewing ? 'true' : 'false');
  $('preview').hidden = !previewing;
  $('canvas').hidden = previewing;
  render();
});
$('entity-label').addEventListener('change', (ev) => commit(() => { entity().label = ev.target.value; }));
$('title-field').addEventListener('change', (ev) => commit(() => {
  if (ev.target.value) entity().title_field = ev.target.value; else delete entity().title_field;
}));
window.addEventListener('beforeunload', (ev) => { if (dirty || saving) { ev.preventDefault(); } });

setupPublish({
  app: data.app,
  beforePublish: () => save(),
  onPublished: (result) => {
    $('unpublished-badge').hidden = true;
    $('save-status').textContent = t('Published revision %(n)s', { n: result.revision });
  },
});

for (const s of form().layout) s.fields = (s.fields || []).filter((k) => field(k));   // drop stale keys once
renderPalette();
setupDnd();
render();
document.body.dataset.designerReady = '1';
