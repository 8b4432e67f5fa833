// Shared parts of the builder's section editors (rules, workflows, reports): saving the draft
// with its server errors shown next to their location, expression inputs checked live by the
// server (the error shown under the text at its character position), and small row editors.
// Everything user-entered reaches the DOM as text only.
import { api, el, t } from './jimu.js';

let uid = 0;
export const nextId = (p) => `${p}-${++uid}`;

function parentLoc(loc) {
  const up = loc.replace(/(\.[^.[\]]*|\[\d+\])$/, '');
  return up === loc ? '' : up;
}

// location -> error node, so that the draft's 422 errors land next to what they are about.
export class ErrorSlots {
  constructor(general) { this.slots = new Map(); this.general = general; }
  slot(location) {
    const node = el('p', { class: 'field-error', 'data-loc': location });
    this.slots.set(location, node);
    return node;
  }
  clear() {
    for (const node of this.slots.values()) { node.textContent = ''; node.removeAttribute('role'); }
    if (this.general) this.general.replaceChildren();
  }
  show(errors) {
    this.clear();
    const left = [];
    for (const e of errors || []) {
      let loc = String(e.location || '');
      let node = null;
      while (loc && !((node = this.slots.get(loc)) && node.isConnected)) loc = parentLoc(loc);
      const text = e.position !== undefined && e.position !== null
        ? `${e.location}: ${e.message} (${t('at character %(n)s', { n: e.position })})` : `${e.location}: ${e.message}`;
      if (node && node.isConnected) {
        node.textContent = node.textContent ? `${node.textContent} · ${text}` : text;
        node.setAttribute('role', 'alert');
      } else left.push(text);
    }
    if (this.general && left.length) this.general.replaceChildren(el('ul', { class: 'errors', role: 'alert' }, left.map((x) => el('li', {}, x))));
  }
}

// PUT the whole draft; answers {ok, draft, errors}.
export async function saveDraft(app, draft) {
  const { status, data } = await api('PUT', `/api/v1/apps/${encodeURIComponent(app)}/draft`, draft);
  if (status === 200) return { ok: true, draft: data, errors: [] };
  const err = (data && data.error) || {};
  const errors = Array.isArray(err.details) ? err.details
    : [{ location: '', message: err.message || t('Something went wrong') }];
  return { ok: false, errors };
}

// Save the draft and say how it went: the status line, the error slots and the "unpublished"
// badge. Answers the saved draft, or null when it was refused.
export async function saveAndShow(app, draft, status, slots) {
  status.textContent = t('Saving…');
  const out = await saveDraft(app, draft);
  if (!out.ok) {
    status.textContent = t('The draft was not saved: %(n)s problems', { n: out.errors.length });
    slots.show(out.errors);
    return null;
  }
  slots.clear();
  status.textContent = t('All changes saved');
  document.getElementById('unpublished-badge').hidden = false;
  return out.draft;
}

// An expression input checked live: the message and a caret under the character at fault.
export function exprInput({ app, entity, label, value, expect, allowPrev, onchange, location, slots }) {
  const id = nextId('expr');
  const input = el('input', { id, class: 'mono expr', value: value || '', 'aria-describedby': `${id}-status`, autocomplete: 'off', spellcheck: 'false' });
  const status = el('p', { class: 'check-status', id: `${id}-status`, 'aria-live': 'polite' });
  const caret = el('pre', { class: 'expr-caret', 'aria-hidden': 'true', hidden: true });
  let timer = null;
  const check = async () => {
    const text = input.value;
    if (!text.trim()) { status.textContent = ''; caret.hidden = true; input.removeAttribute('aria-invalid'); return; }
    const ent = typeof entity === 'function' ? entity() : entity;
    if (!ent) return;
    const body = { app, entity: ent, expression: text, allow_prev: Boolean(allowPrev) };
    if (expect) body.expect = expect;
    const { status: code, data } = await api('POST', '/api/v1/expressions/check', body);
    if (input.value !== text) return;
    if (code !== 200 || !data) { status.textContent = t('Something went wrong'); return; }
    if (data.ok) {
      status.className = 'check-status ok';
      status.textContent = t('Valid expression');
      caret.hidden = true;
      input.removeAttribute('aria-invalid');
    } else {
      const pos = Number.isInteger(data.position) ? data.position : null;
      status.className = 'check-status bad';
      status.textContent = pos === null ? data.error : `${data.error} (${t('at character %(n)s', { n: pos })})`;
      input.setAttribute('aria-invalid', 'true');
      if (pos !== null) {
        caret.replaceChildren(el('span', {}, text.slice(0, pos)), el('mark', { class: 'at' }, text.slice(pos, pos + 1) || ' '),
          el('span', {}, text.slice(pos + 1)), '\n', `${' '.repeat(pos)}^`);
        caret.hidden = false;
      } else caret.hidden = true;
    }
  };
  input.addEventListener('input', () => {
    onchange(input.value);
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 300);
  });
  if (value) window.setTimeout(check, 0);
  const wrap = el('div', { class: 'prop expr-prop' }, el('label', { for: id }, label), input, caret, status);
  if (slots && location) wrap.append(slots.slot(location));
  return wrap;
}

export function textInput(label, value, onchange, { location, slots, type, cls, min, max, list } = {}) {
  const id = nextId('in');
  const input = el('input', { id, type: type || 'text', class: cls, value: value ?? '', min, max, list,
    oninput: (ev) => onchange(type === 'number' ? (ev.target.value === '' ? null : Number(ev.target.value)) : ev.target.value) });
  const wrap = el('div', { class: 'prop' }, el('label', { for: id }, label), input);
  if (slots && location) wrap.append(slots.slot(location));
  return wrap;
}

export function selectInput(label, value, options, onchange, { location, slots } = {}) {
  const id = nextId('sel');
  const select = el('select', { id, onchange: (ev) => onchange(ev.target.value) },
    options.map(([v, text]) => el('option', { value: v, selected: v === value }, text)));
  const wrap = el('div', { class: 'prop' }, el('label', { for: id }, label), select);
  if (slots && location) wrap.append(slots.slot(location));
  return wrap;
}

// "a, b, c" <-> ["a", "b", "c"]
export const splitList = (text) => String(text || '').split(',').map((x) => x.trim()).filter(Boolean);
export const joinList = (v) => (Array.isArray(v) ? v.join(', ') : (v || ''));

// A JSON textarea: parsed on every change, "Not valid JSON" shown until it parses.
export function jsonInput(label, value, onchange, { location, slots, rows } = {}) {
  const id = nextId('json');
  const err = el('p', { class: 'field-error', id: `${id}-err` });
  const area = el('textarea', { id, class: 'mono', rows: rows || 6, 'aria-describedby': `${id}-err`,
    oninput: (ev) => {
      const text = ev.target.value.trim();
      if (!text) { err.textContent = ''; area.removeAttribute('aria-invalid'); onchange(undefined); return; }
      try { onchange(JSON.parse(text)); err.textContent = ''; area.removeAttribute('aria-invalid'); } catch {
        err.textContent = t('Not valid JSON'); area.setAttribute('aria-invalid', 'true');
      }
    } });
  area.value = value === undefined ? '' : JSON.stringify(value, null, 2);
  const wrap = el('div', { class: 'prop' }, el('label', { for: id }, label), area, err);
  if (slots && location) wrap.append(slots.slot(location));
  return wrap;
}

// Rows of small objects (score components, bands, routes, states...): one line each, add/remove.
export function rowsEditor({ title, items, columns, location, slots, onchange, blank }) {
  const box = el('fieldset', { class: 'rows-editor' }, el('legend', {}, title));
  const list = el('div', { class: 'rows' });
  const redraw = () => {
    list.replaceChildren();
    items.forEach((item, i) => {
      const loc = `${location}[${i}]`;
      const cells = columns.map((c) => c.render(item, (v) => { if (v === undefined || v === '' || v === null) delete item[c.key]; else item[c.key] = v; onchange(); }, `${loc}.${c.key}`));
      list.append(el('div', { class: 'row' }, cells,
        el('button', { type: 'button', class: 'small danger', 'aria-label': t('Remove row %(n)s', { n: i + 1 }),
          onclick: () => { items.splice(i, 1); onchange(); redraw(); } }, '×'),
        slots ? slots.slot(loc) : null));
    });
  };
  redraw();
  box.append(list, el('button', { type: 'button', class: 'small', onclick: () => { items.push(blank()); onchange(); redraw(); } }, t('Add row')));
  if (slots && location) box.append(slots.slot(location));
  return box;
}
