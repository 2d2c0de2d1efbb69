// The preview: a source's View drawn by the panel page's own renderer, from a given state.
// Nothing runs: controls are shown disabled, as on a page whose panel is not live.
import { createInstance } from '../panel/components.js';
import '../panel/charts.js';
import '../panel/inputs.js';
import { DEFAULTS } from '../panel/app.js';
import { el, isPlainObject, warn } from '../panel/dom.js';

function viewChildren(view) {
  if (Array.isArray(view)) return view;
  if (!isPlainObject(view)) return [];
  if (view.type === 'View') return Array.isArray(view.children) ? view.children : [];
  return [view];
}

// The part of a PanelApp that components call, with every action switched off.
function inertApp() {
  return {
    options: { ...DEFAULTS },
    inputs: new Set(),
    log: (...parts) => warn('preview:', ...parts),
    isLive: () => false,
    trigger() {},
    sendSet() {},
    showAlert() {},
    registerComponent() {},
    unregisterComponent() {}
  };
}

export class Preview {
  constructor(root) {
    this.root = root;
    this.instance = null;
  }

  show(title, view, state) {
    this.clear();
    const body = el('div', 'nx-panel-body');
    const header = el('header', 'nx-panel-header');
    header.appendChild(el('h1', 'nx-panel-title', String(title || '')));
    const children = viewChildren(view);
    if (!children.length) body.appendChild(el('p', 'nx-caption', 'This panel has no view.'));
    const rootNode = { type: 'Layout', props: { strategy: 'stack', gap: 'md' }, children };
    this.instance = createInstance(rootNode, { state: isPlainObject(state) ? state : {}, scope: {} }, inertApp());
    body.appendChild(this.instance.el);
    this.root.append(header, body);
    this.root.setAttribute('data-preview', 'ready');
  }

  stale(text) {
    this.root.setAttribute('data-preview', 'stale');
    this.root.title = text;
  }

  clear() {
    if (this.instance && this.instance.destroy) this.instance.destroy();
    this.instance = null;
    this.root.textContent = '';
    this.root.removeAttribute('title');
  }
}
