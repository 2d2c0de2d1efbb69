/*
 * Nexus panel client: renders a panel's View tree and keeps it live over the panel's WebSocket.
 *
 * A native ES module (no build step): <script type="module" src=".../panel.js">. It mounts the
 * panel described by <script type="application/json" id="nexus-panel-data"> into
 * <div id="nexus-panel-root">; window.NexusPanel.mount(root, config, options) does the same by hand.
 * The parts live in ./panel/: dom (element helper), props, components, charts, inputs,
 * connection, state, requests, lifecycle, toasts, and app, which ties them together.
 *
 * Every value coming from the panel (state, labels, messages) is written as text: textContent,
 * text nodes, or attributes that are never interpreted as markup or URLs.
 */
import { PanelApp, componentNames } from './panel/app.js';
import { el } from './panel/dom.js';

function controllerFor(app) {
  return {
    get state() { return app.state.values; },
    get stateVersion() { return app.state.version; },
    get connection() { return app.connectionStatus; },
    get status() { return app.lifecycle.status; },
    reconnect: () => app.connection.retryNow(),
    destroy: () => app.destroy(false)
  };
}

export function mount(root, config, options) {
  if (!root || typeof root.appendChild !== 'function') throw new Error('NexusPanel.mount needs a root element');
  return controllerFor(new PanelApp(root, config, options));
}

function readPageConfig() {
  const script = document.getElementById('nexus-panel-data');
  if (!script) return null;
  try {
    return JSON.parse(script.textContent || '');
  } catch (err) {
    return { error: 'The panel data on this page is not valid JSON.' };
  }
}

export function autoMount() {
  const root = document.getElementById('nexus-panel-root');
  const config = readPageConfig();
  if (!root || !config) return null;
  if (config.error) {
    root.textContent = '';
    root.appendChild(el('div', 'nx-alert nx-alert--error', config.error));
    return null;
  }
  api.active = mount(root, config, globalThis.NexusPanelOptions);
  return api.active;
}

const api = { mount, autoMount, active: null, components: componentNames() };
globalThis.NexusPanel = api;

// Module scripts run after the document is parsed.
autoMount();
