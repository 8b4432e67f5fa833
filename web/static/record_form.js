// The generated record form in the browser: visible_if / required_if applied live (a small
// evaluator of the common part of the expression language; anything it does not understand
// leaves the field as the server rendered it), hints for required fields, sub-table rows, and
// the workflow's transition buttons. The server stays the authority: every submit goes to it.
import { api, errorText, readJSON, setError, t } from './jimu.js';

const form = document.getElementById('record-form');
const conditions = readJSON('form-conditions') || {};

// ---------------------------------------------------------------- a tiny expression evaluator
function tokenize(src) {
  const out = [];
  const re = /\s*(?:(\d+(?:\.\d+)?)|('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_.]*)|(==|!=|<=|>=|[<>()[\],]))/y;
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(re.lastIndex))) break;
    m = re.exec(src);
    if (!m) throw new Error('syntax');
    if (m[1]) out.push({ k: 'num', v: Number(m[1]) });
    else if (m[2]) out.push({ k: 'str', v: m[2].slice(1, -1).replace(/\\(.)/g, '$1') });
    else if (m[3]) out.push({ k: 'name', v: m[3] });
    else out.push({ k: 'op', v: m[4] });
  }
  return out;
}

const FUNCS = {
  ISBLANK: (x) => x === null || x === '' || (Array.isArray(x) && !x.length),
  NOT: (x) => !truthy(x),
  AND: (...a) => a.every(truthy),
  OR: (...a) => a.some(truthy),
  LEN: (x) => (x === null ? 0 : x.length),
  CONTAINS: (a, b) => (a === null ? false : (Array.isArray(a) ? a.includes(b) : String(a).includes(String(b)))),
  STARTSWITH: (a, b) => (a === null ? false : String(a).startsWith(String(b))),
  LOWER: (x) => (x === null ? null : String(x).toLowerCase()),
  UPPER: (x) => (x === null ? null : String(x).toUpperCase()),
};
function truthy(x) { return !(x === null || x === false || x === 0 || x === '' || (Array.isArray(x) && !x.length)); }

function parse(tokens, values) {
  let i = 0;
  const peek = () => tokens[i];
  const take = () => tokens[i++];
  const isName = (w) => peek() && peek().k === 'name' && peek().v === w;
  const expect = (v) => { const tok = take(); if (!tok || tok.v !== v) throw new Error('syntax'); };
  function orExpr() { let l = andExpr(); while (isName('or')) { take(); const r = andExpr(); l = truthy(l) || truthy(r); } return l; }
  function andExpr() { let l = notExpr(); while (isName('and')) { take(); const r = notExpr(); l = truthy(l) && truthy(r); } return l; }
  function notExpr() { if (isName('not')) { take(); return !truthy(notExpr()); } return compare(); }
  function compare() {
    const l = atom();
    const tok = peek();
    if (tok && tok.k === 'op' && ['==', '!=', '<', '>', '<=', '>='].includes(tok.v)) {
      take();
      return cmp(tok.v, l, atom());
    }
    if (isName('in')) { take(); const r = atom(); return Array.isArray(r) ? r.some((x) => eq(l, x)) : FUNCS.CONTAINS(r, l); }
    if (isName('not') && tokens[i + 1] && tokens[i + 1].v === 'in') { i += 2; const r = atom(); return !(Array.isArray(r) ? r.some((x) => eq(l, x)) : FUNCS.CONTAINS(r, l)); }
    return l;
  }
  function atom() {
    const tok = take();
    if (!tok) throw new Error('syntax');
    if (tok.k === 'num' || tok.k === 'str') return tok.v;
    if (tok.k === 'op' && tok.v === '(') { const v = orExpr(); expect(')'); return v; }
    if (tok.k === 'op' && tok.v === '[') {
      const items = [];
      while (peek() && peek().v !== ']') { items.push(orExpr()); if (peek() && peek().v === ',') take(); }
      expect(']');
      return items;
    }
    if (tok.k === 'name') {
      if (tok.v === 'True') return true;
      if (tok.v === 'False') return false;
      if (tok.v === 'None') return null;
      if (peek() && peek().v === '(') {
        take();
        const args = [];
        while (peek() && peek().v !== ')') { args.push(orExpr()); if (peek() && peek().v === ',') take(); }
        expect(')');
        if (!FUNCS[tok.v]) throw new Error('unknown');
        return FUNCS[tok.v](...args);
      }
      if (!(tok.v in values)) throw new Error('unknown');
      return values[tok.v];
    }
    throw new Error('syntax');
  }
  const v = orExpr();
  if (i !== tokens.length) throw new Error('syntax');
  return v;
}
function num(x) { return typeof x === 'number' ? x : (typeof x === 'string' && x.trim() !== '' && !Number.isNaN(Number(x)) ? Number(x) : x); }
function eq(a, b) { return num(a) === num(b) || (a === null && b === null); }
function cmp(op, a, b) {
  if (op === '==') return eq(a, b);
  if (op === '!=') return !eq(a, b);
  if (a === null || b === null) return false;
  const [x, y] = [num(a), num(b)];
  return { '<': x < y, '>': x > y, '<=': x <= y, '>=': x >= y }[op];
}

export function evaluate(text, values) {
  try { return parse(tokenize(text), values); } catch { return undefined; }
}

// ---------------------------------------------------------------- the form
function currentValues() {
  const values = {};
  for (const node of form.querySelectorAll('[data-field]')) {
    const key = node.dataset.field;
    const boxes = node.querySelectorAll('input[type="checkbox"]');
    const control = node.querySelector(`[name="f_${key}"]`);
    if (boxes.length) values[key] = [...boxes].filter((b) => b.checked).map((b) => b.value);
    else if (control) {
      const v = control.value;
      values[key] = v === '' ? null : (v === 'true' ? true : (v === 'false' ? false : v));
    }
  }
  return values;
}

function applyConditions() {
  const values = currentValues();
  for (const [key, cond] of Object.entries(conditions)) {
    const node = form.querySelector(`[data-field="${CSS.escape(key)}"]`);
    if (!node) continue;
    if (cond.visible_if) {
      const visible = evaluate(cond.visible_if, values);
      if (visible !== undefined) node.hidden = !truthy(visible);
    }
    if (cond.required_if) {
      const required = evaluate(cond.required_if, values);
      if (required !== undefined) {
        node.classList.toggle('required-now', truthy(required));
        const control = node.querySelector(`[name="f_${key}"]`);
        if (control) control.setAttribute('aria-required', truthy(required) || node.dataset.required ? 'true' : 'false');
      }
    }
  }
}

function hint(ev) {
  const node = ev.target.closest('[data-field]');
  if (!node) return;
  const control = node.querySelector('input, select, textarea');
  const err = node.querySelector('.field-error');
  const needed = node.dataset.required || node.classList.contains('required-now');
  if (needed && control && control.value === '' && !node.hidden) {
    control.setAttribute('aria-invalid', 'true');
    setError(err, t('is required'));
  } else if (control && control.getAttribute('aria-invalid') === 'true' && control.value !== '' && err.dataset.server !== '1') {
    control.removeAttribute('aria-invalid');
    setError(err, '');
  }
}

if (form) {
  for (const err of form.querySelectorAll('.field-error[role="alert"]')) err.dataset.server = '1';
  form.addEventListener('input', applyConditions);
  form.addEventListener('change', applyConditions);
  form.addEventListener('focusout', hint);
  applyConditions();
  const firstInvalid = form.querySelector('[aria-invalid="true"]');
  if (firstInvalid) firstInvalid.focus();
  for (const button of form.querySelectorAll('.add-row')) {
    button.addEventListener('click', () => {
      const body = button.closest('fieldset').querySelector('tbody');
      const last = body.querySelector('tr:last-child');
      const copy = last.cloneNode(true);
      const n = body.querySelectorAll('tr').length;
      for (const input of copy.querySelectorAll('input')) {
        input.value = '';
        input.name = input.name.replace(/\[\d+\]\[/, `[${n}][`);
        input.setAttribute('aria-label', input.getAttribute('aria-label').replace(/ \d+ /, ` ${n + 1} `));
      }
      body.append(copy);
      copy.querySelector('input').focus();
    });
  }
}

// ---------------------------------------------------------------- workflow buttons
const record = readJSON('record-data');
const trError = document.getElementById('transition-error');
for (const button of document.querySelectorAll('.transition')) {
  button.addEventListener('click', async () => {
    setError(trError, '');
    button.disabled = true;
    const { status, data } = await api('POST',
      `/api/v1/apps/${record.app}/${record.entity}/${record.id}/transitions/${button.dataset.transition}`, {});
    button.disabled = false;
    if (status === 200) window.location.reload();
    else setError(trError, errorText(data, status));
  });
}
