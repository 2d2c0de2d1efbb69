/*
 * Nexus binding-expression evaluator.
 *
 * A small tokenizer, a recursive-descent parser and a tree-walking interpreter
 * for the expressions that appear in `{...}` inside View attributes. The
 * language is deliberately tiny: literals, `$state` / `$scope` paths (with
 * `.name`, `?.name` and `[expr]`), arithmetic, comparison, `&& || ?? !`,
 * `typeof`, the conditional operator, parentheses and object / array
 * literals: the language the server's binding parser (workspaces/nxml/
 * bindings.py) accepts, with JavaScript's meaning. There are no calls, no assignments and no names
 * other than `$state` and `$scope`, and the code never reaches `eval` or the
 * Function constructor, so an expression can only read the data it is given.
 *
 * Works as a classic browser script (window.NexusEval) and as a CommonJS
 * module (require('.../evaluator.js')) so it can be tested under Node.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  }
  if (root && typeof root === 'object') {
    root.NexusEval = api;
  }
})(typeof window !== 'undefined' ? window : null, function () {
  'use strict';

  var MAX_SOURCE_LENGTH = 4000;
  var MAX_NESTING = 64;
  var CACHE_LIMIT = 500;
  var KEYWORD_VALUES = { true: true, false: false, null: null, undefined: undefined };
  var hasOwn = Object.prototype.hasOwnProperty;

  function ExpressionError(message, position) {
    this.name = 'ExpressionError';
    this.message = message;
    this.position = position === undefined ? -1 : position;
  }
  ExpressionError.prototype = Object.create(Error.prototype);
  ExpressionError.prototype.constructor = ExpressionError;

  function fail(message, position) {
    throw new ExpressionError(message, position);
  }

  // Names that lead from data to prototypes and constructors.
  function isBlockedKey(key) {
    return key === '__proto__' || key === 'constructor' || key === 'prototype';
  }

  // ---------------------------------------------------------------- tokenizer

  // Longest operators first so that `===` is not read as `==` then `=`.
  var OPERATORS = [
    '===', '!==', '==', '!=', '<=', '>=', '&&', '||', '++', '--', '=>', '??', '?.',
    '<', '>', '+', '-', '*', '/', '%', '!', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}', '='
  ];
  var REFUSED_OPERATORS = {
    '=': 'assignment is not allowed',
    '++': 'increment is not allowed',
    '--': 'decrement is not allowed',
    '=>': 'functions are not allowed'
  };
  var SIMPLE_ESCAPES = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', v: '\v', 0: '\0' };

  function isDigit(ch) {
    return ch >= '0' && ch <= '9';
  }

  function isIdentStart(ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch === '_' || ch === '$';
  }

  function isIdentPart(ch) {
    return isIdentStart(ch) || isDigit(ch);
  }

  function readNumber(src, start) {
    var match = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(src.slice(start));
    if (!match) fail('malformed number', start);
    var end = start + match[0].length;
    if (end < src.length && isIdentPart(src.charAt(end))) fail('malformed number', start);
    return { type: 'num', value: Number(match[0]), pos: start, end: end };
  }

  function readHex(src, at, count) {
    var digits = src.substr(at, count);
    if (digits.length !== count || !/^[0-9a-fA-F]+$/.test(digits)) fail('bad escape sequence', at);
    return String.fromCharCode(parseInt(digits, 16));
  }

  function readString(src, start) {
    var quote = src.charAt(start);
    var out = '';
    var i = start + 1;
    while (i < src.length) {
      var ch = src.charAt(i);
      if (ch === quote) return { type: 'str', value: out, pos: start, end: i + 1 };
      if (ch === '\n' || ch === '\r') break;
      if (ch !== '\\') {
        out += ch;
        i += 1;
        continue;
      }
      var next = src.charAt(i + 1);
      if (next === 'u' && src.charAt(i + 2) === '{') {
        var close = src.indexOf('}', i + 3);
        var code = close < 0 ? NaN : parseInt(src.slice(i + 3, close), 16);
        if (!/^[0-9a-fA-F]{1,6}$/.test(src.slice(i + 3, close)) || !(code <= 0x10FFFF)) fail('bad escape sequence', i);
        out += String.fromCodePoint(code);
        i = close + 1;
      } else if (next === 'u') {
        out += readHex(src, i + 2, 4);
        i += 6;
      } else if (next === 'x') {
        out += readHex(src, i + 2, 2);
        i += 4;
      } else if (hasOwn.call(SIMPLE_ESCAPES, next)) {
        out += SIMPLE_ESCAPES[next];
        i += 2;
      } else {
        out += next;
        i += 2;
      }
    }
    return fail('unterminated string', start);
  }

  function readOperator(src, start) {
    for (var k = 0; k < OPERATORS.length; k += 1) {
      var op = OPERATORS[k];
      if (src.substr(start, op.length) === op) {
        // `?.5` is a conditional followed by a number, not optional chaining.
        if (op === '?.' && isDigit(src.charAt(start + 2))) continue;
        if (hasOwn.call(REFUSED_OPERATORS, op)) fail(REFUSED_OPERATORS[op], start);
        return { type: 'op', value: op, pos: start, end: start + op.length };
      }
    }
    return fail('unexpected character ' + JSON.stringify(src.charAt(start)), start);
  }

  function tokenize(src) {
    var tokens = [];
    var i = 0;
    while (i < src.length) {
      var ch = src.charAt(i);
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
        i += 1;
        continue;
      }
      var token;
      if (isDigit(ch) || (ch === '.' && isDigit(src.charAt(i + 1)))) {
        token = readNumber(src, i);
      } else if (ch === '"' || ch === "'") {
        token = readString(src, i);
      } else if (ch === '`') {
        fail('template literals are not allowed', i);
      } else if (isIdentStart(ch)) {
        var end = i + 1;
        while (end < src.length && isIdentPart(src.charAt(end))) end += 1;
        token = { type: 'ident', value: src.slice(i, end), pos: i, end: end };
      } else {
        token = readOperator(src, i);
      }
      tokens.push(token);
      i = token.end;
    }
    tokens.push({ type: 'eof', value: '', pos: src.length, end: src.length });
    return tokens;
  }

  // ------------------------------------------------------------------- parser

  var BINARY_LEVELS = [
    ['||', '??'],
    ['&&'],
    ['===', '!==', '==', '!='],
    ['<', '<=', '>', '>='],
    ['+', '-'],
    ['*', '/', '%']
  ];

  function Parser(src) {
    this.tokens = tokenize(src);
    this.index = 0;
    this.depth = 0;
  }

  Parser.prototype.peek = function () {
    return this.tokens[this.index];
  };

  Parser.prototype.next = function () {
    var token = this.tokens[this.index];
    if (token.type !== 'eof') this.index += 1;
    return token;
  };

  Parser.prototype.isOp = function (value) {
    var token = this.peek();
    return token.type === 'op' && token.value === value;
  };

  Parser.prototype.expectOp = function (value) {
    var token = this.next();
    if (token.type !== 'op' || token.value !== value) {
      fail('expected ' + JSON.stringify(value) + ' but found ' + describe(token), token.pos);
    }
    return token;
  };

  Parser.prototype.enter = function () {
    this.depth += 1;
    if (this.depth > MAX_NESTING) fail('expression nested too deeply', this.peek().pos);
  };

  Parser.prototype.leave = function () {
    this.depth -= 1;
  };

  Parser.prototype.parseProgram = function () {
    if (this.peek().type === 'eof') fail('empty expression', 0);
    var node = this.parseConditional();
    var rest = this.peek();
    if (rest.type !== 'eof') fail('unexpected ' + describe(rest), rest.pos);
    return node;
  };

  Parser.prototype.parseConditional = function () {
    this.enter();
    var test = this.parseBinary(0);
    if (this.isOp('?')) {
      this.next();
      var consequent = this.parseConditional();
      this.expectOp(':');
      var alternate = this.parseConditional();
      test = { kind: 'cond', test: test, consequent: consequent, alternate: alternate };
    }
    this.leave();
    return test;
  };

  Parser.prototype.parseBinary = function (level) {
    if (level >= BINARY_LEVELS.length) return this.parseUnary();
    var left = this.parseBinary(level + 1);
    for (;;) {
      var token = this.peek();
      if (token.type !== 'op' || BINARY_LEVELS[level].indexOf(token.value) < 0) return left;
      this.next();
      var right = this.parseBinary(level + 1);
      left = { kind: 'binary', op: token.value, left: left, right: right };
      if (mixesNullish(left)) fail('?? cannot be mixed with && or || without parentheses', token.pos);
    }
  };

  // JavaScript refuses `a || b ?? c` and `a ?? b && c`: the grouping must be written out.
  function mixesNullish(node) {
    var logical = function (side) {
      return side.kind === 'binary' && !side.grouped && (side.op === '&&' || side.op === '||' || side.op === '??') &&
        (side.op === '??') !== (node.op === '??');
    };
    return (node.op === '??' || node.op === '||' || node.op === '&&') && (logical(node.left) || logical(node.right));
  }

  Parser.prototype.parseUnary = function () {
    var token = this.peek();
    var isTypeof = token.type === 'ident' && token.value === 'typeof';
    if (isTypeof || (token.type === 'op' && (token.value === '!' || token.value === '-' || token.value === '+'))) {
      this.next();
      this.enter();
      var argument = this.parseUnary();
      this.leave();
      return { kind: 'unary', op: token.value, argument: argument };
    }
    return this.parsePostfix();
  };

  Parser.prototype.parsePostfix = function () {
    var node = this.parsePrimary();
    for (;;) {
      var token = this.peek();
      if (token.type !== 'op') return node;
      if (token.value === '.' || token.value === '?.') {
        // `?.` reads like `.`: a missing value already reads as undefined.
        this.next();
        var name = this.next();
        if (name.type !== 'ident') fail('expected a property name after ' + JSON.stringify(token.value), name.pos);
        node = this.member(node, { kind: 'lit', value: name.value }, name.pos);
      } else if (token.value === '[') {
        this.next();
        var key = this.parseConditional();
        this.expectOp(']');
        node = this.member(node, key, token.pos);
      } else if (token.value === '(') {
        fail('function calls are not allowed', token.pos);
      } else {
        return node;
      }
    }
  };

  Parser.prototype.member = function (object, key, pos) {
    if (key.kind === 'lit' && isBlockedKey(key.value)) {
      fail('access to ' + JSON.stringify(key.value) + ' is not allowed', pos);
    }
    return { kind: 'member', object: object, key: key, pos: pos };
  };

  Parser.prototype.parsePrimary = function () {
    var token = this.next();
    if (token.type === 'num' || token.type === 'str') return { kind: 'lit', value: token.value };
    if (token.type === 'ident') return this.identifier(token);
    if (token.type === 'op') {
      if (token.value === '(') {
        var inner = this.parseConditional();
        this.expectOp(')');
        return inner.kind === 'binary' ? { kind: 'binary', op: inner.op, left: inner.left, right: inner.right, grouped: true } : inner;
      }
      if (token.value === '[') return this.parseArray();
      if (token.value === '{') return this.parseObject();
    }
    return fail('unexpected ' + describe(token), token.pos);
  };

  Parser.prototype.identifier = function (token) {
    var name = token.value;
    if (name === '$state' || name === '$scope') return { kind: 'root', name: name };
    if (hasOwn.call(KEYWORD_VALUES, name)) return { kind: 'lit', value: KEYWORD_VALUES[name] };
    return fail('unknown name ' + JSON.stringify(name) + ' (only $state and $scope can be read)', token.pos);
  };

  Parser.prototype.parseArray = function () {
    this.enter();
    var items = [];
    while (!this.isOp(']')) {
      if (this.isOp(',')) fail('empty array slot', this.peek().pos);
      items.push(this.parseConditional());
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(']');
    this.leave();
    return { kind: 'array', items: items };
  };

  Parser.prototype.parseObject = function () {
    this.enter();
    var entries = [];
    while (!this.isOp('}')) {
      var keyToken = this.next();
      if (keyToken.type !== 'ident' && keyToken.type !== 'str' && keyToken.type !== 'num') {
        fail('expected a property name but found ' + describe(keyToken), keyToken.pos);
      }
      var key = String(keyToken.value);
      if (isBlockedKey(key)) fail('property name ' + JSON.stringify(key) + ' is not allowed', keyToken.pos);
      this.expectOp(':');
      entries.push({ key: key, value: this.parseConditional() });
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp('}');
    this.leave();
    return { kind: 'object', entries: entries };
  };

  function describe(token) {
    if (token.type === 'eof') return 'end of expression';
    if (token.type === 'str') return 'string';
    return JSON.stringify(String(token.value));
  }

  // -------------------------------------------------------------- interpreter

  // Objects and arrays only ever come from JSON data or from literals built
  // here, so converting them to primitives by hand keeps the native operators
  // from looking up any method on them.
  function toPrimitive(value) {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) {
      return value.map(function (item) {
        return item === null || item === undefined ? '' : String(toPrimitive(item));
      }).join(',');
    }
    return '[object Object]';
  }

  function readMember(object, key) {
    if (object === null || object === undefined) return undefined;
    if (typeof key === 'number') {
      if (!isFinite(key)) return undefined;
      key = String(key);
    }
    if (typeof key !== 'string') return undefined;
    if (isBlockedKey(key)) fail('access to ' + JSON.stringify(key) + ' is not allowed');
    if (typeof object === 'string' || Array.isArray(object)) {
      if (key === 'length') return object.length;
      if (!/^(?:0|[1-9]\d*)$/.test(key)) return undefined;
      var index = Number(key);
      if (index >= object.length) return undefined;
      return typeof object === 'string' ? object.charAt(index) : object[index];
    }
    if (typeof object !== 'object') return undefined;
    return hasOwn.call(object, key) ? object[key] : undefined;
  }

  function binary(op, left, right) {
    switch (op) {
      case '===': return left === right;
      case '!==': return left !== right;
      case '==': return looseEquals(left, right);
      case '!=': return !looseEquals(left, right);
    }
    var a = toPrimitive(left);
    var b = toPrimitive(right);
    switch (op) {
      case '<': return a < b;
      case '<=': return a <= b;
      case '>': return a > b;
      case '>=': return a >= b;
      case '+': return typeof a === 'string' || typeof b === 'string' ? String(a) + String(b) : Number(a) + Number(b);
      case '-': return Number(a) - Number(b);
      case '*': return Number(a) * Number(b);
      case '/': return Number(a) / Number(b);
      case '%': return Number(a) % Number(b);
    }
    return fail('unknown operator ' + op);
  }

  function looseEquals(left, right) {
    var leftIsObject = left !== null && typeof left === 'object';
    var rightIsObject = right !== null && typeof right === 'object';
    if (leftIsObject && rightIsObject) return left === right;
    // eslint-disable-next-line eqeqeq
    return toPrimitive(left) == toPrimitive(right);
  }

  function run(node, env) {
    switch (node.kind) {
      case 'lit':
        return node.value;
      case 'root':
        return node.name === '$state' ? env.state : env.scope;
      case 'member':
        return readMember(run(node.object, env), run(node.key, env));
      case 'unary':
        return unary(node.op, run(node.argument, env));
      case 'binary':
        if (node.op === '&&') {
          var l = run(node.left, env);
          return l ? run(node.right, env) : l;
        }
        if (node.op === '||') {
          var r = run(node.left, env);
          return r ? r : run(node.right, env);
        }
        if (node.op === '??') {
          var n = run(node.left, env);
          return n === null || n === undefined ? run(node.right, env) : n;
        }
        return binary(node.op, run(node.left, env), run(node.right, env));
      case 'cond':
        return run(node.test, env) ? run(node.consequent, env) : run(node.alternate, env);
      case 'array':
        return node.items.map(function (item) { return run(item, env); });
      case 'object':
        return buildObject(node.entries, env);
    }
    return fail('unknown expression node');
  }

  function unary(op, value) {
    if (op === '!') return !value;
    if (op === 'typeof') return typeof value;
    var number = Number(toPrimitive(value));
    return op === '-' ? -number : number;
  }

  function buildObject(entries, env) {
    var out = {};
    for (var i = 0; i < entries.length; i += 1) {
      Object.defineProperty(out, entries[i].key, {
        value: run(entries[i].value, env), enumerable: true, writable: true, configurable: true
      });
    }
    return out;
  }

  // ------------------------------------------------------------ public helpers

  var cache = new Map();

  /** Parse an expression (without braces). Throws ExpressionError. */
  function compile(source) {
    if (typeof source !== 'string') fail('expression must be a string');
    if (source.length > MAX_SOURCE_LENGTH) fail('expression longer than ' + MAX_SOURCE_LENGTH + ' characters');
    var cached = cache.get(source);
    if (cached) {
      if (cached.error) throw cached.error;
      return cached.ast;
    }
    var entry;
    try {
      entry = { ast: new Parser(source).parseProgram() };
    } catch (err) {
      if (!(err instanceof ExpressionError)) err = new ExpressionError(String(err && err.message));
      entry = { error: err };
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(source, entry);
    if (entry.error) throw entry.error;
    return entry.ast;
  }

  function environment(context) {
    context = context || {};
    return { state: context.state, scope: context.scope };
  }

  /** Evaluate an expression; returns {ok: true, value} or {ok: false, error}. */
  function tryEvaluate(source, context) {
    try {
      return { ok: true, value: run(compile(source), environment(context)) };
    } catch (err) {
      var message = err instanceof ExpressionError ? err.message : 'evaluation failed';
      return { ok: false, error: message };
    }
  }

  /** Evaluate an expression; on any error returns `fallback` ('' by default). */
  function evaluate(source, context, fallback) {
    var result = tryEvaluate(source, context);
    if (result.ok) return result.value;
    return fallback === undefined ? '' : fallback;
  }

  /** Text shown for a value: '' for null/undefined, JSON for objects. */
  function toText(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    try {
      var json = JSON.stringify(value);
      return json === undefined ? '' : json;
    } catch (err) {
      return '';
    }
  }

  // Index just past the `}` that closes the `{` at `start`, or -1. Braces inside
  // string literals do not count.
  function findClosingBrace(text, start) {
    var depth = 0;
    var quote = '';
    for (var i = start; i < text.length; i += 1) {
      var ch = text.charAt(i);
      if (quote) {
        if (ch === '\\') i += 1;
        else if (ch === quote) quote = '';
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else if (ch === '{') {
        depth += 1;
      } else if (ch === '}') {
        depth -= 1;
        if (depth === 0) return i + 1;
      }
    }
    return -1;
  }

  /** Split raw attribute text into literal text and `{expression}` parts. */
  function parseTemplate(raw) {
    var parts = [];
    var text = '';
    var i = 0;
    while (i < raw.length) {
      var open = raw.indexOf('{', i);
      if (open < 0) break;
      var close = findClosingBrace(raw, open);
      if (close < 0) break;
      text += raw.slice(i, open);
      if (text) parts.push({ text: text });
      text = '';
      parts.push({ expr: raw.slice(open + 1, close - 1) });
      i = close;
    }
    text += raw.slice(i);
    if (text) parts.push({ text: text });
    return parts;
  }

  /** True when the whole raw value is one `{expression}`. */
  function isBinding(raw) {
    if (typeof raw !== 'string') return false;
    var trimmed = raw.trim();
    return trimmed.charAt(0) === '{' && findClosingBrace(trimmed, 0) === trimmed.length;
  }

  /** True when the raw value holds at least one `{expression}`. */
  function hasExpressions(raw) {
    return typeof raw === 'string' && parseTemplate(raw).some(function (p) { return 'expr' in p; });
  }

  /** Render text with `{expression}` parts replaced by their text. */
  function renderTemplate(raw, context) {
    if (typeof raw !== 'string') return toText(raw);
    return parseTemplate(raw).map(function (part) {
      return 'text' in part ? part.text : toText(evaluate(part.expr, context));
    }).join('');
  }

  /**
   * The value of a raw View attribute: the typed value of a `{expression}`,
   * the text of a template, or the literal string itself.
   */
  function resolve(raw, context, fallback) {
    if (raw === undefined || raw === null) return fallback;
    if (typeof raw !== 'string') return raw;
    if (isBinding(raw)) {
      var trimmed = raw.trim();
      return evaluate(trimmed.slice(1, -1), context, fallback);
    }
    return hasExpressions(raw) ? renderTemplate(raw, context) : raw;
  }

  return Object.freeze({
    ExpressionError: ExpressionError,
    compile: compile,
    evaluate: evaluate,
    tryEvaluate: tryEvaluate,
    resolve: resolve,
    renderTemplate: renderTemplate,
    parseTemplate: parseTemplate,
    isBinding: isBinding,
    hasExpressions: hasExpressions,
    toText: toText,
    isBlockedKey: isBlockedKey
  });
});
