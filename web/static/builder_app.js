// The builder's app page and app list: publish with its plan, keys derived from names.
import { readJSON, t } from './jimu.js';
import { setupPublish } from './publish.js';

const data = readJSON('builder-data');
if (data) {
  setupPublish({
    app: data.app,
    onPublished: (result) => {
      document.getElementById('unpublished-badge').hidden = true;
      const note = document.createElement('p');
      note.className = 'flash ok';
      note.setAttribute('role', 'status');
      note.textContent = t('Published revision %(n)s', { n: result.revision });
      document.getElementById('main').prepend(note);
      window.setTimeout(() => window.location.reload(), 600);
    },
  });
}

// "Name" -> key suggestion for new apps and entities (ASCII names only; the user may edit it).
function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').replace(/^[^a-z]+/, '').slice(0, 40);
}
for (const [labelId, keyId] of [['app-label', 'app-key'], ['entity-label', 'entity-key']]) {
  const label = document.getElementById(labelId);
  const key = document.getElementById(keyId);
  if (!label || !key) continue;
  key.addEventListener('input', () => { key.dataset.manual = '1'; });
  label.addEventListener('input', () => { if (!key.dataset.manual) key.value = slug(label.value); });
}
