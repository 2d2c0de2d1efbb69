// The component registry and the structural and display components.
//
// A component factory takes (node, ctx, app) and returns an instance {el, update(ctx), destroy()};
// ctx is {state, scope}. Instances live as long as their place in the tree, so updates patch the
// DOM in place and focus, selection and half-typed input survive a state change.
import { copyObject, defineOwn, el, hasOwn, isPlainObject, oneOf, setText } from './dom.js';
import { E } from './expressions.js';
import { boolProp, cssLength, formatNumber, isIdentifier, literalProp, resolveProp, textProp } from './props.js';

const registry = {};

export function register(components) {
  Object.assign(registry, components);
}

export function componentNames() {
  return Object.keys(registry);
}

function componentLabel(node) {
  return node && typeof node.type === 'string' ? node.type : 'component';
}

function placeholder(text) {
  return { el: el('div', 'nx-unknown', text), update() {} };
}

export function createInstance(node, ctx, app) {
  const factory = node && hasOwn(registry, node.type) ? registry[node.type] : null;
  let instance;
  try {
    instance = factory ? factory(node, ctx, app) : placeholder('Unsupported component: ' + componentLabel(node));
  } catch (err) {
    app.log('render failed', node, err);
    instance = placeholder('Could not show ' + componentLabel(node));
  }
  const id = literalProp(node, 'id');
  if (id) {
    instance.el.setAttribute('data-nx-id', id);
    app.registerComponent(id, instance);
    const destroy = instance.destroy;
    instance.destroy = () => {
      app.unregisterComponent(id, instance);
      if (destroy) destroy.call(instance);
    };
  }
  return instance;
}

export function updateInstance(instance, ctx, app) {
  try {
    instance.update(ctx);
  } catch (err) {
    app.log('update failed', err);
  }
}

export function createChildren(nodes, parent, ctx, app) {
  return (Array.isArray(nodes) ? nodes : []).map((child) => {
    const instance = createInstance(child, ctx, app);
    parent.appendChild(instance.el);
    return instance;
  });
}

export function updateChildren(list, ctx, app) {
  list.forEach((instance) => updateInstance(instance, ctx, app));
}

export function destroyChildren(list) {
  list.forEach((instance) => { if (instance.destroy) instance.destroy(); });
}

function withChildren(node, box, ctx, app) {
  const children = createChildren(node.children, box, ctx, app);
  return {
    update: (next) => updateChildren(children, next, app),
    destroy: () => destroyChildren(children)
  };
}

// ------------------------------------------------------------------ structure

const ALIGN = ['start', 'center', 'end', 'stretch', 'baseline'];
const JUSTIFY = {
  start: 'start', center: 'center', end: 'end',
  between: 'between', 'space-between': 'between',
  around: 'around', 'space-around': 'around',
  evenly: 'evenly', 'space-evenly': 'evenly'
};

function Layout(node, ctx, app) {
  const box = el('div', 'nx-layout');
  const kids = withChildren(node, box, ctx, app);
  function update(next) {
    const strategy = oneOf(textProp(node, 'strategy', next), ['auto', 'stack', 'row'], 'stack');
    const gap = oneOf(textProp(node, 'gap', next), ['sm', 'md', 'lg'], 'md');
    const align = oneOf(textProp(node, 'align', next), ALIGN, 'default');
    const justify = textProp(node, 'justify', next);
    const className = `nx-layout nx-layout--${strategy} nx-gap--${gap} nx-align--${align} nx-justify--` +
      (hasOwn(JUSTIFY, justify) ? JUSTIFY[justify] : 'default');
    if (box.className !== className) box.className = className;
    kids.update(next);
  }
  update(ctx);
  return { el: box, update, destroy: kids.destroy };
}

function Container(node, ctx, app) {
  const box = el('section', 'nx-container');
  const heading = el('h2', 'nx-container-title');
  const body = el('div', 'nx-container-body');
  box.append(heading, body);
  const kids = withChildren(node, body, ctx, app);
  function update(next) {
    const variant = oneOf(textProp(node, 'variant', next), ['card', 'panel', 'section', 'transparent'], 'card');
    box.className = 'nx-container nx-container--' + variant;
    const title = textProp(node, 'title', next);
    setText(heading, title);
    heading.hidden = !title;
    kids.update(next);
  }
  update(ctx);
  return { el: box, update, destroy: kids.destroy };
}

function If(node, ctx, app) {
  const box = el('div', 'nx-if');
  let children = null;
  function update(next) {
    const show = boolProp(node, 'condition', next);
    if (show && !children) {
      children = createChildren(node.children, box, next, app);
    } else if (show) {
      updateChildren(children, next, app);
    } else if (children) {
      destroyChildren(children);
      children = null;
      box.textContent = '';
    }
  }
  update(ctx);
  return { el: box, update, destroy: () => { if (children) destroyChildren(children); } };
}

function extendScope(scope, name, value) {
  const out = copyObject(scope);
  defineOwn(out, name, value);
  return out;
}

// Lower-cased text of every primitive inside a value, for filtering.
function searchableText(value, depth = 0) {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'object') return String(value).toLowerCase();
  if (depth > 4) return '';
  return Object.keys(value).map((key) => searchableText(value[key], depth + 1)).join(' ');
}

// Moving a node in the DOM drops focus from anything inside it; put it back.
function rememberFocus(container) {
  const active = document.activeElement;
  if (!active || active === document.body || !container.contains(active)) return { restore() {} };
  let selection = null;
  try {
    if (typeof active.selectionStart === 'number') selection = [active.selectionStart, active.selectionEnd];
  } catch (err) { /* inputs without a caret */ }
  return {
    restore() {
      if (document.activeElement === active || !active.isConnected) return;
      active.focus({ preventScroll: true });
      if (selection) {
        try { active.setSelectionRange(selection[0], selection[1]); } catch (err) { /* no caret */ }
      }
    }
  };
}

function Iterate(node, ctx, app) {
  const box = el('div', 'nx-iterate');
  const overflow = el('p', 'nx-caption');
  const given = literalProp(node, 'as');
  const alias = given && isIdentifier(given) ? given : 'item';
  const keyName = literalProp(node, 'key');
  let rows = new Map();
  let filter = '';

  function keyOf(item, index) {
    if (keyName && isPlainObject(item) && hasOwn(item, keyName)) {
      const key = item[keyName];
      if (typeof key === 'string' || typeof key === 'number') return 'k:' + key;
    }
    return 'i:' + index;
  }

  function applyFilter(row) {
    row.wrapper.hidden = Boolean(filter) && !row.text.includes(filter);
  }

  function update(next) {
    let items = resolveProp(node, 'items', next, []);
    if (!Array.isArray(items)) items = [];
    const limit = app.options.maxIterateItems;
    const nextRows = new Map();
    const order = [];
    items.slice(0, limit).forEach((item, index) => {
      let key = keyOf(item, index);
      if (nextRows.has(key)) key = key + '#' + index;
      const rowCtx = { state: next.state, scope: extendScope(next.scope, alias, item) };
      let row = rows.get(key);
      if (row) {
        rows.delete(key);
        updateChildren(row.children, rowCtx, app);
      } else {
        const wrapper = el('div', 'nx-iterate-item');
        row = { wrapper, children: createChildren(node.children, wrapper, rowCtx, app) };
      }
      row.text = searchableText(item);
      applyFilter(row);
      nextRows.set(key, row);
      order.push(row.wrapper);
    });
    rows.forEach((row) => {
      destroyChildren(row.children);
      row.wrapper.remove();
    });
    rows = nextRows;
    const focus = rememberFocus(box);
    let cursor = box.firstChild;
    order.forEach((wrapper) => {
      if (wrapper === cursor) cursor = cursor.nextSibling;
      else box.insertBefore(wrapper, cursor);
    });
    focus.restore();
    overflow.hidden = items.length <= limit;
    setText(overflow, items.length > limit ? `${items.length - limit} more items not shown` : '');
    box.appendChild(overflow);
  }

  update(ctx);
  return {
    el: box,
    update,
    destroy: () => rows.forEach((row) => destroyChildren(row.children)),
    setFilter(text) {
      filter = E.toText(text).trim().toLowerCase();
      rows.forEach(applyFilter);
    }
  };
}

// ------------------------------------------------------------------ display

const TEXT_TAGS = { h1: 'h1', h2: 'h2', h3: 'h3', h4: 'h4', body: 'p', code: 'pre', caption: 'p' };

function Text(node, ctx) {
  const variant = oneOf(literalProp(node, 'variant'), Object.keys(TEXT_TAGS), 'body');
  const box = el(TEXT_TAGS[variant], 'nx-text nx-text--' + variant);
  if (variant === 'code') box.tabIndex = 0;
  const update = (next) => setText(box, textProp(node, 'content', next));
  update(ctx);
  return { el: box, update };
}

const TREND_WORDS = { up: 'up', down: 'down', flat: 'flat', neutral: 'flat', same: 'flat' };
const TREND_ARROWS = { up: '▲', down: '▼', flat: '▶' };
const direction = (number) => (number > 0 ? 'up' : number < 0 ? 'down' : 'flat');

function trendOf(value) {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return { dir: direction(value), text: (value > 0 ? '+' : '') + formatNumber(value) };
  }
  const text = E.toText(value).trim();
  if (!text) return null;
  const word = text.toLowerCase();
  if (hasOwn(TREND_WORDS, word)) return { dir: TREND_WORDS[word], text: TREND_WORDS[word] };
  const number = parseFloat(text);
  return { dir: Number.isFinite(number) ? direction(number) : 'flat', text };
}

function Metric(node, ctx) {
  const box = el('div', 'nx-metric');
  const label = el('div', 'nx-metric-label');
  const line = el('div', 'nx-metric-line');
  const value = el('span', 'nx-metric-value');
  const unit = el('span', 'nx-metric-unit');
  const trend = el('span', 'nx-metric-trend');
  const arrow = el('span', 'nx-metric-arrow');
  const trendText = el('span', 'nx-metric-trend-text');
  arrow.setAttribute('aria-hidden', 'true');
  trend.append(arrow, trendText);
  line.append(value, unit);
  box.append(label, line, trend);
  function update(next) {
    setText(label, textProp(node, 'label', next));
    setText(value, formatNumber(resolveProp(node, 'value', next, '')));
    const unitText = textProp(node, 'unit', next);
    setText(unit, unitText);
    unit.hidden = !unitText;
    const t = trendOf(resolveProp(node, 'trend', next, ''));
    trend.hidden = !t;
    if (t) {
      trend.className = 'nx-metric-trend nx-trend--' + t.dir;
      setText(arrow, TREND_ARROWS[t.dir]);
      setText(trendText, t.text);
    }
  }
  update(ctx);
  return { el: box, update };
}

function StatusBadge(node, ctx) {
  const badge = el('span', 'nx-badge');
  const dot = el('span', 'nx-badge-dot');
  const text = el('span', 'nx-badge-text');
  dot.setAttribute('aria-hidden', 'true');
  badge.append(dot, text);
  function update(next) {
    const status = oneOf(textProp(node, 'status', next), ['success', 'warn', 'error', 'info'], 'info');
    badge.className = 'nx-badge nx-badge--' + status;
    setText(text, textProp(node, 'label', next));
  }
  update(ctx);
  return { el: badge, update };
}

function LogStream(node, ctx, app) {
  const box = el('div', 'nx-log');
  const empty = el('div', 'nx-log-empty', 'No entries');
  const lines = [];
  let filter = '';
  box.setAttribute('role', 'log');
  box.tabIndex = 0;
  box.appendChild(empty);

  function applyFilter(line) {
    line.hidden = Boolean(filter) && !line.textContent.toLowerCase().includes(filter);
  }

  function update(next) {
    box.style.height = cssLength(resolveProp(node, 'height', next, ''), '');
    let data = resolveProp(node, 'data', next, []);
    if (!Array.isArray(data)) data = data === '' || data === null || data === undefined ? [] : [data];
    data = data.slice(-app.options.maxLogLines);
    const autoScroll = !hasOwn(node.props || {}, 'autoScroll') || boolProp(node, 'autoScroll', next);
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    data.forEach((entry, index) => {
      let line = lines[index];
      if (!line) {
        line = el('div', 'nx-log-line');
        lines.push(line);
        box.appendChild(line);
      }
      const text = E.toText(entry);
      if (line.textContent !== text) {
        line.textContent = text;
        applyFilter(line);
      }
    });
    while (lines.length > data.length) lines.pop().remove();
    empty.hidden = data.length > 0;
    if (autoScroll && atBottom) box.scrollTop = box.scrollHeight;
  }

  update(ctx);
  return {
    el: box,
    update,
    setFilter(text) {
      filter = E.toText(text).trim().toLowerCase();
      lines.forEach(applyFilter);
    },
    scrollTo(where) {
      const place = E.toText(where).toLowerCase();
      if (place === 'top') box.scrollTop = 0;
      else if (place === 'bottom') box.scrollTop = box.scrollHeight;
      else box.scrollIntoView({ block: 'nearest' });
    }
  };
}

register({ Layout, Container, If, Iterate, Text, Metric, StatusBadge, LogStream });
