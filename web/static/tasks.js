// My tasks: complete a task, approve or reject an approval, through the REST API.
import { api, errorText, setError, t } from './jimu.js';

const errorBox = document.getElementById('task-error');
for (const button of document.querySelectorAll('.task-act')) {
  button.addEventListener('click', async () => {
    const item = button.closest('.task');
    const id = item.dataset.task;
    const action = button.dataset.action;
    setError(errorBox, '');
    const result = action === 'complete'
      ? await api('POST', `/api/v1/tasks/${id}/complete`, {})
      : await api('POST', `/api/v1/approvals/${id}/decide`, { decision: action });
    if (result.status === 200 || result.status === 204) {
      item.remove();
      const done = document.createElement('p');
      done.setAttribute('role', 'status');
      done.textContent = t('Done');
      errorBox.after(done);
    } else {
      setError(errorBox, errorText(result.data, result.status));
    }
  });
}
