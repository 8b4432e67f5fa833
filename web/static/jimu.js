// Shared helpers of Jimu's pages: translated messages, DOM building without HTML strings,
// JSON calls carrying the session's CSRF token, and small page-wide behaviours.
// User data only ever reaches the DOM as text (textContent / createTextNode), never as markup.

export function readJSON(id) {
  const node = document.getElementById(id);
  if (!node) return null;
  try { return JSON.parse(node.textContent); } catch { return null; }
}

const messages = readJSON('i18n-data') || {};

export function t(key, params) {
  let text = messages[key] || key;
  for (const [k, v] of Object.entries(params || {})) text = text.split(`%(${k})s`).join(String(v));
  return text;
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in node) node.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled') node[k] = Boolean(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

export async function api(method, url, body, headers) {
  const opts = {
    method, credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrf(), ...(headers || {}) },
  };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let resp;
  try { resp = await fetch(url, opts); } catch {
    return { status: 0, data: { error: { message: t('Network error, please retry') } } };
  }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  return { status: resp.status, data };
}

export function errorText(data, status) {
  const err = data && data.error;
  if (!err) return status === 404 ? t('Not available yet') : t('Something went wrong');
  const parts = [err.message || err.code];
  if (err.details && typeof err.details === 'object' && !Array.isArray(err.details)) {
    for (const [k, v] of Object.entries(err.details)) {
      if (Array.isArray(v) && v.length && typeof v[0] === 'string') parts.push(`${k}: ${v.join('; ')}`);
    }
  } else if (Array.isArray(err.details)) {
    for (const d of err.details.slice(0, 10)) if (d && d.message) parts.push(`${d.location || ''}: ${d.message}`);
  }
  return parts.join(' · ');
}

export function setError(node, text) {
  if (!node) return;
  node.textContent = text || '';
  if (text) node.setAttribute('role', 'alert'); else node.removeAttribute('role');
}

// Forms that ask before they act (delete, restore).
document.addEventListener('submit', (ev) => {
  const form = ev.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    ev.preventDefault();
  }
});
