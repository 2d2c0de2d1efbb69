// Runs batches of evaluator cases under Node for the pytest suite.
// stdin: JSON {"module": "<path to evaluator.js>", "cases": [{"op", "source", "state", "scope"}]}
// op: eval | resolve | template | isBinding (the evaluator) | native (JavaScript itself)
// stdout: JSON list, one result per case. Values JSON cannot carry are tagged.
'use strict';

const fs = require('fs');

function encode(value) {
  if (value === undefined) return { $undefined: true };
  if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value)) out[key] = encode(value[key]);
    return out;
  }
  return value;
}

function runCase(E, item) {
  const context = { state: item.state, scope: item.scope };
  switch (item.op) {
    case 'eval': {
      const result = E.tryEvaluate(item.source, context);
      const fallback = E.evaluate(item.source, context);
      return result.ok
        ? { ok: true, value: encode(result.value), fallback: encode(fallback) }
        : { ok: false, error: result.error, fallback: encode(fallback) };
    }
    case 'resolve':
      return { ok: true, value: encode(E.resolve(item.source, context)) };
    case 'template':
      return { ok: true, value: encode(E.renderTemplate(item.source, context)) };
    case 'isBinding':
      return { ok: true, value: E.isBinding(item.source) };
    case 'native':
      // JavaScript's own reading of the expression, to compare the evaluator with.
      try {
        const fn = new Function('$state', '$scope', '"use strict"; return (' + item.source + '\n);');
        return { ok: true, value: encode(fn(item.state, item.scope)) };
      } catch (err) {
        return { ok: false, error: String(err) };
      }
    default:
      return { ok: false, error: 'unknown op ' + item.op };
  }
}

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const E = require(input.module);
const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
const results = input.cases.map((item) => {
  try {
    return runCase(E, item);
  } catch (err) {
    // The evaluator promises never to throw; report it so the test fails.
    return { ok: false, threw: String(err && err.stack) };
  }
});
const protoAfter = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
process.stdout.write(JSON.stringify({
  results,
  prototypeUntouched: protoBefore === protoAfter && Object.prototype.polluted === undefined,
  exportedNames: Object.keys(E).sort(),
}));
