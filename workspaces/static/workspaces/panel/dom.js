// The small element helper every module uses: build nodes, write text, read plain values.
// Nothing here builds HTML from strings: values are written as text or plain attributes.

const SVG_NS = 'http://www.w3.org/2000/svg';

export const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function oneOf(value, allowed, fallback) {
  return allowed.includes(value) ? value : fallback;
}

export function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function defineOwn(target, key, value) {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

// An own-properties copy that a key such as "__proto__" cannot turn into a prototype change.
export function copyObject(source) {
  const out = {};
  if (isPlainObject(source)) Object.keys(source).forEach((key) => defineOwn(out, key, source[key]));
  return out;
}

export function errorText(error, fallback) {
  if (typeof error === 'string' && error) return error;
  if (isPlainObject(error)) {
    if (typeof error.message === 'string' && error.message) return error.message;
    if (typeof error.code === 'string') return error.code;
  }
  return fallback;
}

export function warn(...parts) {
  if (globalThis.console && typeof globalThis.console.warn === 'function') globalThis.console.warn('[nexus]', ...parts);
}
