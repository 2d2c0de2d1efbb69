// The history page: a restore button makes a new revision from an old one (through the REST
// restore endpoint, with the session's CSRF token), then opens the panel.
import { el } from './panel/dom.js';
import { sendJson } from './editor/http.js';

function readConfig() {
  const script = document.getElementById('nexus-history-data');
  try {
    return script ? JSON.parse(script.textContent || '{}') : {};
  } catch (err) {
    return {};
  }
}

function showError(text) {
  const alerts = document.getElementById('nx-history-alerts');
  alerts.textContent = '';
  const box = el('div', 'nx-alert nx-alert--error', text);
  box.setAttribute('role', 'alert');
  alerts.appendChild(box);
}

const config = readConfig();
for (const form of document.querySelectorAll('form.nx-revision-restore')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    const number = form.getAttribute('data-revision');
    const url = config.restoreUrlTemplate.replace('__n__', encodeURIComponent(number));
    const answer = await sendJson(url, 'POST', {}, config.csrfToken);
    button.disabled = false;
    if (answer.ok) {
      globalThis.location.assign(config.panelUrl);
    } else {
      showError(`Revision ${number} was not restored: ` + (answer.code ? answer.code + ': ' : '') + answer.message);
    }
  });
}
