// NXML errors (1-based line and column, as the validator reports them) as CodeMirror diagnostics,
// and the list of problems written beside the editor.
import { el } from '../panel/dom.js';

const TOKEN_CHAR = /[A-Za-z0-9_$.:\-]/;

function clamp(value, low, high) {
  const number = Number.isFinite(value) ? Math.trunc(value) : low;
  return Math.min(Math.max(number, low), high);
}

// The span an error marks: from its column to the end of the word there (at least one character).
export function errorRange(doc, error) {
  const line = doc.line(clamp(Number(error.line), 1, doc.lines));
  const from = line.from + clamp(Number(error.column) - 1, 0, line.length);
  let to = from;
  if (doc.sliceString(to, to + 1) === '<') to += 1;
  while (to < line.to && TOKEN_CHAR.test(doc.sliceString(to, to + 1))) to += 1;
  if (to === from) to = Math.min(from + 1, doc.length);
  return { from, to };
}

export function toDiagnostics(doc, errors) {
  return (Array.isArray(errors) ? errors : []).map((error) => ({
    ...errorRange(doc, error),
    severity: 'error',
    source: String(error.code || 'NXML'),
    message: String(error.message || 'invalid NXML')
  }));
}

export function showProblems(listEl, statusEl, errors, note) {
  listEl.textContent = '';
  const problems = Array.isArray(errors) ? errors : [];
  for (const error of problems) {
    const item = el('li', 'nx-editor-problem');
    item.setAttribute('data-line', String(error.line));
    item.setAttribute('data-column', String(error.column));
    item.append(el('span', 'nx-editor-problem-at', `Line ${error.line}, column ${error.column}:`),
      el('span', 'nx-editor-problem-text', String(error.message || '')));
    listEl.appendChild(item);
  }
  if (note) {
    statusEl.textContent = note;
    statusEl.removeAttribute('data-valid');
  } else {
    statusEl.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? '' : 's'}` : 'Valid NXML';
    statusEl.setAttribute('data-valid', problems.length ? 'false' : 'true');
  }
}
