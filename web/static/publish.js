// The publish dialog: shows the plan of the draft in words (what is created, renamed, retired,
// where a changed field is used), then publishes it. Used by the app page and the designer.
import { api, el, errorText, setError, t } from './jimu.js';

function summaryWords(summary) {
  const s = summary || {};
  const parts = [];
  const add = (n, key) => { if (n) parts.push(t(key, { n })); };
  add(s.tables_created, 'creates %(n)s tables');
  add(s.columns_added, 'adds %(n)s fields');
  add(s.columns_renamed, 'renames %(n)s fields');
  add(s.columns_retyped, 'changes the type of %(n)s fields');
  add(s.columns_restored, 'restores %(n)s fields');
  if (s.columns_retired) parts.push(t('retires %(n)s fields — data kept', { n: s.columns_retired }));
  if (s.entities_retired) parts.push(t('retires %(n)s entities — data kept', { n: s.entities_retired }));
  return parts.length ? parts.join(', ') : t('no change to tables');
}

export function setupPublish({ app, beforePublish, onPublished }) {
  const dialog = document.getElementById('publish-dialog');
  const body = document.getElementById('publish-body');
  const error = document.getElementById('publish-error');
  const confirm = document.getElementById('publish-confirm');
  const button = document.getElementById('publish-btn');
  if (!dialog || !button) return;

  button.addEventListener('click', async () => {
    setError(error, '');
    body.replaceChildren(el('p', { class: 'muted', text: t('Preparing the plan…') }));
    confirm.disabled = true;
    if (typeof dialog.showModal === 'function') dialog.showModal(); else dialog.setAttribute('open', '');
    if (beforePublish) {
      const ok = await beforePublish();
      if (!ok) { body.replaceChildren(); setError(error, t('Fix the problems of the draft first')); return; }
    }
    const { status, data } = await api('GET', `/api/v1/apps/${app}/plan`);
    if (status !== 200) { body.replaceChildren(); setError(error, errorText(data, status)); return; }
    const steps = el('ul', { class: 'plan-steps' }, (data.steps || []).map((s) => el('li', { text: s })));
    const warnings = (data.where_used || []).map((w) => el('li', { class: 'warn', text:
      t('%(field)s is %(change)s but used in: %(where)s', {
        field: w.field, change: w.change,
        where: (w.used_in || []).map((u) => u.key ? `${u.kind} ${u.key}` : u.location).join(', '),
      }) }));
    body.replaceChildren(
      el('p', { class: 'plan-summary', id: 'plan-summary', text: t('This publish %(what)s.', { what: summaryWords(data.summary) }) }),
      steps,
      warnings.length ? el('ul', { class: 'plan-warnings', role: 'alert' }, warnings) : null,
    );
    confirm.disabled = false;
    confirm.focus();
  });

  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    setError(error, '');
    body.append(el('p', { class: 'muted', id: 'publish-progress', role: 'status', text: t('Publishing… (migrating tables)') }));
    const message = document.getElementById('publish-message').value || undefined;
    const { status, data } = await api('POST', `/api/v1/apps/${app}/publish`, message ? { message } : {});
    document.getElementById('publish-progress')?.remove();
    if (status !== 200) { setError(error, errorText(data, status)); confirm.disabled = false; return; }
    dialog.close();
    if (onPublished) onPublished(data);
  });

  document.getElementById('publish-cancel').addEventListener('click', () => dialog.close());
}
