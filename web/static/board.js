// The kanban board: drag a card (or pick a column in its "Move to" list) to move the record.
// With a workflow the move runs the transition that leads there; otherwise it writes the select
// field. A refusal is shown and the card goes back.
import { api, errorText, readJSON, setError, t } from './jimu.js';

const data = readJSON('board-data');
const errorBox = document.getElementById('board-error');
const statusBox = document.getElementById('board-status');

function labelOf(value) {
  const c = data.columns.find((x) => x.value === value);
  return c ? c.label : value;
}

function placeCard(card, value) {
  const list = document.querySelector(`.cards-col[data-value="${CSS.escape(value)}"]`);
  if (list) list.prepend(card);
  card.dataset.value = value;
  const select = card.querySelector('.move-select');
  if (select) select.value = value;
  for (const col of document.querySelectorAll('.column')) {
    const count = col.querySelector('h2 .count');
    if (count) count.textContent = String(col.querySelectorAll('.kcard').length);
  }
}

async function move(card, target) {
  const from = card.dataset.value;
  if (!data.field || target === from) return;
  setError(errorBox, '');
  statusBox.textContent = t('Moving…');
  const id = card.dataset.id;
  let result;
  if (data.flow) {
    const tr = data.transitions.find((x) => x.to === target && (x.from === null || x.from.includes(from)));
    if (!tr) {
      statusBox.textContent = '';
      setError(errorBox, t('No transition leads from %(from)s to %(to)s', { from: labelOf(from), to: labelOf(target) }));
      placeCard(card, from);
      return;
    }
    result = await api('POST', `/api/v1/apps/${data.app}/${data.entity}/${id}/transitions/${tr.key}`, {});
  } else {
    result = await api('PATCH', `/api/v1/apps/${data.app}/${data.entity}/${id}`, { [data.field]: target || null },
      { 'If-Match': card.dataset.version });
  }
  statusBox.textContent = '';
  if (result.status === 200) {
    const rec = result.data || {};
    if (rec._version) card.dataset.version = String(rec._version);
    placeCard(card, target);
    statusBox.textContent = t('Moved to %(column)s', { column: labelOf(target) });
  } else {
    placeCard(card, from);
    setError(errorBox, errorText(result.data, result.status));
  }
}

if (data && data.field) {
  let dragged = null;
  document.addEventListener('dragstart', (ev) => {
    const card = ev.target.closest && ev.target.closest('.kcard');
    if (!card) return;
    dragged = card;
    ev.dataTransfer.setData('text/plain', card.dataset.id);
    ev.dataTransfer.effectAllowed = 'move';
    card.classList.add('dragging');
  });
  document.addEventListener('dragend', () => {
    if (dragged) dragged.classList.remove('dragging');
    for (const c of document.querySelectorAll('.column.over')) c.classList.remove('over');
  });
  for (const col of document.querySelectorAll('.column')) {
    col.addEventListener('dragover', (ev) => { if (dragged) { ev.preventDefault(); col.classList.add('over'); } });
    col.addEventListener('dragleave', (ev) => { if (!col.contains(ev.relatedTarget)) col.classList.remove('over'); });
    col.addEventListener('drop', (ev) => {
      ev.preventDefault();
      col.classList.remove('over');
      const card = dragged;
      dragged = null;
      if (card) move(card, col.dataset.value);
    });
  }
  for (const select of document.querySelectorAll('.move-select')) {
    select.addEventListener('change', () => move(select.closest('.kcard'), select.value));
  }
}
