// Reading a View node's attributes against the current state and scope.
import { hasOwn } from './dom.js';
import { E } from './expressions.js';

const FALSE_WORDS = ['', 'false', '0', 'no', 'off'];
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function resolveProp(node, name, ctx, fallback) {
  const props = node.props || {};
  if (!hasOwn(props, name)) return fallback;
  return E.resolve(props[name], ctx, fallback);
}

export function textProp(node, name, ctx) {
  return E.toText(resolveProp(node, name, ctx, ''));
}

export function boolProp(node, name, ctx) {
  const props = node.props || {};
  if (!hasOwn(props, name)) return false;
  const raw = props[name];
  if (typeof raw === 'string' && !E.isBinding(raw)) return !FALSE_WORDS.includes(raw.trim().toLowerCase());
  return Boolean(resolveProp(node, name, ctx, false));
}

export function literalProp(node, name) {
  const raw = (node.props || {})[name];
  return typeof raw === 'string' ? raw.trim() : '';
}

export function isIdentifier(text) {
  return IDENTIFIER.test(text) && !E.isBlockedKey(text);
}

// `bind="$state.input"` (braces tolerated) -> "input".
export function boundKey(raw) {
  let text = String(raw || '').trim();
  if (text.startsWith('{') && text.endsWith('}')) text = text.slice(1, -1).trim();
  if (text.startsWith('$state.')) text = text.slice(7);
  return isIdentifier(text) ? text : '';
}

// A CSS length from "200", "200px", "12rem"; anything else is refused.
export function cssLength(value, fallback) {
  const text = E.toText(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return text + 'px';
  if (/^\d+(\.\d+)?(px|rem|em|vh|%)$/.test(text)) return text;
  return fallback;
}

export function formatNumber(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return E.toText(value);
  if (Number.isInteger(value)) return String(value);
  return String(parseFloat(value.toPrecision(10)));
}

// The tool arguments of an `args="{ {...} }"` attribute: {ok, value} or {ok: false, error}.
export function argsProp(node, ctx) {
  const raw = (node.props || {}).args;
  if (raw === undefined || raw === '') return { ok: true, value: {} };
  if (!E.isBinding(raw)) return { ok: false, error: 'args must be an {expression}' };
  const result = E.tryEvaluate(raw.trim().slice(1, -1), ctx);
  if (!result.ok) return result;
  const value = result.value;
  if (value === undefined || value === null) return { ok: true, value: {} };
  if (typeof value !== 'object' || Array.isArray(value)) return { ok: false, error: 'they are not an object' };
  return { ok: true, value };
}
