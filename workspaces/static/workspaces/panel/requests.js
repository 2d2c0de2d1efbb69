// TRIGGER and SET requests in flight: each waits for its RESULT (or ERROR) by request id, keeps
// its control busy meanwhile, and gives up with a warning after requestTimeoutMs.
import { errorText, isPlainObject } from './dom.js';

export class Requests {
  constructor({ send, showAlert, timeoutMs }) {
    this.send = send;
    this.showAlert = showAlert;
    this.timeoutMs = timeoutMs;
    this.pending = new Map();
    this.counter = 0;
  }

  nextId() {
    this.counter += 1;
    return `req-${Date.now().toString(36)}-${this.counter}`;
  }

  has(requestId) {
    return this.pending.has(requestId);
  }

  trigger(control, tool, args, scope) {
    const requestId = this.nextId();
    const message = { type: 'TRIGGER', tool, args, requestId };
    if (isPlainObject(scope) && Object.keys(scope).length) message.scope = scope;
    if (!this.send(message)) {
      this.showAlert('error', `Not connected: "${tool}" was not sent.`);
      return;
    }
    if (control && control.setBusy) control.setBusy(true);
    this.pending.set(requestId, { kind: 'trigger', control, tool });
    this.arm(requestId);
  }

  set(key, value) {
    const requestId = this.nextId();
    if (!this.send({ type: 'SET', key, value, requestId })) {
      this.showAlert('error', `Not connected: the change to "${key}" was not saved.`);
      return;
    }
    const entry = { kind: 'set', key, tool: key };
    entry.timer = setTimeout(() => this.pending.delete(requestId), this.timeoutMs);
    this.pending.set(requestId, entry);
  }

  arm(requestId) {
    const entry = this.pending.get(requestId);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      if (!this.pending.has(requestId)) return;
      this.release(requestId, entry);
      this.showAlert('warn', `No answer from "${entry.tool}" yet; it may still finish.`);
    }, this.timeoutMs);
  }

  release(requestId, entry) {
    this.pending.delete(requestId);
    clearTimeout(entry.timer);
    if (entry.control && entry.control.setBusy) entry.control.setBusy(false);
  }

  finish(requestId, message) {
    const entry = this.pending.get(requestId);
    if (entry) this.release(requestId, entry);
    if (message.status === 'error' || message.type === 'ERROR') {
      const what = entry ? (entry.kind === 'set' ? `Saving "${entry.key}"` : `"${entry.tool}"`) : 'A request';
      this.showAlert('error', `${what} failed: ${errorText(message.error || message.message, 'unknown error')}`);
    }
  }

  progress(requestId, message) {
    const entry = this.pending.get(requestId);
    if (!entry) return;
    this.arm(requestId);
    if (entry.control && entry.control.el && typeof message.message === 'string') entry.control.el.title = message.message;
  }

  failAll() {
    [...this.pending.entries()].forEach(([requestId, entry]) => this.release(requestId, entry));
  }
}
