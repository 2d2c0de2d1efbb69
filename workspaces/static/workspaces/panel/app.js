// One live panel on the page: the chrome (title, connection, status, alerts, toasts), the view
// tree, and the frames of the panel protocol.
import { componentNames, createInstance, updateInstance } from './components.js';
import './charts.js';
import './inputs.js';
import { Connection } from './connection.js';
import { el, errorText, hasOwn, isPlainObject, setText, warn } from './dom.js';
import { E } from './expressions.js';
import { LifecycleBar, PANEL_STATUS_TEXT } from './lifecycle.js';
import { Requests } from './requests.js';
import { PanelState } from './state.js';
import { Notices } from './toasts.js';

export const DEFAULTS = {
  reconnectBaseMs: 500,
  reconnectMaxMs: 30000,
  offlineAfterAttempts: 6,
  heartbeatMs: 25000,
  requestTimeoutMs: 120000,
  toastMs: 5000,
  maxAlerts: 5,
  maxToasts: 4,
  maxLogLines: 1000,
  maxIterateItems: 2000,
  maxResyncAttempts: 3
};
const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline'
};

function viewChildren(view) {
  if (Array.isArray(view)) return view;
  if (!isPlainObject(view)) return [];
  if (view.type === 'View') return Array.isArray(view.children) ? view.children : [];
  return [view];
}

function readOptions(given) {
  const options = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = given ? given[name] : undefined;
    options[name] = typeof value === 'number' && value >= 0 ? value : fallback;
  }
  return options;
}

// Which `[type]` frame calls which method of the app.
const FRAME_HANDLERS = {
  CONNECTED(message) {
    this.connection.confirmed();
    this.state.reset(message.state, message.stateVersion);
    if (typeof message.status === 'string') this.lifecycle.show(message.status);
    this.setConnection('live');
  },
  RECONNECT(message) { this.connection.suggestDelay(message.retryAfterMs); },
  PATCH(message) { this.state.patch(message); },
  DEFINITION(message) { this.applyDefinition(message); },
  RESULT(message) { this.requests.finish(message.requestId, message); },
  PROGRESS(message) { this.requests.progress(message.requestId, message); },
  EVENT(message) { this.onEvent(message.name, message.payload); },
  VIEW(message) { this.onViewCommand(message); },
  STATUS(message) { this.onPanelStatus(message.status, message.error); },
  ERROR(message) { this.onError(message); },
  PING() { this.connection.send({ type: 'PONG' }); },
  PONG() {}
};

export class PanelApp {
  constructor(root, config, options) {
    this.root = root;
    this.config = config || {};
    this.panel = isPlainObject(this.config.panel) ? this.config.panel : {};
    this.options = readOptions(options || this.config.options);
    this.connectionStatus = 'connecting';
    this.components = new Map();
    this.inputs = new Set();
    this.renderPending = false;
    this.destroyed = false;
    this.viewRoot = null;
    this.state = new PanelState(this.panel.state, this.panel.stateVersion, {
      stateUrl: this.config.stateUrl,
      maxResyncAttempts: this.options.maxResyncAttempts,
      onChange: () => this.scheduleRender(),
      onLost: () => this.connection.drop(4000),
      log: (...parts) => this.log(...parts)
    });
    this.connection = new Connection(this.config.wsUrl, this.options, {
      onFrame: (data) => this.onFrame(data),
      onStatus: (status, detail) => this.setConnection(status, detail),
      onProblem: (text) => this.showAlert('error', text),
      onClosed: () => this.requests.failAll(),
      log: (...parts) => this.log(...parts)
    });
    this.requests = new Requests({
      send: (message) => this.connection.send(message),
      showAlert: (kind, text) => this.showAlert(kind, text),
      timeoutMs: this.options.requestTimeoutMs
    });
    this.buildChrome();
    this.renderInitial();
    this.listen();
    this.connect();
  }

  log(...parts) {
    warn(...parts);
  }

  buildChrome() {
    const title = E.toText(this.panel.title) || E.toText(this.panel.id) || 'Panel';
    this.frame = el('div', 'nx-panel');
    this.frame.setAttribute('aria-busy', 'true');
    const header = el('header', 'nx-panel-header');
    this.titleEl = el('h1', 'nx-panel-title', title);
    this.connEl = el('div', 'nx-conn');
    this.connEl.setAttribute('role', 'status');
    this.connDot = el('span', 'nx-conn-dot');
    this.connDot.setAttribute('aria-hidden', 'true');
    this.connText = el('span', 'nx-conn-text');
    this.retryButton = el('button', 'nx-conn-retry', 'Retry now');
    this.retryButton.type = 'button';
    this.retryButton.hidden = true;
    this.retryButton.addEventListener('click', () => this.connection.retryNow());
    this.connEl.append(this.connDot, this.connText, this.retryButton);
    header.append(this.titleEl, this.connEl);
    this.lifecycle = new LifecycleBar(this.config.controls, {
      onStarted: () => this.setConnection(this.connectionStatus),
      showAlert: (kind, text) => this.showAlert(kind, text)
    });
    this.alertsEl = el('div', 'nx-alerts');
    this.bodyEl = el('main', 'nx-panel-body');
    this.toastsEl = el('div', 'nx-toasts');
    this.toastsEl.setAttribute('aria-live', 'polite');
    this.notices = new Notices(this.alertsEl, this.toastsEl, this.options);
    this.frame.append(header, this.lifecycle.el, this.alertsEl, this.bodyEl);
    this.root.textContent = '';
    this.root.append(this.frame, this.toastsEl);
    this.lifecycle.show(this.panel.status, this.panel.error);
    this.setConnection('connecting');
  }

  renderInitial() {
    if (!isPlainObject(this.config.panel)) this.showAlert('error', 'The panel data is missing from the page.');
    if (isPlainObject(this.panel.state)) {
      this.render();
    } else {
      const loading = el('div', 'nx-loading');
      loading.append(el('span', 'nx-spinner'), el('span', '', 'Loading panel…'));
      this.bodyEl.appendChild(loading);
    }
  }

  render() {
    this.renderPending = false;
    if (this.destroyed) return;
    const ctx = { state: this.state.values, scope: {} };
    if (!this.viewRoot) {
      this.bodyEl.textContent = '';
      const children = viewChildren(this.panel.view);
      if (!children.length) this.bodyEl.appendChild(el('p', 'nx-caption', 'This panel has no view.'));
      const rootNode = { type: 'Layout', props: { strategy: 'stack', gap: 'md' }, children };
      this.viewRoot = createInstance(rootNode, ctx, this);
      this.bodyEl.appendChild(this.viewRoot.el);
    } else {
      updateInstance(this.viewRoot, ctx, this);
    }
  }

  // The panel's source was replaced (a new revision): draw the new view in place. The socket and
  // the state stay; typed input is sent first so that it comes back as state; the scroll is kept.
  applyDefinition(message) {
    if (!isPlainObject(message.view) && !Array.isArray(message.view)) return;
    this.inputs.forEach((input) => input.flush());
    const scroll = [globalThis.scrollX || 0, globalThis.scrollY || 0];
    this.panel = { ...this.panel, title: message.title, view: message.view, tools: message.tools,
      revision: message.revision };
    setText(this.titleEl, E.toText(message.title) || E.toText(this.panel.id) || 'Panel');
    if (this.viewRoot && this.viewRoot.destroy) this.viewRoot.destroy();
    this.viewRoot = null;
    this.render();
    if (typeof globalThis.scrollTo === 'function') globalThis.scrollTo(scroll[0], scroll[1]);
    this.root.setAttribute('data-revision', String(message.revision));
    try {
      this.root.dispatchEvent(new CustomEvent('nexus:definition', { detail: { revision: message.revision } }));
    } catch (err) { /* CustomEvent unavailable */ }
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    const run = () => { if (this.renderPending) this.render(); };
    if (typeof globalThis.requestAnimationFrame === 'function') globalThis.requestAnimationFrame(run);
    setTimeout(run, 50);
  }

  // Controls work while the socket is live and the panel runs.
  isLive() {
    return this.connectionStatus === 'live' && this.lifecycle.running;
  }

  setConnection(status, detail) {
    this.connectionStatus = status;
    const panelStatus = this.lifecycle.status;
    const shown = status === 'live' && !this.lifecycle.running ? panelStatus : status;
    this.connEl.className = 'nx-conn nx-conn--' + shown;
    this.connEl.setAttribute('data-state', status);
    this.connEl.setAttribute('data-panel-status', panelStatus);
    setText(this.connText, detail || PANEL_STATUS_TEXT[shown] || CONNECTION_TEXT[status]);
    this.retryButton.hidden = status === 'live' || status === 'connecting';
    this.frame.setAttribute('aria-busy', status === 'connecting' ? 'true' : 'false');
    this.frame.setAttribute('data-connection', status);
    if (this.viewRoot) this.scheduleRender();
  }

  onPanelStatus(status, error) {
    this.lifecycle.show(status, error);
    this.setConnection(this.connectionStatus);
  }

  // ---------------------------------------------------------------- the connection

  listen() {
    this.onOnline = () => { if (!this.connection.ws && !this.destroyed) this.connection.retryNow(); };
    // Leaving the page closes the socket on purpose: no reconnect banner.
    this.onUnload = () => this.destroy(true);
    this.onShow = (event) => { if (event.persisted) globalThis.location.reload(); };
    globalThis.addEventListener('online', this.onOnline);
    globalThis.addEventListener('pagehide', this.onUnload);
    globalThis.addEventListener('pageshow', this.onShow);
  }

  connect() {
    if (typeof this.config.wsUrl !== 'string' || !this.config.wsUrl) {
      this.setConnection('offline', 'No live connection');
      this.showAlert('error', 'The page does not say where to connect, so the panel cannot go live.');
      return;
    }
    this.connection.connect();
  }

  onFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (err) {
      this.log('ignored a frame that is not JSON');
      return;
    }
    if (!isPlainObject(message)) return;
    const handler = hasOwn(FRAME_HANDLERS, message.type) ? FRAME_HANDLERS[message.type] : null;
    if (!handler) {
      this.log('ignored frame of type', message.type);
      return;
    }
    try {
      handler.call(this, message);
    } catch (err) {
      this.log('frame handling failed', message.type, err);
    }
  }

  // ---------------------------------------------------------------- requests

  trigger(control, tool, args, scope) {
    this.inputs.forEach((input) => input.flush());
    this.requests.trigger(control, tool, args, scope);
  }

  sendSet(key, value) {
    this.requests.set(key, value);
  }

  onError(message) {
    if (message.requestId && this.requests.has(message.requestId)) {
      this.requests.finish(message.requestId, message);
      return;
    }
    const code = E.toText(message.code);
    this.showAlert('error', (code ? code + ': ' : '') + errorText(message.message, 'the server reported an error'));
  }

  // ---------------------------------------------------------------- events and view commands

  onEvent(name, payload) {
    if (name === 'toast') {
      const body = isPlainObject(payload) ? payload : { message: payload };
      this.showToast(E.toText(body.type), E.toText(body.message));
    } else if (globalThis.console && typeof globalThis.console.info === 'function') {
      globalThis.console.info('[nexus] event', E.toText(name), payload);
    }
    try {
      this.root.dispatchEvent(new CustomEvent('nexus:event', { detail: { name, payload } }));
    } catch (err) { /* CustomEvent unavailable */ }
  }

  onViewCommand(message) {
    const command = normalizeViewCommand(message);
    if (!command) {
      this.log('ignored a malformed view command', message.command);
      return;
    }
    const targets = this.components.get(command.target);
    if (!targets || !targets.size) {
      this.log('view command for unknown component', command.target);
      return;
    }
    targets.forEach((instance) => runViewCommand(instance, command));
  }

  registerComponent(id, instance) {
    if (!this.components.has(id)) this.components.set(id, new Set());
    this.components.get(id).add(instance);
  }

  unregisterComponent(id, instance) {
    const set = this.components.get(id);
    if (set) set.delete(instance);
  }

  showAlert(kind, text) {
    return this.notices.showAlert(kind, text);
  }

  showToast(type, message) {
    return this.notices.showToast(type, message);
  }

  destroy(keepDom) {
    if (this.destroyed) return;
    this.destroyed = true;
    this.connection.destroy();
    this.requests.failAll();
    this.notices.clear();
    globalThis.removeEventListener('online', this.onOnline);
    globalThis.removeEventListener('pagehide', this.onUnload);
    globalThis.removeEventListener('pageshow', this.onShow);
    if (this.viewRoot && this.viewRoot.destroy) this.viewRoot.destroy();
    if (!keepDom) this.root.textContent = '';
  }
}

function normalizeViewCommand(message) {
  let command = message.command;
  if (typeof command === 'string') command = { type: command, target: message.target, value: message.value, args: message.args };
  if (!isPlainObject(command)) return null;
  const name = command.type || command.command || command.action || command.name || command.op;
  const target = command.target || command.componentId || command.component || command.id;
  let value;
  if (hasOwn(command, 'value')) value = command.value;
  else if (hasOwn(command, 'filter')) value = command.filter;
  else if (hasOwn(command, 'text')) value = command.text;
  else if (Array.isArray(command.args)) value = command.args[0];
  else value = command.args;
  if (typeof name !== 'string' || (typeof target !== 'string' && typeof target !== 'number')) return null;
  return { name: name.replace(/[^A-Za-z]/g, '').toLowerCase(), target: String(target), value };
}

function runViewCommand(instance, command) {
  if (command.name === 'focus') {
    if (instance.focus) {
      instance.focus();
    } else {
      if (!instance.el.hasAttribute('tabindex')) instance.el.tabIndex = -1;
      instance.el.focus();
    }
  } else if (command.name === 'scrollto') {
    if (instance.scrollTo) instance.scrollTo(command.value);
    else instance.el.scrollIntoView({ block: 'nearest' });
  } else if (command.name === 'setfilter' && instance.setFilter) {
    instance.setFilter(command.value);
  }
}

export { componentNames };
