// The panel's own status (running, stopped, mount failed, starting) above its view, with Start
// or Re-mount for those the page says may do it. The tools work only while it is running.
import { el, errorText, isPlainObject, setText } from './dom.js';

export const PANEL_STATUS_TEXT = {
  stopped: 'Stopped',
  error: 'Mount failed',
  initializing: 'Starting…'
};

export class LifecycleBar {
  constructor(controls, { onStarted, showAlert }) {
    this.controls = isPlainObject(controls) ? controls : {};
    this.onStarted = onStarted;
    this.showAlert = showAlert;
    this.status = 'running';
    this.error = null;
    this.el = el('div', 'nx-lifecycle');
    this.el.setAttribute('role', 'status');
    this.text = el('span', 'nx-lifecycle-text');
    this.detail = el('span', 'nx-lifecycle-detail');
    this.button = el('button', 'nx-button nx-button--primary nx-button--small nx-lifecycle-start');
    this.button.type = 'button';
    this.button.addEventListener('click', () => this.start());
    this.el.append(this.text, this.detail, this.button);
    this.el.hidden = true;
  }

  get running() {
    return this.status === 'running';
  }

  show(status, error) {
    this.status = typeof status === 'string' && status ? status : 'running';
    if (error !== undefined) this.error = error;
    if (this.running) this.error = null;
    this.el.hidden = this.running;
    this.el.className = 'nx-lifecycle nx-lifecycle--' + this.status;
    this.el.setAttribute('data-status', this.status);
    this.el.setAttribute('role', this.status === 'error' ? 'alert' : 'status');
    const stopped = this.status === 'stopped';
    setText(this.text, stopped ? 'This panel is stopped; its tools are off until it is started.'
      : this.status === 'error' ? 'This panel did not start: its mount handler failed.'
        : this.status === 'initializing' ? 'This panel is starting…' : '');
    const detail = this.status === 'error' ? errorText(this.error, '') : '';
    setText(this.detail, detail);
    this.detail.hidden = !detail;
    const canStart = Boolean(this.controls.canStart && this.controls.startUrl);
    setText(this.button, stopped ? 'Start' : 'Re-mount');
    this.button.hidden = !canStart || !(stopped || this.status === 'error');
  }

  async start() {
    if (this.button.disabled) return;
    this.button.disabled = true;
    this.button.setAttribute('aria-busy', 'true');
    try {
      const response = await globalThis.fetch(this.controls.startUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { Accept: 'application/json', 'X-CSRFToken': this.controls.csrfToken || '' }
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        this.showAlert('error', `Could not start the panel: ${errorText(body.error || body, 'HTTP ' + response.status)}`);
        return;
      }
      this.show(body.status, body.error || null);
      this.onStarted();
    } catch (err) {
      this.showAlert('error', 'Could not start the panel: the server did not answer.');
    } finally {
      this.button.disabled = false;
      this.button.removeAttribute('aria-busy');
    }
  }
}
