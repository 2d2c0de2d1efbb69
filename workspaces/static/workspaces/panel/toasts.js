// Alerts (stay until dismissed) and toasts (go away by themselves). A toast equal to one already
// shown is not stacked: the shown one counts it ("×2") and stays up longer.
import { el, oneOf } from './dom.js';

function dismissible(box, onClose) {
  const close = el('button', 'nx-dismiss', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', onClose);
  box.appendChild(close);
}

export class Notices {
  constructor(alertsEl, toastsEl, options) {
    this.alertsEl = alertsEl;
    this.toastsEl = toastsEl;
    this.options = options;
    this.toasts = new Map(); // "kind:message" -> {box, count, countEl, timer}
  }

  showAlert(kind, text) {
    const box = el('div', 'nx-alert nx-alert--' + oneOf(kind, ['error', 'warn', 'info'], 'error'));
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    box.appendChild(el('span', 'nx-alert-text', text));
    dismissible(box, () => box.remove());
    this.alertsEl.appendChild(box);
    while (this.alertsEl.childNodes.length > this.options.maxAlerts) this.alertsEl.firstChild.remove();
    return box;
  }

  showToast(type, message) {
    const kind = oneOf(type, ['success', 'info', 'warn', 'error'], type === 'warning' ? 'warn' : 'info');
    const text = message || kind;
    const key = kind + ':' + text;
    const shown = this.toasts.get(key);
    if (shown) {
      shown.count += 1;
      shown.countEl.textContent = '×' + shown.count;
      shown.countEl.hidden = false;
      this.toastsEl.appendChild(shown.box); // the newest goes last
      this.arm(key, shown, kind);
      return shown.box;
    }
    const box = el('div', 'nx-toast nx-toast--' + kind);
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const countEl = el('span', 'nx-toast-count');
    countEl.hidden = true;
    box.append(el('span', 'nx-toast-text', text), countEl);
    const entry = { box, count: 1, countEl, timer: 0 };
    dismissible(box, () => this.removeToast(key));
    this.toasts.set(key, entry);
    this.toastsEl.appendChild(box);
    this.arm(key, entry, kind);
    while (this.toasts.size > this.options.maxToasts) this.removeToast(this.toasts.keys().next().value);
    return box;
  }

  arm(key, entry, kind) {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.removeToast(key), kind === 'error' ? this.options.toastMs * 2 : this.options.toastMs);
  }

  removeToast(key) {
    const entry = this.toasts.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.box.remove();
    this.toasts.delete(key);
  }

  clear() {
    [...this.toasts.keys()].forEach((key) => this.removeToast(key));
  }
}
