/*
 * Nexus panel client: renders a panel's View tree and keeps it live over the
 * panel's WebSocket.
 *
 * Load evaluator.js first, then this file. On DOMContentLoaded it mounts the
 * panel described by <script type="application/json" id="nexus-panel-data">
 * into <div id="nexus-panel-root">. NexusPanel.mount(root, config, options)
 * does the same by hand.
 *
 * Every value coming from the panel (state, labels, messages) is written as
 * text: textContent, text nodes, or attributes that are never interpreted as
 * markup or URLs. Nothing here builds HTML from strings.
 */
(function (global) {
  'use strict';

  var E = global.NexusEval;
  if (!E) {
    throw new Error('NexusPanel: load evaluator.js before panel.js');
  }

  var DEFAULTS = {
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
  var FATAL_CLOSE_CODES = {
    4401: 'You are not signed in. Sign in again and reload the page.',
    4403: 'You do not have access to this panel.',
    4404: 'This panel no longer exists.'
  };
  var CONNECTION_TEXT = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    offline: 'Offline'
  };
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var hasOwn = Object.prototype.hasOwnProperty;

  // ------------------------------------------------------------------ helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) {
      if (hasOwn.call(attrs, name)) node.setAttribute(name, String(attrs[name]));
    }
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function oneOf(value, allowed, fallback) {
    return allowed.indexOf(value) >= 0 ? value : fallback;
  }

  function isPlainObject(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  function defineOwn(target, key, value) {
    Object.defineProperty(target, key, { value: value, enumerable: true, writable: true, configurable: true });
  }

  function copyObject(source) {
    var out = {};
    if (isPlainObject(source)) {
      Object.keys(source).forEach(function (key) { defineOwn(out, key, source[key]); });
    }
    return out;
  }

  function errorText(error, fallback) {
    if (typeof error === 'string' && error) return error;
    if (isPlainObject(error)) {
      if (typeof error.message === 'string' && error.message) return error.message;
      if (typeof error.code === 'string') return error.code;
    }
    return fallback;
  }

  function resolveProp(node, name, ctx, fallback) {
    var props = node.props || {};
    if (!hasOwn.call(props, name)) return fallback;
    return E.resolve(props[name], ctx, fallback);
  }

  function textProp(node, name, ctx) {
    return E.toText(resolveProp(node, name, ctx, ''));
  }

  function boolProp(node, name, ctx) {
    var props = node.props || {};
    if (!hasOwn.call(props, name)) return false;
    var raw = props[name];
    if (typeof raw === 'string' && !E.isBinding(raw)) {
      return ['', 'false', '0', 'no', 'off'].indexOf(raw.trim().toLowerCase()) < 0;
    }
    return Boolean(resolveProp(node, name, ctx, false));
  }

  function literalProp(node, name) {
    var raw = (node.props || {})[name];
    return typeof raw === 'string' ? raw.trim() : '';
  }

  // `bind="$state.input"` (braces tolerated) -> "input".
  function boundKey(raw) {
    var text = String(raw || '').trim();
    if (text.charAt(0) === '{' && text.charAt(text.length - 1) === '}') text = text.slice(1, -1).trim();
    if (text.indexOf('$state.') === 0) text = text.slice(7);
    return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(text) && !E.isBlockedKey(text) ? text : '';
  }

  // A CSS length from "200", "200px", "12rem"; anything else is refused.
  function cssLength(value, fallback) {
    var text = E.toText(value).trim();
    if (/^\d+(\.\d+)?$/.test(text)) return text + 'px';
    if (/^\d+(\.\d+)?(px|rem|em|vh|%)$/.test(text)) return text;
    return fallback;
  }

  function formatNumber(value) {
    if (typeof value !== 'number' || !isFinite(value)) return E.toText(value);
    if (Number.isInteger(value)) return String(value);
    return String(parseFloat(value.toPrecision(10)));
  }

  function componentLabel(node) {
    return (node && typeof node.type === 'string' ? node.type : 'component');
  }

  // ------------------------------------------------------------- components
  //
  // A component factory takes (node, ctx, app) and returns an instance
  // {el, update(ctx), destroy()}; ctx is {state, scope}. Instances live as long
  // as their place in the tree, so updates patch the DOM in place and focus,
  // selection and half-typed input survive a state change.

  function createInstance(node, ctx, app) {
    var factory = node && hasOwn.call(COMPONENTS, node.type) ? COMPONENTS[node.type] : null;
    var instance;
    try {
      instance = factory ? factory(node, ctx, app) : unknownComponent(node);
    } catch (err) {
      app.log('render failed', node, err);
      instance = brokenComponent(node);
    }
    var id = literalProp(node, 'id');
    if (id) {
      instance.el.setAttribute('data-nx-id', id);
      app.registerComponent(id, instance);
      var destroy = instance.destroy;
      instance.destroy = function () {
        app.unregisterComponent(id, instance);
        if (destroy) destroy.call(instance);
      };
    }
    return instance;
  }

  function updateInstance(instance, ctx, app) {
    try {
      instance.update(ctx);
    } catch (err) {
      app.log('update failed', err);
    }
  }

  function createChildren(nodes, parent, ctx, app) {
    var list = [];
    (Array.isArray(nodes) ? nodes : []).forEach(function (child) {
      var instance = createInstance(child, ctx, app);
      parent.appendChild(instance.el);
      list.push(instance);
    });
    return list;
  }

  function updateChildren(list, ctx, app) {
    list.forEach(function (instance) { updateInstance(instance, ctx, app); });
  }

  function destroyChildren(list) {
    list.forEach(function (instance) {
      if (instance.destroy) instance.destroy();
    });
  }

  function unknownComponent(node) {
    var box = el('div', 'nx-unknown', 'Unsupported component: ' + componentLabel(node));
    return { el: box, update: function () {} };
  }

  function brokenComponent(node) {
    var box = el('div', 'nx-unknown', 'Could not show ' + componentLabel(node));
    return { el: box, update: function () {} };
  }

  function withChildren(node, box, ctx, app) {
    var children = createChildren(node.children, box, ctx, app);
    return {
      update: function (next) { updateChildren(children, next, app); },
      destroy: function () { destroyChildren(children); }
    };
  }

  var ALIGN = ['start', 'center', 'end', 'stretch', 'baseline'];
  var JUSTIFY = {
    start: 'start', center: 'center', end: 'end',
    between: 'between', 'space-between': 'between',
    around: 'around', 'space-around': 'around',
    evenly: 'evenly', 'space-evenly': 'evenly'
  };

  function Layout(node, ctx, app) {
    var box = el('div', 'nx-layout');
    var kids = withChildren(node, box, ctx, app);
    function update(next) {
      var strategy = oneOf(textProp(node, 'strategy', next), ['auto', 'stack', 'row'], 'stack');
      var gap = oneOf(textProp(node, 'gap', next), ['sm', 'md', 'lg'], 'md');
      var align = oneOf(textProp(node, 'align', next), ALIGN, 'default');
      var justify = textProp(node, 'justify', next);
      justify = hasOwn.call(JUSTIFY, justify) ? JUSTIFY[justify] : 'default';
      var className = 'nx-layout nx-layout--' + strategy + ' nx-gap--' + gap +
        ' nx-align--' + align + ' nx-justify--' + justify;
      if (box.className !== className) box.className = className;
      kids.update(next);
    }
    update(ctx);
    return { el: box, update: update, destroy: kids.destroy };
  }

  function Container(node, ctx, app) {
    var box = el('section', 'nx-container');
    var heading = el('h2', 'nx-container-title');
    var body = el('div', 'nx-container-body');
    box.appendChild(heading);
    box.appendChild(body);
    var kids = withChildren(node, body, ctx, app);
    function update(next) {
      var variant = oneOf(textProp(node, 'variant', next), ['card', 'panel', 'section', 'transparent'], 'card');
      box.className = 'nx-container nx-container--' + variant;
      var title = textProp(node, 'title', next);
      setText(heading, title);
      heading.hidden = !title;
      kids.update(next);
    }
    update(ctx);
    return { el: box, update: update, destroy: kids.destroy };
  }

  function If(node, ctx, app) {
    var box = el('div', 'nx-if');
    var children = null;
    function update(next) {
      var show = boolProp(node, 'condition', next);
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
    return {
      el: box,
      update: update,
      destroy: function () { if (children) destroyChildren(children); }
    };
  }

  function extendScope(scope, name, value) {
    var out = copyObject(scope);
    defineOwn(out, name, value);
    return out;
  }

  // Lower-cased text of every primitive inside a value, for filtering.
  function searchableText(value, depth) {
    if (value === null || value === undefined) return '';
    if (typeof value !== 'object') return String(value).toLowerCase();
    if ((depth || 0) > 4) return '';
    var parts = [];
    var keys = Array.isArray(value) ? value.map(function (_, i) { return i; }) : Object.keys(value);
    keys.forEach(function (key) { parts.push(searchableText(value[key], (depth || 0) + 1)); });
    return parts.join(' ');
  }

  // Moving a node in the DOM drops focus from anything inside it; put it back.
  function rememberFocus(container) {
    var active = document.activeElement;
    if (!active || active === document.body || !container.contains(active)) return { restore: function () {} };
    var selection = null;
    try {
      if (typeof active.selectionStart === 'number') selection = [active.selectionStart, active.selectionEnd];
    } catch (err) { /* inputs without a caret */ }
    return {
      restore: function () {
        if (document.activeElement === active || !active.isConnected) return;
        active.focus({ preventScroll: true });
        if (selection) {
          try { active.setSelectionRange(selection[0], selection[1]); } catch (err) { /* no caret */ }
        }
      }
    };
  }

  function Iterate(node, ctx, app) {
    var box = el('div', 'nx-iterate');
    var overflow = el('p', 'nx-caption');
    var alias = literalProp(node, 'as') || 'item';
    var keyName = literalProp(node, 'key');
    var rows = new Map();
    var filter = '';
    if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(alias) || E.isBlockedKey(alias)) alias = 'item';

    function keyOf(item, index) {
      if (keyName && isPlainObject(item) && hasOwn.call(item, keyName)) {
        var key = item[keyName];
        if (typeof key === 'string' || typeof key === 'number') return 'k:' + key;
      }
      return 'i:' + index;
    }

    function applyFilter(row) {
      row.wrapper.hidden = Boolean(filter) && row.text.indexOf(filter) < 0;
    }

    function update(next) {
      var items = resolveProp(node, 'items', next, []);
      if (!Array.isArray(items)) items = [];
      var limit = app.options.maxIterateItems;
      var shown = items.slice(0, limit);
      var nextRows = new Map();
      var order = [];
      shown.forEach(function (item, index) {
        var key = keyOf(item, index);
        if (nextRows.has(key)) key = key + '#' + index;
        var scope = extendScope(next.scope, alias, item);
        var rowCtx = { state: next.state, scope: scope };
        var row = rows.get(key);
        if (row) {
          rows.delete(key);
          updateChildren(row.children, rowCtx, app);
        } else {
          var wrapper = el('div', 'nx-iterate-item');
          row = { wrapper: wrapper, children: createChildren(node.children, wrapper, rowCtx, app) };
        }
        row.text = searchableText(item);
        applyFilter(row);
        nextRows.set(key, row);
        order.push(row.wrapper);
      });
      rows.forEach(function (row) {
        destroyChildren(row.children);
        row.wrapper.remove();
      });
      rows = nextRows;
      var focus = rememberFocus(box);
      var cursor = box.firstChild;
      order.forEach(function (wrapper) {
        if (wrapper === cursor) {
          cursor = cursor.nextSibling;
        } else {
          box.insertBefore(wrapper, cursor);
        }
      });
      focus.restore();
      overflow.hidden = items.length <= limit;
      setText(overflow, items.length > limit ? (items.length - limit) + ' more items not shown' : '');
      box.appendChild(overflow);
    }

    update(ctx);
    return {
      el: box,
      update: update,
      destroy: function () { rows.forEach(function (row) { destroyChildren(row.children); }); },
      setFilter: function (text) {
        filter = E.toText(text).trim().toLowerCase();
        rows.forEach(applyFilter);
      }
    };
  }

  var TEXT_TAGS = { h1: 'h1', h2: 'h2', h3: 'h3', h4: 'h4', body: 'p', code: 'pre', caption: 'p' };

  function Text(node, ctx) {
    var variant = oneOf(literalProp(node, 'variant'), Object.keys(TEXT_TAGS), 'body');
    var box = el(TEXT_TAGS[variant], 'nx-text nx-text--' + variant);
    if (variant === 'code') box.tabIndex = 0;
    function update(next) {
      setText(box, textProp(node, 'content', next));
    }
    update(ctx);
    return { el: box, update: update };
  }

  var TREND_WORDS = { up: 'up', down: 'down', flat: 'flat', neutral: 'flat', same: 'flat' };
  var TREND_ARROWS = { up: '▲', down: '▼', flat: '▶' };

  function trendOf(value) {
    if (typeof value === 'number' && isFinite(value)) {
      return { dir: value > 0 ? 'up' : value < 0 ? 'down' : 'flat', text: (value > 0 ? '+' : '') + formatNumber(value) };
    }
    var text = E.toText(value).trim();
    if (!text) return null;
    var word = text.toLowerCase();
    if (hasOwn.call(TREND_WORDS, word)) return { dir: TREND_WORDS[word], text: TREND_WORDS[word] };
    var number = parseFloat(text);
    if (isFinite(number)) return { dir: number > 0 ? 'up' : number < 0 ? 'down' : 'flat', text: text };
    return { dir: 'flat', text: text };
  }

  function Metric(node, ctx) {
    var box = el('div', 'nx-metric');
    var label = el('div', 'nx-metric-label');
    var line = el('div', 'nx-metric-line');
    var value = el('span', 'nx-metric-value');
    var unit = el('span', 'nx-metric-unit');
    var trend = el('span', 'nx-metric-trend');
    var arrow = el('span', 'nx-metric-arrow');
    var trendText = el('span', 'nx-metric-trend-text');
    arrow.setAttribute('aria-hidden', 'true');
    trend.appendChild(arrow);
    trend.appendChild(trendText);
    line.appendChild(value);
    line.appendChild(unit);
    box.appendChild(label);
    box.appendChild(line);
    box.appendChild(trend);
    function update(next) {
      setText(label, textProp(node, 'label', next));
      setText(value, formatNumber(resolveProp(node, 'value', next, '')));
      var unitText = textProp(node, 'unit', next);
      setText(unit, unitText);
      unit.hidden = !unitText;
      var t = trendOf(resolveProp(node, 'trend', next, ''));
      trend.hidden = !t;
      if (t) {
        trend.className = 'nx-metric-trend nx-trend--' + t.dir;
        setText(arrow, TREND_ARROWS[t.dir]);
        setText(trendText, t.text);
      }
    }
    update(ctx);
    return { el: box, update: update };
  }

  function StatusBadge(node, ctx) {
    var badge = el('span', 'nx-badge');
    var dot = el('span', 'nx-badge-dot');
    var text = el('span', 'nx-badge-text');
    dot.setAttribute('aria-hidden', 'true');
    badge.appendChild(dot);
    badge.appendChild(text);
    function update(next) {
      var status = oneOf(textProp(node, 'status', next), ['success', 'warn', 'error', 'info'], 'info');
      badge.className = 'nx-badge nx-badge--' + status;
      setText(text, textProp(node, 'label', next));
    }
    update(ctx);
    return { el: badge, update: update };
  }

  function LogStream(node, ctx, app) {
    var box = el('div', 'nx-log');
    var empty = el('div', 'nx-log-empty', 'No entries');
    var lines = [];
    var filter = '';
    box.setAttribute('role', 'log');
    box.tabIndex = 0;
    box.appendChild(empty);

    function applyFilter(line) {
      line.hidden = Boolean(filter) && line.textContent.toLowerCase().indexOf(filter) < 0;
    }

    function update(next) {
      box.style.height = cssLength(resolveProp(node, 'height', next, ''), '');
      var data = resolveProp(node, 'data', next, []);
      if (!Array.isArray(data)) data = data === '' || data === null || data === undefined ? [] : [data];
      data = data.slice(-app.options.maxLogLines);
      var autoScroll = !hasOwn.call(node.props || {}, 'autoScroll') || boolProp(node, 'autoScroll', next);
      var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      data.forEach(function (entry, index) {
        var line = lines[index];
        if (!line) {
          line = el('div', 'nx-log-line');
          lines.push(line);
          box.appendChild(line);
        }
        var text = E.toText(entry);
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
      update: update,
      setFilter: function (text) {
        filter = E.toText(text).trim().toLowerCase();
        lines.forEach(applyFilter);
      },
      scrollTo: function (where) {
        var place = E.toText(where).toLowerCase();
        if (place === 'top') box.scrollTop = 0;
        else if (place === 'bottom') box.scrollTop = box.scrollHeight;
        else box.scrollIntoView({ block: 'nearest' });
      }
    };
  }

  // ------------------------------------------------------------------ charts

  function niceStep(span) {
    if (!(span > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log(span) / Math.LN10));
    var ratio = span / power;
    var nice = ratio <= 1 ? 1 : ratio <= 2 ? 2 : ratio <= 5 ? 5 : 10;
    return nice * power;
  }

  function formatAxisValue(value) {
    if (typeof value !== 'number') return E.toText(value).slice(0, 14);
    if (value > 1e11 && value < 1e14) {
      // Looks like milliseconds since the epoch: show the time of day.
      var date = new Date(value);
      var pad = function (n) { return (n < 10 ? '0' : '') + n; };
      return pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds());
    }
    var abs = Math.abs(value);
    if (abs >= 1e6) return formatNumber(value / 1e6) + 'M';
    if (abs >= 1e4) return formatNumber(value / 1e3) + 'k';
    return formatNumber(value);
  }

  function chartPoints(data, xKey, yKey) {
    var points = [];
    (Array.isArray(data) ? data : []).forEach(function (row, index) {
      var x;
      var y;
      if (isPlainObject(row)) {
        x = xKey && hasOwn.call(row, xKey) ? row[xKey] : index;
        y = yKey && hasOwn.call(row, yKey) ? row[yKey] : undefined;
      } else {
        x = index;
        y = row;
      }
      y = typeof y === 'number' ? y : parseFloat(y);
      if (isFinite(y)) points.push({ x: x, y: y });
    });
    return points;
  }

  function drawAxes(group, scale, yTicks, box) {
    yTicks.forEach(function (tick) {
      var y = scale.y(tick);
      group.appendChild(svg('line', { x1: box.left, x2: box.right, y1: y, y2: y, class: 'nx-chart-grid' }));
      var label = svg('text', { x: box.left - 6, y: y + 4, 'text-anchor': 'end', class: 'nx-chart-label' });
      label.textContent = formatAxisValue(tick);
      group.appendChild(label);
    });
  }

  function drawXLabels(group, points, xOf, box, maxLabels) {
    var step = Math.max(1, Math.ceil(points.length / maxLabels));
    points.forEach(function (point, index) {
      if (index % step !== 0 && index !== points.length - 1) return;
      if (index !== points.length - 1 && points.length - 1 - index < step) return;
      var x = xOf(point, index);
      // Labels at the edges grow inwards so they are not cut off.
      var anchor = x - box.left < 30 ? 'start' : box.right - x < 30 ? 'end' : 'middle';
      var label = svg('text', { x: x, y: box.bottom + 16, 'text-anchor': anchor, class: 'nx-chart-label' });
      label.textContent = formatAxisValue(point.x);
      group.appendChild(label);
    });
  }

  function yScale(points, box) {
    var min = Math.min(0, Math.min.apply(null, points.map(function (p) { return p.y; })));
    var max = Math.max(0, Math.max.apply(null, points.map(function (p) { return p.y; })));
    if (max === min) max = min + 1;
    var step = niceStep((max - min) / 4);
    min = Math.floor(min / step) * step;
    max = Math.ceil(max / step) * step;
    var ticks = [];
    for (var t = min; t <= max + step / 2 && ticks.length < 12; t += step) ticks.push(parseFloat(t.toPrecision(12)));
    return {
      ticks: ticks,
      y: function (value) { return box.bottom - ((value - min) / (max - min)) * (box.bottom - box.top); },
      base: function () { return box.bottom - ((Math.max(min, Math.min(0, max)) - min) / (max - min)) * (box.bottom - box.top); }
    };
  }

  function pointTitle(point) {
    var title = svg('title', {});
    title.textContent = formatAxisValue(point.x) + ': ' + formatNumber(point.y);
    return title;
  }

  function drawLineChart(group, points, box, filled) {
    var scaleY = yScale(points, box);
    var numericX = points.every(function (p) { return typeof p.x === 'number' && isFinite(p.x); });
    var xs = points.map(function (p) { return p.x; });
    var minX = numericX ? Math.min.apply(null, xs) : 0;
    var maxX = numericX ? Math.max.apply(null, xs) : points.length - 1;
    var xOf = function (point, index) {
      var position = numericX ? point.x : index;
      if (maxX === minX) return (box.left + box.right) / 2;
      return box.left + ((position - minX) / (maxX - minX)) * (box.right - box.left);
    };
    drawAxes(group, { y: scaleY.y }, scaleY.ticks, box);
    var coords = points.map(function (p, i) { return [xOf(p, i), scaleY.y(p.y)]; });
    var line = coords.map(function (c, i) { return (i ? 'L' : 'M') + c[0].toFixed(1) + ' ' + c[1].toFixed(1); }).join(' ');
    if (filled) {
      var base = scaleY.base().toFixed(1);
      var area = line + ' L' + coords[coords.length - 1][0].toFixed(1) + ' ' + base +
        ' L' + coords[0][0].toFixed(1) + ' ' + base + ' Z';
      group.appendChild(svg('path', { d: area, class: 'nx-chart-area' }));
    }
    group.appendChild(svg('path', { d: line, class: 'nx-chart-line' }));
    points.forEach(function (point, index) {
      var dot = svg('circle', { cx: coords[index][0].toFixed(1), cy: coords[index][1].toFixed(1), r: 3, class: 'nx-chart-point' });
      dot.appendChild(pointTitle(point));
      group.appendChild(dot);
    });
    drawXLabels(group, points, xOf, box, Math.max(2, Math.floor((box.right - box.left) / 90)));
  }

  function drawBarChart(group, points, box) {
    var scaleY = yScale(points, box);
    var band = (box.right - box.left) / points.length;
    var xOf = function (point, index) { return box.left + band * (index + 0.5); };
    drawAxes(group, { y: scaleY.y }, scaleY.ticks, box);
    var base = scaleY.base();
    points.forEach(function (point, index) {
      var y = scaleY.y(point.y);
      var bar = svg('rect', {
        x: (box.left + band * index + band * 0.15).toFixed(1),
        y: Math.min(y, base).toFixed(1),
        width: Math.max(1, band * 0.7).toFixed(1),
        height: Math.max(1, Math.abs(base - y)).toFixed(1),
        class: 'nx-chart-bar'
      });
      bar.appendChild(pointTitle(point));
      group.appendChild(bar);
    });
    drawXLabels(group, points, xOf, box, Math.max(2, Math.floor((box.right - box.left) / 70)));
  }

  function drawPieChart(group, points, width, height, legend) {
    var slices = points.filter(function (p) { return p.y > 0; });
    var total = slices.reduce(function (sum, p) { return sum + p.y; }, 0);
    var cx = width / 2;
    var cy = height / 2;
    var r = Math.max(10, Math.min(width, height) / 2 - 8);
    var angle = -Math.PI / 2;
    slices.forEach(function (point, index) {
      var share = point.y / total;
      var cls = 'nx-chart-slice nx-chart-slice--' + (index % 8);
      var shape;
      if (share >= 0.9999) {
        shape = svg('circle', { cx: cx, cy: cy, r: r, class: cls });
      } else {
        var end = angle + share * 2 * Math.PI;
        var d = 'M' + cx + ' ' + cy +
          ' L' + (cx + r * Math.cos(angle)).toFixed(2) + ' ' + (cy + r * Math.sin(angle)).toFixed(2) +
          ' A' + r + ' ' + r + ' 0 ' + (share > 0.5 ? 1 : 0) + ' 1 ' +
          (cx + r * Math.cos(end)).toFixed(2) + ' ' + (cy + r * Math.sin(end)).toFixed(2) + ' Z';
        shape = svg('path', { d: d, class: cls });
        angle = end;
      }
      shape.appendChild(pointTitle(point));
      group.appendChild(shape);
      var item = el('li', 'nx-chart-legend-item');
      var swatch = el('span', 'nx-chart-swatch nx-chart-slice--' + (index % 8));
      swatch.setAttribute('aria-hidden', 'true');
      item.appendChild(swatch);
      item.appendChild(el('span', '', formatAxisValue(point.x) + ': ' + formatNumber(point.y) +
        ' (' + Math.round(share * 100) + '%)'));
      legend.appendChild(item);
    });
    return slices.length;
  }

  function Chart(node, ctx) {
    var box = el('figure', 'nx-chart');
    var holder = el('div', 'nx-chart-canvas');
    var legend = el('ul', 'nx-chart-legend');
    var empty = el('p', 'nx-chart-empty', 'No data yet');
    box.appendChild(holder);
    box.appendChild(legend);
    box.appendChild(empty);
    var last = { signature: '', params: null };
    var observer = null;

    function draw(params) {
      holder.textContent = '';
      legend.textContent = '';
      var width = Math.max(120, Math.round(holder.clientWidth || box.clientWidth || 600));
      var height = params.height;
      var points = chartPoints(params.data, params.xKey, params.yKey);
      var canvas = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, width: '100%', height: height, role: 'img', class: 'nx-chart-svg' });
      var label = params.type.charAt(0).toUpperCase() + params.type.slice(1) + ' chart' +
        (params.yKey ? ' of ' + params.yKey : '') + (params.xKey ? ' by ' + params.xKey : '') + ', ' + points.length + ' points';
      canvas.setAttribute('aria-label', label);
      var group = svg('g', {});
      canvas.appendChild(group);
      var plot = { left: 48, right: width - 12, top: 10, bottom: height - 26 };
      var drawn = points.length;
      if (points.length && params.type === 'pie') drawn = drawPieChart(group, points, width, height, legend);
      else if (points.length && params.type === 'bar') drawBarChart(group, points, plot);
      else if (points.length) drawLineChart(group, points, plot, params.type === 'area');
      empty.hidden = drawn > 0;
      holder.hidden = drawn === 0;
      legend.hidden = legend.childNodes.length === 0;
      holder.appendChild(canvas);
      return width;
    }

    function update(next) {
      var params = {
        type: oneOf(textProp(node, 'type', next), ['line', 'bar', 'pie', 'area'], 'line'),
        data: resolveProp(node, 'data', next, []),
        xKey: textProp(node, 'xKey', next),
        yKey: textProp(node, 'yKey', next),
        height: Math.max(60, Math.min(2000, parseFloat(cssLength(resolveProp(node, 'height', next, ''), '200')) || 200))
      };
      var signature = E.toText([params.type, params.data, params.xKey, params.yKey, params.height]);
      if (signature === last.signature) return;
      last = { signature: signature, params: params, width: draw(params) };
    }

    if (typeof ResizeObserver === 'function') {
      observer = new ResizeObserver(function () {
        var width = Math.round(holder.clientWidth);
        if (last.params && width && Math.abs(width - last.width) > 2) last.width = draw(last.params);
      });
      observer.observe(box);
    }
    update(ctx);
    return {
      el: box,
      update: update,
      destroy: function () { if (observer) observer.disconnect(); }
    };
  }

  // ------------------------------------------------------------------ inputs

  var fieldCounter = 0;

  function Input(node, ctx, app) {
    var key = boundKey((node.props || {}).bind);
    var type = oneOf(literalProp(node, 'inputType'), ['text', 'number', 'password', 'email'], 'text');
    var field = el('div', 'nx-field');
    var input = el('input', 'nx-input');
    var label = el('label', 'nx-visually-hidden');
    fieldCounter += 1;
    input.id = 'nx-field-' + fieldCounter;
    label.htmlFor = input.id;
    input.type = type;
    input.autocomplete = type === 'password' ? 'current-password' : 'off';
    if (type === 'number') input.inputMode = 'decimal';
    field.appendChild(label);
    field.appendChild(input);
    var synced = '';

    function commit() {
      if (!key || input.disabled) return;
      var raw = input.value;
      var value = raw;
      if (type === 'number') {
        value = raw.trim() === '' ? NaN : Number(raw);
        var bad = !isFinite(value);
        input.setAttribute('aria-invalid', bad ? 'true' : 'false');
        if (bad) return;
      }
      if (raw === synced) return;
      synced = raw;
      app.sendSet(key, value);
    }

    input.addEventListener('change', commit);
    input.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') commit();
    });

    function update(next) {
      var placeholder = textProp(node, 'placeholder', next);
      var name = placeholder || key || 'Value';
      setText(label, name);
      if (input.placeholder !== placeholder) input.placeholder = placeholder;
      input.disabled = !key || !app.isLive() || boolProp(node, 'disabled', next);
      var current = key && next.state ? E.toText(hasOwn.call(next.state, key) ? next.state[key] : '') : '';
      var typing = document.activeElement === input && input.value !== synced;
      if (!typing && input.value !== current) input.value = current;
      if (!typing) synced = current;
    }

    update(ctx);
    var instance = {
      el: field,
      update: update,
      focus: function () { input.focus(); },
      flush: commit,
      destroy: function () { app.inputs.delete(instance); }
    };
    app.inputs.add(instance);
    return instance;
  }

  function Switch(node, ctx, app) {
    var key = boundKey((node.props || {}).bind);
    var wrapper = el('label', 'nx-switch');
    var control = el('span', 'nx-switch-control');
    var input = el('input', 'nx-switch-input');
    var track = el('span', 'nx-switch-track');
    var text = el('span', 'nx-switch-label');
    input.type = 'checkbox';
    input.setAttribute('role', 'switch');
    track.setAttribute('aria-hidden', 'true');
    control.appendChild(input);
    control.appendChild(track);
    wrapper.appendChild(control);
    wrapper.appendChild(text);
    input.addEventListener('change', function () {
      if (key) app.sendSet(key, input.checked);
    });
    function update(next) {
      var label = textProp(node, 'label', next);
      setText(text, label);
      if (!label) input.setAttribute('aria-label', key || 'Switch');
      else input.removeAttribute('aria-label');
      var on = Boolean(key && next.state && hasOwn.call(next.state, key) && next.state[key]);
      if (input.checked !== on) input.checked = on;
      input.disabled = !key || !app.isLive() || boolProp(node, 'disabled', next);
    }
    update(ctx);
    return { el: wrapper, update: update, focus: function () { input.focus(); } };
  }

  function makeButton(requireTrigger) {
    return function (node, ctx, app) {
      var button = el('button', 'nx-button');
      var label = el('span', 'nx-button-label');
      button.type = 'button';
      button.appendChild(label);
      var lastCtx = ctx;
      var busy = false;
      var trigger = literalProp(node, 'trigger');

      function refresh() {
        var off = !trigger || !app.isLive() || busy || boolProp(node, 'disabled', lastCtx);
        button.disabled = off;
        button.setAttribute('aria-busy', busy ? 'true' : 'false');
        button.classList.toggle('nx-button--busy', busy);
      }

      function update(next) {
        lastCtx = next;
        var variant = oneOf(textProp(node, 'variant', next), ['primary', 'secondary', 'danger', 'ghost'], 'primary');
        var className = 'nx-button nx-button--' + variant + (busy ? ' nx-button--busy' : '');
        if (button.className !== className) button.className = className;
        setText(label, textProp(node, 'label', next) || trigger || 'Button');
        refresh();
      }

      var instance = {
        el: button,
        update: update,
        focus: function () { button.focus(); },
        setBusy: function (value) {
          busy = value;
          refresh();
        },
        destroy: function () { instance.destroyed = true; }
      };

      button.addEventListener('click', function () {
        if (button.disabled || busy || !trigger) return;
        var args = {};
        var raw = (node.props || {}).args;
        if (raw !== undefined && raw !== '') {
          var result = E.isBinding(raw) ? E.tryEvaluate(raw.trim().slice(1, -1), lastCtx) : { ok: false, error: 'args must be an {expression}' };
          if (!result.ok || !(result.value === undefined || result.value === null || isPlainObject(result.value))) {
            app.showAlert('error', 'Could not read the arguments of "' + (label.textContent || trigger) + '": ' +
              (result.ok ? 'they are not an object' : result.error));
            return;
          }
          args = result.value || {};
        }
        app.trigger(instance, trigger, args, lastCtx.scope);
      });

      if (requireTrigger && !trigger) app.log('Action without a trigger', node);
      update(ctx);
      return instance;
    };
  }

  var COMPONENTS = {
    Layout: Layout,
    Container: Container,
    If: If,
    Iterate: Iterate,
    Text: Text,
    Metric: Metric,
    StatusBadge: StatusBadge,
    LogStream: LogStream,
    Chart: Chart,
    Input: Input,
    Switch: Switch,
    Button: makeButton(false),
    Action: makeButton(true)
  };

  // ------------------------------------------------------------- the panel app

  function absoluteWsUrl(url) {
    if (/^wss?:\/\//i.test(url)) return url;
    var scheme = global.location.protocol === 'https:' ? 'wss://' : 'ws://';
    if (url.charAt(0) === '/') return scheme + global.location.host + url;
    return scheme + global.location.host + '/' + url;
  }

  function viewChildren(view) {
    if (Array.isArray(view)) return view;
    if (!isPlainObject(view)) return [];
    if (view.type === 'View') return Array.isArray(view.children) ? view.children : [];
    return [view];
  }

  function PanelApp(root, config, options) {
    this.root = root;
    this.config = config || {};
    this.panel = isPlainObject(this.config.panel) ? this.config.panel : {};
    this.options = {};
    var given = options || this.config.options || {};
    for (var name in DEFAULTS) {
      if (hasOwn.call(DEFAULTS, name)) {
        this.options[name] = typeof given[name] === 'number' && given[name] >= 0 ? given[name] : DEFAULTS[name];
      }
    }
    this.state = copyObject(this.panel.state);
    this.stateVersion = typeof this.panel.stateVersion === 'number' ? this.panel.stateVersion : null;
    this.connection = 'connecting';
    this.ws = null;
    this.attempt = 0;
    this.timers = {};
    this.pending = new Map();
    this.components = new Map();
    this.inputs = new Set();
    this.requestCounter = 0;
    this.patchBuffer = [];
    this.resyncing = false;
    this.resyncAttempts = 0;
    this.renderPending = false;
    this.destroyed = false;
    this.lastMessageAt = 0;
    this.viewRoot = null;
    this.buildChrome();
    this.renderInitial();
    this.listen();
    this.connect();
  }

  PanelApp.prototype.log = function () {
    if (global.console && typeof global.console.warn === 'function') {
      global.console.warn.apply(global.console, ['[nexus]'].concat(Array.prototype.slice.call(arguments)));
    }
  };

  PanelApp.prototype.buildChrome = function () {
    var title = E.toText(this.panel.title) || E.toText(this.panel.id) || 'Panel';
    this.frame = el('div', 'nx-panel');
    this.frame.setAttribute('aria-busy', 'true');
    var header = el('header', 'nx-panel-header');
    this.titleEl = el('h1', 'nx-panel-title', title);
    this.connEl = el('div', 'nx-conn');
    this.connEl.setAttribute('role', 'status');
    this.connDot = el('span', 'nx-conn-dot');
    this.connDot.setAttribute('aria-hidden', 'true');
    this.connText = el('span', 'nx-conn-text');
    this.retryButton = el('button', 'nx-conn-retry', 'Retry now');
    this.retryButton.type = 'button';
    this.retryButton.hidden = true;
    this.retryButton.addEventListener('click', this.retryNow.bind(this));
    this.connEl.appendChild(this.connDot);
    this.connEl.appendChild(this.connText);
    this.connEl.appendChild(this.retryButton);
    header.appendChild(this.titleEl);
    header.appendChild(this.connEl);
    this.alertsEl = el('div', 'nx-alerts');
    this.bodyEl = el('main', 'nx-panel-body');
    this.toastsEl = el('div', 'nx-toasts');
    this.toastsEl.setAttribute('aria-live', 'polite');
    this.frame.appendChild(header);
    this.frame.appendChild(this.alertsEl);
    this.frame.appendChild(this.bodyEl);
    this.root.textContent = '';
    this.root.appendChild(this.frame);
    this.root.appendChild(this.toastsEl);
    this.setConnection('connecting');
  };

  PanelApp.prototype.renderInitial = function () {
    if (this.panel.status === 'error') {
      this.showAlert('error', 'This panel reported an error: ' + errorText(this.panel.error, 'it did not start correctly.'));
    }
    if (!isPlainObject(this.config.panel)) {
      this.showAlert('error', 'The panel data is missing from the page.');
    }
    if (isPlainObject(this.panel.state)) {
      this.render();
    } else {
      var loading = el('div', 'nx-loading');
      loading.appendChild(el('span', 'nx-spinner'));
      loading.appendChild(el('span', '', 'Loading panel…'));
      this.bodyEl.appendChild(loading);
    }
  };

  PanelApp.prototype.context = function () {
    return { state: this.state, scope: {} };
  };

  PanelApp.prototype.render = function () {
    this.renderPending = false;
    if (this.destroyed) return;
    var ctx = this.context();
    if (!this.viewRoot) {
      this.bodyEl.textContent = '';
      var children = viewChildren(this.panel.view);
      if (!children.length) this.bodyEl.appendChild(el('p', 'nx-caption', 'This panel has no view.'));
      var rootNode = { type: 'Layout', props: { strategy: 'stack', gap: 'md' }, children: children };
      this.viewRoot = createInstance(rootNode, ctx, this);
      this.bodyEl.appendChild(this.viewRoot.el);
    } else {
      updateInstance(this.viewRoot, ctx, this);
    }
  };

  PanelApp.prototype.scheduleRender = function () {
    if (this.renderPending) return;
    this.renderPending = true;
    var self = this;
    var run = function () { if (self.renderPending) self.render(); };
    if (typeof global.requestAnimationFrame === 'function') global.requestAnimationFrame(run);
    setTimeout(run, 50);
  };

  PanelApp.prototype.isLive = function () {
    return this.connection === 'live';
  };

  PanelApp.prototype.setConnection = function (status, detail) {
    this.connection = status;
    this.connEl.className = 'nx-conn nx-conn--' + status;
    this.connEl.setAttribute('data-state', status);
    setText(this.connText, detail || CONNECTION_TEXT[status]);
    this.retryButton.hidden = status === 'live' || status === 'connecting';
    this.frame.setAttribute('aria-busy', status === 'connecting' ? 'true' : 'false');
    this.frame.setAttribute('data-connection', status);
    if (this.viewRoot) this.scheduleRender();
  };

  // ----------------------------------------------------------- the connection

  PanelApp.prototype.listen = function () {
    var self = this;
    this.onOnline = function () { if (!self.ws && !self.destroyed) self.retryNow(); };
    // Leaving the page closes the socket on purpose: no reconnect banner.
    this.onUnload = function () { self.destroy(true); };
    this.onShow = function (event) { if (event.persisted) global.location.reload(); };
    global.addEventListener('online', this.onOnline);
    global.addEventListener('pagehide', this.onUnload);
    global.addEventListener('pageshow', this.onShow);
  };

  PanelApp.prototype.clearTimer = function (name) {
    if (this.timers[name]) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
      delete this.timers[name];
    }
  };

  PanelApp.prototype.connect = function () {
    this.clearTimer('reconnect');
    if (this.destroyed || this.ws) return;
    if (typeof this.config.wsUrl !== 'string' || !this.config.wsUrl) {
      this.setConnection('offline', 'No live connection');
      this.showAlert('error', 'The page does not say where to connect, so the panel cannot go live.');
      return;
    }
    var ws;
    try {
      ws = new global.WebSocket(absoluteWsUrl(this.config.wsUrl));
    } catch (err) {
      this.log('could not open the WebSocket', err);
      this.scheduleReconnect();
      return;
    }
    var self = this;
    this.ws = ws;
    if (this.attempt > 0) this.setConnection('reconnecting');
    ws.onopen = function () { self.lastMessageAt = Date.now(); };
    ws.onmessage = function (event) {
      if (self.ws !== ws) return;
      self.lastMessageAt = Date.now();
      self.onFrame(event.data);
    };
    ws.onclose = function (event) {
      if (self.ws === ws) self.onClosed(event.code, event.reason);
    };
    ws.onerror = function () {};
    this.startHeartbeat();
  };

  PanelApp.prototype.dropSocket = function (code) {
    var ws = this.ws;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try { ws.close(code || 1000); } catch (err) { /* already closing */ }
    this.onClosed(1006, 'dropped by the client');
  };

  PanelApp.prototype.onClosed = function (code, reason) {
    this.ws = null;
    this.clearTimer('heartbeat');
    this.failAllRequests();
    if (this.destroyed) return;
    if (hasOwn.call(FATAL_CLOSE_CODES, code)) {
      this.setConnection('offline');
      this.showAlert('error', FATAL_CLOSE_CODES[code]);
      return;
    }
    if (code === 1009) this.showAlert('error', 'A message was too large for the server.');
    this.log('connection closed', code, reason || '');
    this.scheduleReconnect();
  };

  PanelApp.prototype.scheduleReconnect = function () {
    this.clearTimer('reconnect');
    this.attempt += 1;
    var base = Math.min(this.options.reconnectMaxMs, this.options.reconnectBaseMs * Math.pow(2, this.attempt - 1));
    var delay = Math.round(base / 2 + Math.random() * base / 2);
    var offline = this.attempt > this.options.offlineAfterAttempts ||
      (global.navigator && global.navigator.onLine === false);
    var seconds = Math.max(1, Math.round(delay / 1000));
    this.setConnection(offline ? 'offline' : 'reconnecting',
      (offline ? 'Offline' : 'Reconnecting') + ' · retry in ' + seconds + 's');
    var self = this;
    this.timers.reconnect = setTimeout(function () { self.connect(); }, delay);
  };

  PanelApp.prototype.retryNow = function () {
    if (this.destroyed) return;
    if (this.ws) this.dropSocket(1000);
    this.clearTimer('reconnect');
    this.setConnection('connecting');
    this.connect();
  };

  PanelApp.prototype.startHeartbeat = function () {
    this.clearTimer('heartbeat');
    var self = this;
    var every = this.options.heartbeatMs;
    if (!every) return;
    this.timers.heartbeat = setInterval(function () {
      if (!self.ws || self.ws.readyState !== 1) return;
      var quiet = Date.now() - self.lastMessageAt;
      if (quiet > every * 3) self.dropSocket(4000);
      else if (quiet > every) self.send({ type: 'PING' });
    }, every);
  };

  PanelApp.prototype.send = function (message) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch (err) {
      this.log('send failed', err);
      return false;
    }
  };

  PanelApp.prototype.onFrame = function (data) {
    var message;
    try {
      message = JSON.parse(data);
    } catch (err) {
      this.log('ignored a frame that is not JSON');
      return;
    }
    if (!isPlainObject(message)) return;
    var handler = hasOwn.call(FRAME_HANDLERS, message.type) ? FRAME_HANDLERS[message.type] : null;
    if (!handler) {
      this.log('ignored frame of type', message.type);
      return;
    }
    try {
      handler.call(this, message);
    } catch (err) {
      this.log('frame handling failed', message.type, err);
    }
  };

  var FRAME_HANDLERS = {
    CONNECTED: function (message) {
      this.attempt = 0;
      this.resyncAttempts = 0;
      this.patchBuffer = [];
      this.resyncing = false;
      this.replaceState(message.state, message.stateVersion);
      this.setConnection('live');
    },
    PATCH: function (message) { this.onPatch(message); },
    RESULT: function (message) { this.finishRequest(message.requestId, message); },
    PROGRESS: function (message) { this.progressRequest(message.requestId, message); },
    EVENT: function (message) { this.onEvent(message.name, message.payload); },
    VIEW: function (message) { this.onViewCommand(message); },
    ERROR: function (message) { this.onError(message); },
    PING: function () { this.send({ type: 'PONG' }); },
    PONG: function () {}
  };

  // -------------------------------------------------------------------- state

  PanelApp.prototype.replaceState = function (state, version) {
    this.state = copyObject(state);
    if (typeof version === 'number') this.stateVersion = version;
    this.scheduleRender();
  };

  PanelApp.prototype.applyMutations = function (mutations) {
    var state = this.state;
    (Array.isArray(mutations) ? mutations : []).forEach(function (mutation) {
      if (!isPlainObject(mutation) || typeof mutation.key !== 'string') return;
      if (mutation.operation === 'delete') delete state[mutation.key];
      else defineOwn(state, mutation.key, mutation.value);
    });
    this.scheduleRender();
  };

  PanelApp.prototype.onPatch = function (message) {
    var version = message.stateVersion;
    if (this.resyncing) {
      this.patchBuffer.push(message);
      return;
    }
    if (typeof version !== 'number' || this.stateVersion === null) {
      this.applyMutations(message.mutations);
      if (typeof version === 'number') this.stateVersion = version;
      return;
    }
    if (version <= this.stateVersion) return;
    if (version === this.stateVersion + 1) {
      this.applyMutations(message.mutations);
      this.stateVersion = version;
      return;
    }
    this.patchBuffer.push(message);
    this.resync();
  };

  PanelApp.prototype.resync = function () {
    var self = this;
    this.resyncAttempts += 1;
    if (this.resyncAttempts > this.options.maxResyncAttempts || !this.config.stateUrl || typeof global.fetch !== 'function') {
      this.resyncing = false;
      this.dropSocket(4000);
      return;
    }
    this.resyncing = true;
    global.fetch(this.config.stateUrl, {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' }
    }).then(function (response) {
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json();
    }).then(function (body) {
      if (!isPlainObject(body) || !isPlainObject(body.state) || typeof body.stateVersion !== 'number') {
        throw new Error('unexpected state body');
      }
      self.resyncing = false;
      self.replaceState(body.state, body.stateVersion);
      self.drainPatches();
    }).catch(function (err) {
      self.log('state re-sync failed', err);
      self.resyncing = false;
      self.patchBuffer = [];
      self.dropSocket(4000);
    });
  };

  PanelApp.prototype.drainPatches = function () {
    var buffered = this.patchBuffer.sort(function (a, b) { return a.stateVersion - b.stateVersion; });
    this.patchBuffer = [];
    for (var i = 0; i < buffered.length; i += 1) {
      var version = buffered[i].stateVersion;
      if (version <= this.stateVersion) continue;
      if (version !== this.stateVersion + 1) {
        this.patchBuffer = buffered.slice(i);
        this.resync();
        return;
      }
      this.applyMutations(buffered[i].mutations);
      this.stateVersion = version;
    }
    this.resyncAttempts = 0;
  };

  // ----------------------------------------------------------------- requests

  PanelApp.prototype.nextRequestId = function () {
    this.requestCounter += 1;
    return 'req-' + Date.now().toString(36) + '-' + this.requestCounter;
  };

  PanelApp.prototype.trigger = function (button, tool, args, scope) {
    this.inputs.forEach(function (input) { input.flush(); });
    var requestId = this.nextRequestId();
    var message = { type: 'TRIGGER', tool: tool, args: args, requestId: requestId };
    if (isPlainObject(scope) && Object.keys(scope).length) message.scope = scope;
    if (!this.send(message)) {
      this.showAlert('error', 'Not connected: "' + tool + '" was not sent.');
      return;
    }
    button.setBusy(true);
    this.pending.set(requestId, { kind: 'trigger', button: button, tool: tool });
    this.armRequestTimer(requestId);
  };

  PanelApp.prototype.armRequestTimer = function (requestId) {
    var entry = this.pending.get(requestId);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    var self = this;
    entry.timer = setTimeout(function () {
      if (!self.pending.has(requestId)) return;
      self.pending.delete(requestId);
      if (entry.button) entry.button.setBusy(false);
      self.showAlert('warn', 'No answer from "' + entry.tool + '" yet; it may still finish.');
    }, this.options.requestTimeoutMs);
  };

  PanelApp.prototype.sendSet = function (key, value) {
    var requestId = this.nextRequestId();
    if (!this.send({ type: 'SET', key: key, value: value, requestId: requestId })) {
      this.showAlert('error', 'Not connected: the change to "' + key + '" was not saved.');
      return;
    }
    var self = this;
    var entry = { kind: 'set', key: key, tool: key };
    entry.timer = setTimeout(function () { self.pending.delete(requestId); }, this.options.requestTimeoutMs);
    this.pending.set(requestId, entry);
  };

  PanelApp.prototype.finishRequest = function (requestId, message) {
    var entry = this.pending.get(requestId);
    if (entry) {
      this.pending.delete(requestId);
      clearTimeout(entry.timer);
      if (entry.button) entry.button.setBusy(false);
    }
    if (message.status === 'error' || message.type === 'ERROR') {
      var what = entry ? (entry.kind === 'set' ? 'Saving "' + entry.key + '"' : '"' + entry.tool + '"') : 'A request';
      this.showAlert('error', what + ' failed: ' + errorText(message.error || message.message, 'unknown error'));
    }
  };

  PanelApp.prototype.progressRequest = function (requestId, message) {
    var entry = this.pending.get(requestId);
    if (!entry) return;
    this.armRequestTimer(requestId);
    if (entry.button && typeof message.message === 'string') entry.button.el.title = message.message;
  };

  PanelApp.prototype.failAllRequests = function () {
    this.pending.forEach(function (entry) {
      clearTimeout(entry.timer);
      if (entry.button) entry.button.setBusy(false);
    });
    this.pending.clear();
  };

  PanelApp.prototype.onError = function (message) {
    if (message.requestId && this.pending.has(message.requestId)) {
      this.finishRequest(message.requestId, message);
      return;
    }
    var code = E.toText(message.code);
    this.showAlert('error', (code ? code + ': ' : '') + errorText(message.message, 'the server reported an error'));
  };

  // --------------------------------------------------- events and view commands

  PanelApp.prototype.onEvent = function (name, payload) {
    if (name === 'toast') {
      var body = isPlainObject(payload) ? payload : { message: payload };
      this.showToast(E.toText(body.type), E.toText(body.message));
    } else if (global.console && typeof global.console.info === 'function') {
      global.console.info('[nexus] event', E.toText(name), payload);
    }
    try {
      this.root.dispatchEvent(new CustomEvent('nexus:event', { detail: { name: name, payload: payload } }));
    } catch (err) { /* CustomEvent unavailable */ }
  };

  function normalizeViewCommand(message) {
    var command = message.command;
    if (typeof command === 'string') command = { type: command, target: message.target, value: message.value, args: message.args };
    if (!isPlainObject(command)) return null;
    var name = command.type || command.command || command.action || command.name || command.op;
    var target = command.target || command.componentId || command.component || command.id;
    var value;
    if (hasOwn.call(command, 'value')) value = command.value;
    else if (hasOwn.call(command, 'filter')) value = command.filter;
    else if (hasOwn.call(command, 'text')) value = command.text;
    else if (Array.isArray(command.args)) value = command.args[0];
    else value = command.args;
    if (typeof name !== 'string' || (typeof target !== 'string' && typeof target !== 'number')) return null;
    return { name: name.replace(/[^A-Za-z]/g, '').toLowerCase(), target: String(target), value: value };
  }

  PanelApp.prototype.onViewCommand = function (message) {
    var command = normalizeViewCommand(message);
    if (!command) {
      this.log('ignored a malformed view command', message.command);
      return;
    }
    var targets = this.components.get(command.target);
    if (!targets || !targets.size) {
      this.log('view command for unknown component', command.target);
      return;
    }
    targets.forEach(function (instance) {
      if (command.name === 'focus') {
        if (instance.focus) instance.focus();
        else {
          if (!instance.el.hasAttribute('tabindex')) instance.el.tabIndex = -1;
          instance.el.focus();
        }
      } else if (command.name === 'scrollto') {
        if (instance.scrollTo) instance.scrollTo(command.value);
        else instance.el.scrollIntoView({ block: 'nearest' });
      } else if (command.name === 'setfilter' && instance.setFilter) {
        instance.setFilter(command.value);
      }
    });
  };

  PanelApp.prototype.registerComponent = function (id, instance) {
    if (!this.components.has(id)) this.components.set(id, new Set());
    this.components.get(id).add(instance);
  };

  PanelApp.prototype.unregisterComponent = function (id, instance) {
    var set = this.components.get(id);
    if (set) set.delete(instance);
  };

  // ------------------------------------------------------- alerts and toasts

  function dismissible(box, onClose) {
    var close = el('button', 'nx-dismiss', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.addEventListener('click', onClose);
    box.appendChild(close);
  }

  PanelApp.prototype.showAlert = function (kind, text) {
    var box = el('div', 'nx-alert nx-alert--' + oneOf(kind, ['error', 'warn', 'info'], 'error'));
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    box.appendChild(el('span', 'nx-alert-text', text));
    dismissible(box, function () { box.remove(); });
    this.alertsEl.appendChild(box);
    while (this.alertsEl.childNodes.length > this.options.maxAlerts) this.alertsEl.firstChild.remove();
    return box;
  };

  PanelApp.prototype.showToast = function (type, message) {
    var kind = oneOf(type, ['success', 'info', 'warn', 'error'], type === 'warning' ? 'warn' : 'info');
    var toast = el('div', 'nx-toast nx-toast--' + kind);
    toast.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    toast.appendChild(el('span', 'nx-toast-text', message || kind));
    var remove = function () { toast.remove(); };
    dismissible(toast, remove);
    this.toastsEl.appendChild(toast);
    while (this.toastsEl.childNodes.length > this.options.maxToasts) this.toastsEl.firstChild.remove();
    setTimeout(remove, kind === 'error' ? this.options.toastMs * 2 : this.options.toastMs);
  };

  PanelApp.prototype.destroy = function (keepDom) {
    if (this.destroyed) return;
    this.destroyed = true;
    var ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      try { ws.close(1000); } catch (err) { /* ignore */ }
    }
    for (var name in this.timers) {
      if (hasOwn.call(this.timers, name)) this.clearTimer(name);
    }
    this.failAllRequests();
    global.removeEventListener('online', this.onOnline);
    global.removeEventListener('pagehide', this.onUnload);
    global.removeEventListener('pageshow', this.onShow);
    if (this.viewRoot && this.viewRoot.destroy) this.viewRoot.destroy();
    if (!keepDom) this.root.textContent = '';
  };

  // --------------------------------------------------------------- public API

  function controllerFor(app) {
    return {
      get state() { return app.state; },
      get stateVersion() { return app.stateVersion; },
      get connection() { return app.connection; },
      reconnect: function () { app.retryNow(); },
      destroy: function () { app.destroy(false); }
    };
  }

  function mount(root, config, options) {
    if (!root || typeof root.appendChild !== 'function') throw new Error('NexusPanel.mount needs a root element');
    return controllerFor(new PanelApp(root, config, options));
  }

  function readPageConfig() {
    var script = document.getElementById('nexus-panel-data');
    if (!script) return null;
    try {
      return JSON.parse(script.textContent || '');
    } catch (err) {
      return { error: 'The panel data on this page is not valid JSON.' };
    }
  }

  function autoMount() {
    var root = document.getElementById('nexus-panel-root');
    var config = readPageConfig();
    if (!root || !config) return null;
    if (config.error) {
      root.textContent = '';
      root.appendChild(el('div', 'nx-alert nx-alert--error', config.error));
      return null;
    }
    api.active = mount(root, config, global.NexusPanelOptions);
    return api.active;
  }

  var api = {
    mount: mount,
    autoMount: autoMount,
    active: null,
    components: Object.keys(COMPONENTS)
  };
  global.NexusPanel = api;

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', autoMount);
  } else {
    autoMount();
  }
})(window);
