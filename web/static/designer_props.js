// The form designer's properties panel: label, key (derived from the label until edited), type
// options, defaults, and conditions checked live by the server's expression checker.
// ``d`` is the designer (its model and its commit step); user data reaches the DOM only as text.
import { api, el, errorText, setError, t } from './jimu.js';

const byId = (id) => document.getElementById(id);

function row(id, labelText, control, extra) {
  return el('div', { class: 'prop' }, el('label', { for: id, text: labelText }), control, extra || null);
}

function input(id, value, onchange, attrs) {
  return el('input', { id, 'data-fid': id, value: value ?? '', onchange: (ev) => onchange(ev.target.value), ...(attrs || {}) });
}

function checkbox(id, labelText, checked, onchange) {
  return el('div', { class: 'prop check' },
    el('input', { type: 'checkbox', id, 'data-fid': id, checked: Boolean(checked), onchange: (ev) => onchange(ev.target.checked) }),
    el('label', { for: id, text: labelText }));
}

function setProp(d, f, prop, value) {
  d.commit(() => {
    if (value === '' || value === null || value === undefined || value === false) delete f[prop];
    else f[prop] = value;
  });
}

function numberOrNull(text) {
  if (String(text).trim() === '') return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

function optionsText(f) {
  return (f.options || []).map((o) => (typeof o === 'object' ? (o.label && o.label !== String(o.value) ? `${o.value} | ${o.label}` : String(o.value)) : String(o))).join('\n');
}
function parseOptions(text) {
  return text.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
    const bar = line.indexOf('|');
    if (bar < 0) return { value: line, label: line };
    const value = line.slice(0, bar).trim();
    return { value: value || line.slice(bar + 1).trim(), label: line.slice(bar + 1).trim() || value };
  });
}

function conditionRow(d, f, prop, labelText) {
  const id = `prop-${prop}`;
  const status = el('p', { class: 'check-status', id: `${id}-status`, 'aria-live': 'polite' });
  const box = el('input', { id, 'data-fid': id, class: 'mono', value: f[prop] || '', 'aria-describedby': `${id}-status`,
    oninput: (ev) => checkLater(d, f, prop, ev.target, status),
    onchange: (ev) => setProp(d, f, prop, ev.target.value.trim()) });
  if (f[prop]) checkLater(d, f, prop, box, status, 0);
  return row(id, labelText, box, status);
}

const timers = {};
function checkLater(d, f, prop, box, status, delay = 300) {
  clearTimeout(timers[prop]);
  timers[prop] = setTimeout(async () => {
    const text = box.value.trim();
    if (!text) { status.replaceChildren(); box.removeAttribute('aria-invalid'); return; }
    const expect = prop === 'default_expression' ? undefined : 'bool';
    const { status: code, data: res } = await api('POST', d.urls.check,
      { app: d.app, entity: d.entityKey, expression: text, expect, fields: d.fields() });
    if (box.value.trim() !== text) return;
    if (code !== 200) { status.textContent = errorText(res, code); return; }
    if (res.ok) {
      box.removeAttribute('aria-invalid');
      status.className = 'check-status ok';
      status.replaceChildren(el('span', { text: `✓ ${t('Valid expression')}` }));
      status.removeAttribute('role');
    } else {
      box.setAttribute('aria-invalid', 'true');
      status.className = 'check-status bad';
      status.setAttribute('role', 'alert');
      const pos = Number.isInteger(res.position) ? res.position : null;
      status.replaceChildren(
        el('span', { text: pos === null ? res.error : `${res.error} (${t('at character %(n)s', { n: pos + 1 })})` }),
        pos === null ? null : el('code', { class: 'caret' }, text.slice(0, pos), el('mark', { text: text.slice(pos, pos + 1) || ' ' }), text.slice(pos + 1)));
    }
  }, delay);
}

export function renderProps(d) {
  const body = byId('props-body');
  const f = d.selected() ? d.field(d.selected()) : null;
  byId('props-empty').hidden = Boolean(f);
  if (!f) { body.replaceChildren(); return; }
  const keyError = el('p', { class: 'field-error', id: 'prop-key-err' });
  const keyBox = input('prop-key', f.key, (value) => {
    const v = value.trim();
    if (!/^[a-z][a-z0-9_]*$/.test(v) || v.length > 40) { setError(keyError, t('Keys use lowercase letters, digits and _, starting with a letter')); return; }
    if (d.RESERVED.has(v)) { setError(keyError, t('%(key)s is a reserved word', { key: v })); return; }
    if (d.fields().some((x) => x !== f && x.key === v)) { setError(keyError, t('Another field has this key')); return; }
    d.commit(() => { d.renameKey(f, v); d.manualKeys.add(v); });
  }, { class: 'mono', 'aria-describedby': 'prop-key-err prop-key-help' });
  const labelBox = input('prop-label', f.label, (value) => d.commit(() => {
    f.label = value;
    if (d.isNew(f) && !d.manualKeys.has(f.key)) {
      const derived = d.freeKey(d.slug(value) || f.type, f);
      if (derived !== f.key) d.renameKey(f, derived);
    }
  }), { maxlength: '200' });
  labelBox.addEventListener('input', () => {
    if (d.isNew(f) && !d.manualKeys.has(f.key)) keyBox.value = d.freeKey(d.slug(labelBox.value) || f.type, f);
  });
  const parts = [
    el('p', { class: 'muted', text: `${t('Type')}: ${d.typeLabel(f.type)} (${f.type})` }),
    row('prop-label', t('Label'), labelBox),
    row('prop-key', t('Key'), keyBox, el('div', {}, el('p', { class: 'help', id: 'prop-key-help',
      text: !d.isNew(f) ? t('Changing the key renames the field; data is kept.') : t('Derived from the label until you edit it.') }), keyError)),
    checkbox('prop-required', t('Required'), f.required, (v) => setProp(d, f, 'required', v)),
    row('prop-help', t('Help text'), input('prop-help', f.help, (v) => setProp(d, f, 'help', v))),
  ];
  if (['select', 'multiselect'].includes(f.type)) {
    parts.push(row('prop-options', t('Options (one per line: value | label)'),
      el('textarea', { id: 'prop-options', 'data-fid': 'prop-options', rows: '5', value: optionsText(f),
        onchange: (ev) => setProp(d, f, 'options', parseOptions(ev.target.value)) })));
  }
  if (!d.TYPES[f.type] || !d.TYPES[f.type].computed) {
    if (f.type === 'boolean') {
      parts.push(row('prop-default', t('Default'), el('select', { id: 'prop-default', 'data-fid': 'prop-default',
        onchange: (ev) => setProp(d, f, 'default', ev.target.value === '' ? null : ev.target.value === 'true') },
      el('option', { value: '', text: '—' }), el('option', { value: 'true', text: t('Yes'), selected: f.default === true }),
      el('option', { value: 'false', text: t('No'), selected: f.default === false }))));
    } else if (f.type !== 'subtable') {
      const numeric = ['number', 'decimal', 'currency', 'percent', 'rating'].includes(f.type);
      parts.push(row('prop-default', t('Default'), input('prop-default', f.default,
        (v) => setProp(d, f, 'default', numeric ? numberOrNull(v) : v))));
    }
  }
  if (['text', 'email', 'phone', 'url', 'textarea'].includes(f.type)) {
    parts.push(row('prop-max_length', t('Maximum length'), input('prop-max_length', f.max_length,
      (v) => setProp(d, f, 'max_length', numberOrNull(v)), { inputmode: 'numeric' })));
  }
  if (['number', 'decimal', 'currency', 'percent', 'rating'].includes(f.type)) {
    parts.push(row('prop-min', t('Minimum'), input('prop-min', f.min, (v) => setProp(d, f, 'min', numberOrNull(v)), { inputmode: 'decimal' })));
    parts.push(row('prop-max', t('Maximum'), input('prop-max', f.max, (v) => setProp(d, f, 'max', numberOrNull(v)), { inputmode: 'decimal' })));
  }
  if (['decimal', 'currency', 'percent'].includes(f.type)) {
    parts.push(row('prop-scale', t('Decimals'), input('prop-scale', f.scale, (v) => setProp(d, f, 'scale', numberOrNull(v)), { inputmode: 'numeric' })));
  }
  if (f.type === 'lookup') {
    parts.push(row('prop-target', t('Links to'), el('select', { id: 'prop-target', 'data-fid': 'prop-target',
      onchange: (ev) => setProp(d, f, 'target', ev.target.value) },
    d.draft().entities.map((e) => el('option', { value: e.key, text: e.label || e.key, selected: f.target === e.key })))));
  }
  if (f.type === 'formula') {
    parts.push(conditionRowExpr(d, f));
    parts.push(row('prop-result_type', t('Result type'), el('select', { id: 'prop-result_type', 'data-fid': 'prop-result_type',
      onchange: (ev) => setProp(d, f, 'result_type', ev.target.value) },
    ['number', 'text', 'bool', 'date', 'datetime'].map((r) => el('option', { value: r, text: r, selected: (f.result_type || 'number') === r })))));
  }
  if (f.type === 'autonumber') {
    parts.push(row('prop-format', t('Number format'), input('prop-format', f.format, (v) => setProp(d, f, 'format', v), { class: 'mono' })));
  }
  if (f.type === 'subtable' || f.type === 'rollup') {
    const prop = f.type === 'subtable' ? 'fields' : 'rollup';
    const err = el('p', { class: 'field-error', id: `prop-${prop}-err` });
    parts.push(row(`prop-${prop}`, f.type === 'subtable' ? t('Columns (JSON)') : t('Roll-up (JSON)'),
      el('textarea', { id: `prop-${prop}`, 'data-fid': `prop-${prop}`, class: 'mono', rows: '6', 'aria-describedby': `prop-${prop}-err`,
        value: JSON.stringify(f[prop] || (prop === 'fields' ? [] : {}), null, 1),
        onchange: (ev) => { try { setProp(d, f, prop, JSON.parse(ev.target.value)); } catch { setError(err, t('Not valid JSON')); } } }), err));
  }
  if (!d.TYPES[f.type] || !d.TYPES[f.type].computed) {
    parts.push(checkbox('prop-unique', t('Unique'), f.unique, (v) => setProp(d, f, 'unique', v)));
    parts.push(checkbox('prop-indexed', t('Indexed (faster filters)'), f.indexed, (v) => setProp(d, f, 'indexed', v)));
  }
  parts.push(el('h3', { text: t('Conditions') }));
  parts.push(conditionRow(d, f, 'visible_if', t('Visible if')));
  if (!d.TYPES[f.type] || !d.TYPES[f.type].computed) {
    parts.push(conditionRow(d, f, 'required_if', t('Required if')));
    parts.push(conditionRow(d, f, 'readonly_if', t('Read-only if')));
    parts.push(conditionRow(d, f, 'default_expression', t('Default (expression)')));
  }
  const errs = d.errorsFor(f.key);
  if (errs.length) parts.push(el('ul', { class: 'errors', role: 'alert' }, errs.map((e) => el('li', { text: `${e.location.split('.').pop()}: ${e.message}` }))));
  parts.push(el('button', { type: 'button', class: 'danger', onclick: () => d.removeField(f.key), text: t('Remove field') }));
  body.replaceChildren(...parts);
}

function conditionRowExpr(d, f) {
  const id = 'prop-expression';
  const status = el('p', { class: 'check-status', id: `${id}-status`, 'aria-live': 'polite' });
  const box = el('input', { id, 'data-fid': id, class: 'mono', value: f.expression || '', 'aria-describedby': `${id}-status`,
    oninput: (ev) => checkLater(d, f, 'expression', ev.target, status),
    onchange: (ev) => setProp(d, f, 'expression', ev.target.value.trim()) });
  return row(id, t('Formula'), box, status);
}

