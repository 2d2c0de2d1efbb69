// Charts drawn as SVG: line, area, bar and pie, with axes and a legend for pies.
import { el, hasOwn, isPlainObject, oneOf, svg } from './dom.js';
import { register } from './components.js';
import { E } from './expressions.js';
import { cssLength, formatNumber, resolveProp, textProp } from './props.js';

function niceStep(span) {
  if (!(span > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(span)));
  const ratio = span / power;
  const nice = ratio <= 1 ? 1 : ratio <= 2 ? 2 : ratio <= 5 ? 5 : 10;
  return nice * power;
}

const pad = (n) => (n < 10 ? '0' : '') + n;

function formatAxisValue(value) {
  if (typeof value !== 'number') return E.toText(value).slice(0, 14);
  if (value > 1e11 && value < 1e14) {
    // Looks like milliseconds since the epoch: show the time of day.
    const date = new Date(value);
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }
  const abs = Math.abs(value);
  if (abs >= 1e6) return formatNumber(value / 1e6) + 'M';
  if (abs >= 1e4) return formatNumber(value / 1e3) + 'k';
  return formatNumber(value);
}

function chartPoints(data, xKey, yKey) {
  const points = [];
  (Array.isArray(data) ? data : []).forEach((row, index) => {
    let x = index;
    let y = row;
    if (isPlainObject(row)) {
      x = xKey && hasOwn(row, xKey) ? row[xKey] : index;
      y = yKey && hasOwn(row, yKey) ? row[yKey] : undefined;
    }
    y = typeof y === 'number' ? y : parseFloat(y);
    if (Number.isFinite(y)) points.push({ x, y });
  });
  return points;
}

// The value axis: round ticks, and whole-number ticks when every value is a whole number.
export function valueScale(values, top, bottom) {
  let min = Math.min(0, ...values);
  let max = Math.max(0, ...values);
  if (max === min) max = min + 1;
  let step = niceStep((max - min) / 4);
  if (values.every(Number.isInteger)) step = Math.max(1, step);
  min = Math.floor(min / step) * step;
  max = Math.ceil(max / step) * step;
  const ticks = [];
  for (let t = min; t <= max + step / 2 && ticks.length < 12; t += step) ticks.push(parseFloat(t.toPrecision(12)));
  const y = (value) => bottom - ((value - min) / (max - min)) * (bottom - top);
  return { ticks, y, base: () => y(Math.max(min, Math.min(0, max))) };
}

function drawAxes(group, scaleY, box, unit) {
  scaleY.ticks.forEach((tick) => {
    const y = scaleY.y(tick);
    group.appendChild(svg('line', { x1: box.left, x2: box.right, y1: y, y2: y, class: 'nx-chart-grid' }));
    const label = svg('text', { x: box.left - 6, y: y + 4, 'text-anchor': 'end', class: 'nx-chart-label' });
    label.textContent = formatAxisValue(tick);
    group.appendChild(label);
  });
  if (unit) {
    const caption = svg('text', { x: box.left - 6, y: box.top - 4, 'text-anchor': 'end', class: 'nx-chart-label nx-chart-unit' });
    caption.textContent = unit;
    group.appendChild(caption);
  }
}

function drawXLabels(group, points, xOf, box, maxLabels) {
  const step = Math.max(1, Math.ceil(points.length / maxLabels));
  const last = points.length - 1;
  points.forEach((point, index) => {
    if (index % step !== 0 && index !== last) return;
    if (index !== last && last - index < step) return;
    const x = xOf(point, index);
    // Labels at the edges grow inwards so they are not cut off.
    const anchor = x - box.left < 30 ? 'start' : box.right - x < 30 ? 'end' : 'middle';
    const label = svg('text', { x, y: box.bottom + 16, 'text-anchor': anchor, class: 'nx-chart-label' });
    label.textContent = formatAxisValue(point.x);
    group.appendChild(label);
  });
}

function pointTitle(point, unit) {
  const title = svg('title', {});
  title.textContent = `${formatAxisValue(point.x)}: ${formatNumber(point.y)}${unit ? ' ' + unit : ''}`;
  return title;
}

function drawLineChart(group, points, box, params) {
  const scaleY = valueScale(points.map((p) => p.y), box.top, box.bottom);
  const numericX = points.every((p) => typeof p.x === 'number' && Number.isFinite(p.x));
  const xs = points.map((p) => p.x);
  const minX = numericX ? Math.min(...xs) : 0;
  const maxX = numericX ? Math.max(...xs) : points.length - 1;
  const xOf = (point, index) => {
    const position = numericX ? point.x : index;
    if (maxX === minX) return (box.left + box.right) / 2;
    return box.left + ((position - minX) / (maxX - minX)) * (box.right - box.left);
  };
  drawAxes(group, scaleY, box, params.unit);
  const coords = points.map((p, i) => [xOf(p, i), scaleY.y(p.y)]);
  const line = coords.map((c, i) => (i ? 'L' : 'M') + c[0].toFixed(1) + ' ' + c[1].toFixed(1)).join(' ');
  if (params.type === 'area') {
    const base = scaleY.base().toFixed(1);
    const area = `${line} L${coords[coords.length - 1][0].toFixed(1)} ${base} L${coords[0][0].toFixed(1)} ${base} Z`;
    group.appendChild(svg('path', { d: area, class: 'nx-chart-area' }));
  }
  group.appendChild(svg('path', { d: line, class: 'nx-chart-line' }));
  points.forEach((point, index) => {
    const dot = svg('circle', { cx: coords[index][0].toFixed(1), cy: coords[index][1].toFixed(1), r: 3, class: 'nx-chart-point' });
    dot.appendChild(pointTitle(point, params.unit));
    group.appendChild(dot);
  });
  drawXLabels(group, points, xOf, box, Math.max(2, Math.floor((box.right - box.left) / 90)));
}

function drawBarChart(group, points, box, params) {
  const scaleY = valueScale(points.map((p) => p.y), box.top, box.bottom);
  const band = (box.right - box.left) / points.length;
  const xOf = (point, index) => box.left + band * (index + 0.5);
  drawAxes(group, scaleY, box, params.unit);
  const base = scaleY.base();
  points.forEach((point, index) => {
    const y = scaleY.y(point.y);
    const bar = svg('rect', {
      x: (box.left + band * index + band * 0.15).toFixed(1),
      y: Math.min(y, base).toFixed(1),
      width: Math.max(1, band * 0.7).toFixed(1),
      height: Math.max(1, Math.abs(base - y)).toFixed(1),
      class: 'nx-chart-bar'
    });
    bar.appendChild(pointTitle(point, params.unit));
    group.appendChild(bar);
  });
  drawXLabels(group, points, xOf, box, Math.max(2, Math.floor((box.right - box.left) / 70)));
}

function drawPieChart(group, points, width, height, legend, unit) {
  const slices = points.filter((p) => p.y > 0);
  const total = slices.reduce((sum, p) => sum + p.y, 0);
  const cx = width / 2;
  const cy = height / 2;
  const r = Math.max(10, Math.min(width, height) / 2 - 8);
  let angle = -Math.PI / 2;
  slices.forEach((point, index) => {
    const share = point.y / total;
    const cls = 'nx-chart-slice nx-chart-slice--' + (index % 8);
    let shape;
    if (share >= 0.9999) {
      shape = svg('circle', { cx, cy, r, class: cls });
    } else {
      const end = angle + share * 2 * Math.PI;
      const d = `M${cx} ${cy} L${(cx + r * Math.cos(angle)).toFixed(2)} ${(cy + r * Math.sin(angle)).toFixed(2)}` +
        ` A${r} ${r} 0 ${share > 0.5 ? 1 : 0} 1 ${(cx + r * Math.cos(end)).toFixed(2)} ${(cy + r * Math.sin(end)).toFixed(2)} Z`;
      shape = svg('path', { d, class: cls });
      angle = end;
    }
    shape.appendChild(pointTitle(point, unit));
    group.appendChild(shape);
    const item = el('li', 'nx-chart-legend-item');
    const swatch = el('span', 'nx-chart-swatch nx-chart-slice--' + (index % 8));
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, el('span', '', `${formatAxisValue(point.x)}: ${formatNumber(point.y)}${unit ? ' ' + unit : ''}` +
      ` (${Math.round(share * 100)}%)`));
    legend.appendChild(item);
  });
  return slices.length;
}

function chartLabel(params, count) {
  const kind = params.type.charAt(0).toUpperCase() + params.type.slice(1);
  return `${kind} chart${params.yKey ? ' of ' + params.yKey : ''}${params.unit ? ' (' + params.unit + ')' : ''}` +
    `${params.xKey ? ' by ' + params.xKey : ''}, ${count} points`;
}

function Chart(node, ctx) {
  const box = el('figure', 'nx-chart');
  const holder = el('div', 'nx-chart-canvas');
  const legend = el('ul', 'nx-chart-legend');
  const empty = el('p', 'nx-chart-empty', 'No data yet');
  box.append(holder, legend, empty);
  let last = { signature: '', params: null, width: 0 };
  let observer = null;

  function draw(params) {
    holder.textContent = '';
    legend.textContent = '';
    const width = Math.max(120, Math.round(holder.clientWidth || box.clientWidth || 600));
    const height = params.height;
    const points = chartPoints(params.data, params.xKey, params.yKey);
    const canvas = svg('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', height, role: 'img', class: 'nx-chart-svg' });
    canvas.setAttribute('aria-label', chartLabel(params, points.length));
    const group = svg('g', {});
    canvas.appendChild(group);
    const plot = { left: 48, right: width - 12, top: params.unit ? 18 : 10, bottom: height - 26 };
    let drawn = points.length;
    if (points.length && params.type === 'pie') drawn = drawPieChart(group, points, width, height, legend, params.unit);
    else if (points.length && params.type === 'bar') drawBarChart(group, points, plot, params);
    else if (points.length) drawLineChart(group, points, plot, params);
    empty.hidden = drawn > 0;
    holder.hidden = drawn === 0;
    legend.hidden = legend.childNodes.length === 0;
    holder.appendChild(canvas);
    return width;
  }

  function update(next) {
    const params = {
      type: oneOf(textProp(node, 'type', next), ['line', 'bar', 'pie', 'area'], 'line'),
      data: resolveProp(node, 'data', next, []),
      xKey: textProp(node, 'xKey', next),
      yKey: textProp(node, 'yKey', next),
      unit: textProp(node, 'unit', next),
      height: Math.max(60, Math.min(2000, parseFloat(cssLength(resolveProp(node, 'height', next, ''), '200')) || 200))
    };
    const signature = E.toText([params.type, params.data, params.xKey, params.yKey, params.unit, params.height]);
    if (signature === last.signature) return;
    last = { signature, params, width: draw(params) };
  }

  if (typeof ResizeObserver === 'function') {
    observer = new ResizeObserver(() => {
      const width = Math.round(holder.clientWidth);
      if (last.params && width && Math.abs(width - last.width) > 2) last.width = draw(last.params);
    });
    observer.observe(box);
  }
  update(ctx);
  return { el: box, update, destroy: () => { if (observer) observer.disconnect(); } };
}

register({ Chart });
