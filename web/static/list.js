// The list view: a friendly filter bar that writes the expression language into the filter
// input (checked live against the server), "select all" and option hints for bulk edit.
import { api, el, errorText, readJSON, setError, t } from './jimu.js';

const data = readJSON('filter-data');
const rowsBox = document.getElementById('filter-rows');
const exprInput = document.getElementById('filter');
const exprError = document.getElementById('filter-error');
const appKey = window.location.pathname.split('/')[2];
const entityKey = window.location.pathname.split('/')[3];

const OPS = {
  text: [['eq', 'is'], ['ne', 'is not'], ['contains', 'contains'], ['starts', 'starts with'], ['blank', 'is blank'], ['notblank', 'is not blank']],
  choice: [['eq', 'is'], ['ne', 'is not'], ['blank', 'is blank'], ['notblank', 'is not blank']],
  number: [['eq', '='], ['ne', '≠'], ['gt', '>'], ['ge', '≥'], ['lt', '<'], ['le', '≤'], ['blank', 'is blank'], ['notblank', 'is not blank']],
  bool: [['true', 'is yes'], ['false', 'is no'], ['blank', 'is blank']],
  list: [['has', 'contains'], ['blank', 'is blank'], ['notblank', 'is not blank']],
};
const SYMBOL = { eq: '==', ne: '!=', gt: '>', ge: '>=', lt: '<', le: '<=' };

function kindOf(f) {
  if (f.type === 'list') return 'list';
  if (f.options && f.options.length) return 'choice';
  if (f.type === 'bool') return 'bool';
  if (['number', 'date', 'datetime'].includes(f.type)) return 'number';
  return 'text';
}
function quote(text) { return `'${String(text).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`; }
function literal(f, value) {
  if (f.type === 'number') return /^-?\d+(\.\d+)?$/.test(value.trim()) ? value.trim() : quote(value);
  if (f.type === 'date' || f.type === 'datetime') return `DATE(${quote(value)})`;
  return quote(value);
}

let manual = exprInput ? exprInput.value.trim() : '';
let counter = 0;

function conditionOf(row) {
  const f = data.fields.find((x) => x.key === row.querySelector('.fb-field').value);
  const op = row.querySelector('.fb-op').value;
  const valueNode = row.querySelector('.fb-value');
  const value = valueNode ? valueNode.value : '';
  if (!f) return null;
  if (op === 'blank') return `ISBLANK(${f.key})`;
  if (op === 'notblank') return `not ISBLANK(${f.key})`;
  if (op === 'true') return `${f.key} == True`;
  if (op === 'false') return `${f.key} == False`;
  if (value === '') return null;
  if (op === 'contains') return `CONTAINS(${f.key}, ${quote(value)})`;
  if (op === 'starts') return `STARTSWITH(${f.key}, ${quote(value)})`;
  if (op === 'has') return `CONTAINS(${f.key}, ${quote(value)})`;
  return `${f.key} ${SYMBOL[op]} ${literal(f, value)}`;
}

function rebuild() {
  const parts = [...rowsBox.querySelectorAll('.fb-row')].map(conditionOf).filter(Boolean);
  if (manual) parts.unshift(parts.length ? `(${manual})` : manual);
  exprInput.value = parts.join(' and ');
  check();
}

function valueControl(row, f, op) {
  const old = row.querySelector('.fb-value-wrap');
  const id = `fb-value-${row.dataset.n}`;
  const needs = !['blank', 'notblank', 'true', 'false'].includes(op);
  let control = null;
  if (needs && f.options && f.options.length) {
    control = el('select', { id, class: 'fb-value', onchange: rebuild },
      f.options.map((o) => el('option', { value: o.value, text: o.label })));
  } else if (needs) {
    const type = f.type === 'date' || f.type === 'datetime' ? 'date' : (f.type === 'number' ? 'text' : 'text');
    control = el('input', { id, class: 'fb-value', type, oninput: rebuild, inputmode: f.type === 'number' ? 'decimal' : null });
  }
  const wrap = el('span', { class: 'fb-value-wrap' }, control ? [el('label', { for: id, class: 'sr-only', text: t('Value') }), control] : []);
  if (old) old.replaceWith(wrap); else row.append(wrap);
}

function opControl(row, f) {
  const select = row.querySelector('.fb-op');
  select.replaceChildren(...OPS[kindOf(f)].map(([v, label]) => el('option', { value: v, text: t(label) })));
  valueControl(row, f, select.value);
}

function addRow() {
  counter += 1;
  const n = counter;
  const fieldSel = el('select', { id: `fb-field-${n}`, class: 'fb-field' },
    data.fields.map((f) => el('option', { value: f.key, text: f.label })));
  const opSel = el('select', { id: `fb-op-${n}`, class: 'fb-op' });
  const row = el('div', { class: 'fb-row', dataset: { n: String(n) } },
    el('label', { for: `fb-field-${n}`, class: 'sr-only', text: t('Field') }), fieldSel,
    el('label', { for: `fb-op-${n}`, class: 'sr-only', text: t('Condition') }), opSel);
  const remove = el('button', { type: 'button', class: 'small', 'aria-label': t('Remove condition'), text: '×',
    onclick: () => { row.remove(); rebuild(); } });
  fieldSel.addEventListener('change', () => { opControl(row, data.fields.find((x) => x.key === fieldSel.value)); rebuild(); });
  opSel.addEventListener('change', () => { valueControl(row, data.fields.find((x) => x.key === fieldSel.value), opSel.value); rebuild(); });
  rowsBox.append(row);
  opControl(row, data.fields[0] ? data.fields.find((x) => x.key === fieldSel.value) : null);
  row.append(remove);
  fieldSel.focus();
  rebuild();
}

let timer = null;
function check() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const text = exprInput.value.trim();
    if (!text) { setError(exprError, ''); exprInput.removeAttribute('aria-invalid'); return; }
    const { status, data: res } = await api('POST', '/api/v1/expressions/check',
      { app: appKey, entity: entityKey, expression: text, expect: 'bool', source: 'published' });
    if (exprInput.value.trim() !== text) return;
    if (status === 200 && !res.ok) {
      exprInput.setAttribute('aria-invalid', 'true');
      setError(exprError, Number.isInteger(res.position) ? `${res.error} (${t('at character %(n)s', { n: res.position + 1 })})` : res.error);
    } else if (status === 200) {
      exprInput.removeAttribute('aria-invalid');
      setError(exprError, '');
    } else {
      setError(exprError, errorText(res, status));
    }
  }, 300);
}

if (data && rowsBox && exprInput) {
  document.getElementById('add-condition').addEventListener('click', addRow);
  exprInput.addEventListener('input', () => { manual = exprInput.value.trim(); rowsBox.replaceChildren(); check(); });
}

// "Select all" and option hints for bulk edit
const all = document.getElementById('select-all');
if (all) {
  all.addEventListener('change', () => {
    for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = all.checked;
  });
}
const bulkField = document.getElementById('bulk-field');
const bulkValue = document.getElementById('bulk-value');
if (bulkField && bulkValue && data) {
  const list = el('datalist', { id: 'bulk-options' });
  bulkValue.after(list);
  bulkValue.setAttribute('list', 'bulk-options');
  const sync = () => {
    const f = data.fields.find((x) => x.key === bulkField.value);
    list.replaceChildren(...((f && f.options) || []).map((o) => el('option', { value: o.value, text: o.label })));
  };
  bulkField.addEventListener('change', sync);
  sync();
}
