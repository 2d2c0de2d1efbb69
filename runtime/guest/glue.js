// Nexus guest glue. The host evaluates this script once per sandbox instance,
// before any handler code exists, and keeps the object it returns: the only
// way into the glue. Nothing of it is reachable from handler code.
//
// Protocol: one JSON string in, one JSON array out per call (see sandbox.py).
//   run(request)   start a handler: answers OK, ERR or PENDING
//   poll()         after the host drained the job queue: OK, ERR or SUSPENDED
//   resume(reply)  settle the extension call the handler waits for: PENDING
// JSON in QuickJS is slow next to the handlers themselves, so requests and
// answers are positional arrays, capability sets and compiled handlers are
// cached in numbered slots, and answers are assembled by hand.
// The host re-checks every mutation, event, view command and extension call
// it receives: the checks below give handlers errors at the right line, they
// are not the security boundary.
(function () {
  'use strict';

  const G = globalThis;
  const indirectEval = G.eval;
  const jsonParse = JSON.parse;
  const jsonStringify = JSON.stringify;
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const freeze = Object.freeze;
  const isFrozen = Object.isFrozen;
  const hasOwn = Object.hasOwn;
  const getPrototypeOf = Object.getPrototypeOf;
  const defineProperty = Object.defineProperty;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const promiseThen = Promise.prototype.then;
  const NativeError = Error;
  const NativeTypeError = TypeError;
  const NativePromise = Promise;
  const NativeProxy = Proxy;
  const NativeMap = Map;
  const NativeSet = Set;
  const NativeWeakMap = WeakMap;
  const imul = Math.imul;

  const PARAMS = '$state, $args, $scope, $emit, $view, $ext, $log';
  const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];
  const MAX_LOG_MESSAGE = 8192;
  // Error text that crosses the boundary; the host cuts again at the same sizes.
  const MAX_ERROR_MESSAGE = 8192;
  const MAX_ERROR_STACK = 32768;

  // ------------------------------------------------------------------ taming

  // Math.random: the pristine memory image is shared by every instance, so the
  // engine's own generator would replay one sequence everywhere. This one is
  // reseeded by the host for each new instance (xoshiro128**).
  let s0 = 0x9e3779b9 | 0, s1 = 0x243f6a88 | 0, s2 = 0xb7e15162 | 0, s3 = 0x71374491 | 0;
  function next32() {
    const result = imul(rotl(imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11);
    return result;
  }
  function rotl(x, k) { return (x << k) | (x >>> (32 - k)); }
  function reseed(seed) {
    s0 = seed[0] | 0; s1 = seed[1] | 0; s2 = seed[2] | 0; s3 = seed[3] | 0;
    if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  }
  defineProperty(Math, 'random', {
    value: function random() { return ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992; },
    writable: true, enumerable: false, configurable: true,
  });

  // Code generation from strings: gone. eval is removed from the globals (the
  // glue keeps its own reference to compile handlers); every Function
  // constructor, reachable through `.constructor` of any function, throws.
  function refuseCodeGeneration() {
    throw new EvalError('code generation from strings is disabled in the sandbox');
  }
  for (const sample of [function () {}, async function () {}, function* () {}, async function* () {}]) {
    const proto = getPrototypeOf(sample);
    const tamed = function Function() { return refuseCodeGeneration(); };
    defineProperty(tamed, 'prototype', { value: proto, writable: false, enumerable: false, configurable: false });
    defineProperty(proto, 'constructor', { value: tamed, writable: false, enumerable: false, configurable: true });
    if (proto === Function.prototype) {
      defineProperty(G, 'Function', { value: tamed, writable: false, enumerable: false, configurable: false });
    }
  }
  delete G.eval;
  // Non-deterministic collection callbacks would run inside later executions.
  delete G.WeakRef;
  delete G.FinalizationRegistry;
  // These two are accessors whose setters keep hidden engine state: a hook set
  // by one execution would run inside the next one. Plain constants instead.
  for (const [name, value] of [['prepareStackTrace', undefined], ['stackTraceLimit', 10]]) {
    const desc = getOwnPropertyDescriptor(NativeError, name);
    if (desc !== undefined && !hasOwn(desc, 'value')) {
      defineProperty(NativeError, name, { value: value, writable: false, enumerable: false, configurable: false });
    }
  }

  // Freezing a prototype makes plain assignments of inherited names fail
  // (`err.name = 'X'`, `obj.toString = f`). These accessors keep such
  // assignments working on the instance while the intrinsic stays untouched.
  function allowOverride(proto, name) {
    const desc = getOwnPropertyDescriptor(proto, name);
    if (desc === undefined || !hasOwn(desc, 'value')) return;
    const value = desc.value;
    defineProperty(proto, name, {
      get: function () { return value; },
      set: function (replacement) {
        if (this === proto) throw new NativeTypeError('cannot assign to a frozen built-in: ' + String(name));
        defineProperty(this, name, { value: replacement, writable: true, enumerable: true, configurable: true });
      },
      enumerable: desc.enumerable,
      configurable: false,
    });
  }
  for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf',
    'propertyIsEnumerable', 'toLocaleString']) allowOverride(Object.prototype, name);
  for (const ctor of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
    AggregateError, G.InternalError]) {
    if (typeof ctor !== 'function') continue;
    for (const name of ['constructor', 'name', 'message', 'toString']) allowOverride(ctor.prototype, name);
  }
  for (const name of ['constructor', 'toString']) {
    allowOverride(Function.prototype, name);
    allowOverride(Array.prototype, name);
  }

  // Deep-freeze every intrinsic reachable from the globals and from syntax.
  function harden(roots) {
    const seen = new NativeSet();
    const stack = roots.slice();
    while (stack.length > 0) {
      const value = stack.pop();
      if (value === null || (typeof value !== 'object' && typeof value !== 'function')) continue;
      if (seen.has(value)) continue;
      seen.add(value);
      freeze(value);
      stack.push(getPrototypeOf(value));
      for (const key of ownKeys(value)) {
        const desc = getOwnPropertyDescriptor(value, key);
        if (desc === undefined) continue;
        if (hasOwn(desc, 'value')) stack.push(desc.value);
        else { stack.push(desc.get); stack.push(desc.set); }
      }
    }
  }
  function* sampleGenerator() {}
  async function* sampleAsyncGenerator() {}
  const hidden = [
    G,
    sampleGenerator, sampleGenerator(), sampleAsyncGenerator, sampleAsyncGenerator(),
    async function () {},
    [][Symbol.iterator](), new NativeMap()[Symbol.iterator](), new NativeSet()[Symbol.iterator](),
    ''[Symbol.iterator](), 'a'.matchAll(/a/g),
    getPrototypeOf(Uint8Array),
    getOwnPropertyDescriptor(Function.prototype, 'caller'),
    new NativePromise(function () {}),
  ];
  if (typeof G.Iterator === 'function') {
    hidden.push(G.Iterator.from([]).map(function (x) { return x; }));
    hidden.push(G.Iterator.from({ next: function () { return { done: true }; } }));
  }
  const pieces = [];
  for (const item of hidden) {
    if (item !== null && typeof item === 'object' && !isFrozen(item) && hasOwn(item, 'get')) {
      pieces.push(item.get); pieces.push(item.set);
    } else {
      pieces.push(item);
    }
  }
  harden(pieces);

  // ------------------------------------------------------------------ encoding

  const PENDING_ANSWER = '[3]';

  // JSON text of the short strings that recur (state keys, event names).
  const quotedCache = new NativeMap();
  function quote(text) {
    let quoted = quotedCache.get(text);
    if (quoted === undefined) {
      quoted = jsonStringify(text);
      if (text.length <= 64) {
        if (quotedCache.size >= 4096) quotedCache.clear();
        quotedCache.set(text, quoted);
      }
    }
    return quoted;
  }

  // JSON text of a value; a snapshot for objects. Throws for what JSON cannot hold.
  function enc(value, what) {
    switch (typeof value) {
      case 'number':
        return (value === value && value !== Infinity && value !== -Infinity) ? '' + value : 'null';
      case 'string':
        return value.length <= 64 ? quote(value) : jsonStringify(value);
      case 'boolean':
        return value ? 'true' : 'false';
      case 'undefined':
        return 'null';
      case 'object': {
        if (value === null) return 'null';
        let text;
        try {
          text = jsonStringify(value);
        } catch (e) {
          throw new NativeTypeError(what + ' must be JSON-serializable (' + safeString(e && e.message) + ')');
        }
        return text === undefined ? 'null' : text;
      }
      default:
        throw new NativeTypeError(what + ' cannot be a ' + typeof value + '; only JSON data crosses the sandbox');
    }
  }

  // ------------------------------------------------------------------ errors

  const glueErrors = new NativeWeakMap();   // error thrown by the glue -> {code, resource}

  function raise(code, message, resource) {
    const error = new NativeError(message);
    glueErrors.set(error, { code: code, resource: resource });
    // Limits and permission failures stick: catching them does not turn the
    // execution into a success.
    if (rec.open && rec.sticky === null) {
      rec.sticky = { code: code, message: message, stack: error.stack, resource: resource };
    }
    throw error;
  }

  function safeString(value) {
    try {
      if (typeof value === 'string') return value;
      if (value !== null && typeof value === 'object') {
        const text = jsonStringify(value);
        if (typeof text === 'string') return text;
      }
      return String(value);
    } catch (e) {
      return '[unprintable value]';
    }
  }

  // At most `max` characters, the marker included.
  function cut(text, max) {
    if (text.length <= max) return text;
    const kept = max - 48;
    return text.slice(0, kept) + '… [' + (text.length - kept) + ' more characters cut]';
  }

  function describe(thrown) {
    const known = glueErrors.get(thrown);
    if (known !== undefined) {
      return {
        code: known.code, message: cut(safeString(thrown.message), MAX_ERROR_MESSAGE),
        stack: cut(safeString(thrown.stack), MAX_ERROR_STACK), resource: known.resource,
      };
    }
    if (thrown instanceof NativeError) {
      let name = 'Error', message = '', stack;
      try { name = String(thrown.name); } catch (e) { /* keep default */ }
      try { message = String(thrown.message); } catch (e) { /* keep default */ }
      try { if (typeof thrown.stack === 'string') stack = cut(thrown.stack, MAX_ERROR_STACK); } catch (e) { /* none */ }
      return { code: classify(name, message), message: cut(name + ': ' + message, MAX_ERROR_MESSAGE), stack: stack };
    }
    return { code: 'EXECUTION_ERROR', message: cut('Uncaught ' + safeString(thrown), MAX_ERROR_MESSAGE) };
  }

  function classify(name, message) {
    if (name === 'InternalError') {
      if (message === 'out of memory' || message === 'string too long') return 'MEMORY_LIMIT';
      if (message === 'stack overflow') return 'RESOURCE_LIMIT';
      if (message === 'interrupted') return 'TIMEOUT';
    }
    if (name === 'RangeError' && message === 'Maximum call stack size exceeded') return 'RESOURCE_LIMIT';
    return 'EXECUTION_ERROR';
  }

  // Capability scopes of one kind: `*`, exact names, or prefixes ending in `*`.
  function matcher(patterns) {
    const m = { all: false, exact: new NativeSet(), prefixes: [] };
    for (const p of patterns) {
      if (p === '*') m.all = true;
      else if (p.charCodeAt(p.length - 1) === 42) m.prefixes.push(p.slice(0, -1));
      else m.exact.add(p);
    }
    return freeze(m);
  }

  function allowed(m, name) {
    if (m.all || m.exact.has(name)) return true;
    const prefixes = m.prefixes;
    for (let i = 0; i < prefixes.length; i++) if (name.startsWith(prefixes[i])) return true;
    return false;
  }

  // ------------------------------------------------------------------ the execution record

  // One record per instance, reused: an instance runs one execution at a time.
  // `work` is the state object of the execution in progress; a $state proxy
  // whose target is not the current `work` belongs to a finished execution.
  // The lists start as null and are created on first use: most handlers touch
  // few of them, and every allocation counts at this scale.
  const rec = {
    open: false,
    work: null,
    proxy: null,       // the $state proxy of the execution in progress
    caps: null,        // matchers w, e, v, x; extension table xm; limits
    orig: null,        // Map key -> JSON at first read (objects only)
    muts: null,        // [key, value] or [key] (delete) or [key, undefined, json]
    events: null,      // JSON texts
    views: null,       // JSON texts
    logs: null,        // JSON texts
    calls: 0,          // sandbox API calls of the whole execution
    mutCount: 0,
    eventCount: 0,
    size: 0,
    sticky: null,
    extQueue: null,
    nextExt: 1,
    inflight: null,
    settled: 0,
    outcome: undefined,
  };

  // Every way out of an execution clears the segment, so a new one starts clean.
  function begin(work, caps) {
    rec.open = true;
    rec.work = work;
    rec.caps = caps;
    rec.calls = 0;
    rec.mutCount = 0;
    rec.eventCount = 0;
    rec.size = 0;
    rec.nextExt = 1;
    rec.settled = 0;
  }

  function close() {
    rec.open = false;
    rec.work = null;
    rec.proxy = null;
    rec.inflight = null;
    rec.outcome = undefined;
    rec.extQueue = null;
  }

  // Forget what the last segment recorded (after its answer was built).
  function clearSegment() {
    rec.orig = null;
    rec.muts = null;
    rec.events = null;
    rec.views = null;
    rec.logs = null;
    rec.size = 0;
    rec.sticky = null;
  }

  // Every sandbox API function starts here.
  function enterApi() {
    if (!rec.open) throw new NativeError('the sandbox API is only usable while its handler runs');
    if (++rec.calls > rec.caps.maxCalls) raise('RESOURCE_LIMIT', 'more than ' + rec.caps.maxCalls + ' sandbox API calls', undefined);
  }

  function account(length) {
    rec.size += length;
    if (rec.size > rec.caps.maxBytes) {
      raise('RESOURCE_LIMIT', overLimit('the output of the handler', rec.size, rec.caps.maxBytes), undefined);
    }
  }

  // "the result of 1.2 MiB is over the 1 MiB limit"
  function overLimit(what, size, limit) {
    return what + ' of ' + byteText(size) + ' is over the ' + byteText(limit) + ' limit';
  }

  function byteText(size) {
    if (size >= 1048576) return trimmed(size / 1048576) + ' MiB';
    if (size >= 1024) return trimmed(size / 1024) + ' KiB';
    return size + ' bytes';
  }

  function trimmed(value) {
    const text = value.toFixed(1);
    return text.endsWith('.0') ? text.slice(0, -2) : text;
  }

  // ------------------------------------------------------------------ $state

  function snapshotRead(key, value) {
    if (value !== null && typeof value === 'object') {
      if (rec.orig === null) rec.orig = new NativeMap();
      if (!rec.orig.has(key)) rec.orig.set(key, enc(value, '$state.' + key));
    }
  }

  function writeKey(key, value, op) {
    if (!allowed(rec.caps.w, key)) {
      raise('PERMISSION_DENIED', (op === 'delete' ? 'deleting' : 'writing') + ' $state.' + key +
        ' needs the capability state:write:' + key, 'state:write:' + key);
    }
    if (key === '__proto__') throw new NativeTypeError('"__proto__" is not a valid state key');
    if (op === 'set') {
      const type = typeof value;
      if (type === 'function' || type === 'symbol' || type === 'bigint') {
        throw new NativeTypeError('$state.' + key + ' cannot hold a ' + type + '; state values are JSON data');
      }
    }
    rec.mutCount += 1;
    if (rec.mutCount > rec.caps.maxMutations) raise('RESOURCE_LIMIT', 'more than ' + rec.caps.maxMutations + ' state mutations', undefined);
    // The log holds the value itself: later changes through it show in the answer.
    if (rec.orig !== null) rec.orig.delete(key);
    if (rec.muts === null) rec.muts = [];
    const muts = rec.muts;
    const last = muts.length > 0 ? muts[muts.length - 1] : null;
    if (op === 'set') {
      if (last !== null && last.length === 2 && last[0] === key) last[1] = value;
      else muts.push([key, value]);
    } else {
      muts.push([key]);
    }
  }

  function finished() {
    throw new NativeError('this $state belongs to a handler that has finished');
  }

  function stateKey(key) {
    if (typeof key !== 'string') throw new NativeTypeError('$state keys are strings');
    return key;
  }

  const stateTraps = freeze({
    get(target, key) {
      if (rec.work !== target) finished();
      if (typeof key !== 'string') return undefined;
      const value = target[key];
      // State holds JSON data, so a function here is inherited from Object.prototype.
      const type = typeof value;
      if (type === 'object') {
        if (value === null) return null;
        if (key === '__proto__' && !hasOwn(target, key)) return undefined;
        snapshotRead(key, value);
        return value;
      }
      return type === 'function' ? undefined : value;
    },
    set(target, key, value) {
      if (rec.work !== target) finished();
      if (value === rec.proxy && value !== null) throw new NativeTypeError('$state cannot contain itself');
      // Fast path for the common case; anything unusual goes through writeKey.
      const w = rec.caps.w;
      const type = typeof value;
      if (typeof key === 'string' && w.all && key !== '__proto__' && type !== 'function' && type !== 'object' &&
          type !== 'symbol' && type !== 'bigint' && type !== 'undefined' && ++rec.mutCount <= rec.caps.maxMutations) {
        let muts = rec.muts;
        if (muts === null) muts = rec.muts = [];
        const last = muts.length > 0 ? muts[muts.length - 1] : null;
        if (last !== null && last.length === 2 && last[0] === key) last[1] = value;
        else muts.push([key, value]);
        if (rec.orig !== null) rec.orig.delete(key);
        target[key] = value;
        return true;
      }
      if (typeof key === 'string' && w.all && type !== 'function' && type !== 'object' && type !== 'symbol' &&
          type !== 'bigint' && type !== 'undefined' && key !== '__proto__') {
        rec.mutCount -= 1;  // counted by the fast path's test; writeKey counts again
      }
      key = stateKey(key);
      writeKey(key, value, 'set');
      target[key] = value === undefined ? null : value;
      return true;
    },
    deleteProperty(target, key) {
      if (rec.work !== target) finished();
      key = stateKey(key);
      writeKey(key, undefined, 'delete');
      delete target[key];
      return true;
    },
    defineProperty(target, key, desc) {
      if (rec.work !== target) finished();
      key = stateKey(key);
      if (!hasOwn(desc, 'value') || hasOwn(desc, 'get') || hasOwn(desc, 'set')) {
        throw new NativeTypeError('$state only holds plain data properties');
      }
      writeKey(key, desc.value, 'set');
      target[key] = desc.value === undefined ? null : desc.value;
      return true;
    },
    has(target, key) {
      if (rec.work !== target) finished();
      return typeof key === 'string' && hasOwn(target, key);
    },
    ownKeys(target) {
      if (rec.work !== target) finished();
      return ownKeys(target);
    },
    getOwnPropertyDescriptor(target, key) {
      if (rec.work !== target) finished();
      const desc = getOwnPropertyDescriptor(target, key);
      if (desc !== undefined && typeof key === 'string') snapshotRead(key, desc.value);
      return desc;
    },
    setPrototypeOf() { return false; },
    preventExtensions() { return false; },
  });

  // Changes made through references ($state.items.push(x)) are found by
  // comparing the serialized value with the one taken at the first read.
  function commitNested() {
    if (rec.orig === null) return;
    for (const entry of rec.orig) {
      const key = entry[0];
      if (!hasOwn(rec.work, key)) continue;
      const now = enc(rec.work[key], '$state.' + key);
      if (now === entry[1]) continue;
      if (!allowed(rec.caps.w, key)) {
        if (rec.sticky === null) {
          rec.sticky = {
            code: 'PERMISSION_DENIED',
            message: 'the handler changed the contents of $state.' + key + ' without the capability state:write:' + key,
            resource: 'state:write:' + key,
          };
        }
        return;
      }
      rec.mutCount += 1;
      if (rec.mutCount > rec.caps.maxMutations && rec.sticky === null) {
        rec.sticky = { code: 'RESOURCE_LIMIT', message: 'more than ' + rec.caps.maxMutations + ' state mutations' };
        return;
      }
      if (rec.muts === null) rec.muts = [];
      rec.muts.push([key, undefined, now]);
    }
  }

  function mutationsJson() {
    const muts = rec.muts;
    if (muts === null) return '[]';
    let out = '[';
    for (let i = 0; i < muts.length; i++) {
      const m = muts[i];
      if (i > 0) out += ',';
      if (m.length === 1) out += '[' + quote(m[0]) + ']';
      else out += '[' + quote(m[0]) + ',' + (m.length === 3 ? m[2] : enc(m[1], '$state.' + m[0])) + ']';
    }
    return out + ']';
  }

  // ------------------------------------------------------------------ $emit, $view, $log, $ext
  // One set shared by every execution: they act on the execution in progress
  // and refuse to work once it has finished.

  function emit(name, payload) {
    if (!rec.open) throw new NativeError('the sandbox API is only usable while its handler runs');
    const caps = rec.caps;
    if (++rec.calls > caps.maxCalls) raise('RESOURCE_LIMIT', 'more than ' + caps.maxCalls + ' sandbox API calls', undefined);
    if (typeof name !== 'string' || name.length === 0) throw new NativeTypeError('$emit needs an event name (a string)');
    if (!caps.e.all && !allowed(caps.e, name)) {
      raise('PERMISSION_DENIED', 'emitting "' + name + '" needs the capability events:emit:' + name, 'events:emit:' + name);
    }
    if (++rec.eventCount > caps.maxEvents) raise('RESOURCE_LIMIT', 'more than ' + caps.maxEvents + ' events', undefined);
    const text = '[' + quote(name) + ',' + (typeof payload === 'number' ? enc(payload, '') : enc(payload, 'the payload of $emit')) + ']';
    rec.size += text.length;
    if (rec.size > caps.maxBytes) account(0);
    let events = rec.events;
    if (events === null) events = rec.events = [];
    events.push(text);
  }

  function viewCommand(type, id, argsJson) {
    enterApi();
    if (typeof id !== 'string' || id.length === 0) throw new NativeTypeError('$view.' + type + ' needs a component id (a string)');
    if (!allowed(rec.caps.v, id)) {
      raise('PERMISSION_DENIED', '$view.' + type + '("' + id + '") needs the capability view:update:' + id, 'view:update:' + id);
    }
    const text = '["' + type + '",' + quote(id) + ',' + argsJson + ']';
    account(text.length);
    if (rec.views === null) rec.views = [];
    rec.views.push(text);
  }

  const view = freeze({
    setFilter: function setFilter(id, value) {
      viewCommand('setFilter', id, '{"value":' + enc(value, 'the value of $view.setFilter') + '}');
    },
    scrollTo: function scrollTo(id, position) {
      viewCommand('scrollTo', id, '{"position":' + enc(position, 'the position of $view.scrollTo') + '}');
    },
    focus: function focus(id) { viewCommand('focus', id, '{}'); },
  });

  function writeLog(level, parts) {
    enterApi();
    let message = '';
    for (let i = 0; i < parts.length; i++) message += (i > 0 ? ' ' : '') + safeString(parts[i]);
    if (message.length > MAX_LOG_MESSAGE) message = message.slice(0, MAX_LOG_MESSAGE) + '…';
    const text = '["' + level + '",' + jsonStringify(message) + ']';
    account(text.length);
    if (rec.logs === null) rec.logs = [];
    rec.logs.push(text);
  }

  const log = function $log(...parts) { writeLog('info', parts); };
  for (const level of LOG_LEVELS) {
    defineProperty(log, level, { value: function (...parts) { writeLog(level, parts); }, enumerable: true });
  }
  freeze(log);

  function extCall(alias, method, args) {
    enterApi();
    if (!allowed(rec.caps.x, alias)) {
      raise('PERMISSION_DENIED', '$ext.' + alias + ' needs the capability ext:' + alias, 'ext:' + alias);
    }
    const table = rec.caps.xm;
    const methods = hasOwn(table, alias) ? table[alias] : null;
    if (methods === null) throw new NativeError("Extension '" + alias + "' not found");
    if (methods.indexOf(method) < 0) {
      throw new NativeError("Extension '" + alias + "' has no method '" + method + "'");
    }
    const argsJson = enc(args, 'the arguments of $ext.' + alias + '.' + method);
    account(argsJson.length);
    if (rec.extQueue === null) rec.extQueue = [];
    const queue = rec.extQueue;
    return new NativePromise(function (resolve, reject) {
      queue.push({ id: rec.nextExt++, alias: alias, method: method, args: argsJson, resolve: resolve, reject: reject });
    });
  }

  const aliasTraps = freeze({
    get(target, method) {
      if (typeof method !== 'string' || method === 'then') return undefined;
      const alias = target.alias;
      return function (...args) { return extCall(alias, method, args); };
    },
  });

  const ext = new NativeProxy(freeze({}), freeze({
    get(target, alias) {
      if (typeof alias !== 'string' || alias === 'then') return undefined;
      return new NativeProxy(freeze({ alias: alias }), aliasTraps);
    },
  }));

  // The API objects are shared by every execution: nothing may be stored on them.
  harden([emit, view, log, ext]);

  // ------------------------------------------------------------------ compile

  const compiled = [];   // handler slot -> {fn, isAsync}
  const capsSlots = [];  // capability slot -> {r, w, e, v, x, xm, lm}
  const EMPTY = freeze({});

  // A handler is compiled twice, and neither compilation runs any of it:
  // - as the body of a plain function, behind a `throw` so that nothing runs
  //   even if the body closes the wrapper early (`}); ...; (function () {`):
  //   this finds the handler's own syntax errors;
  // - in a block labelled with a name the host draws at random for each
  //   compilation, followed by `break <label>`. That break only compiles inside
  //   the labelled block of the same function, so a body that leaves the
  //   wrapper is a SyntaxError and the parser rejects the whole text. A text
  //   that compiles evaluates to the function and nothing else.
  function wrap(code, label) {
    const head = (code.indexOf('await') >= 0 ? 'async function (' : 'function (') + PARAMS + ') {';
    if (label === null) return head + '\n' + code + '\n}';
    return head + label + ':{{\n' + code + '\n}break ' + label + ';}}';
  }

  function compile(code, label) {
    if (typeof label !== 'string') throw new NativeError('compiling needs a label from the host');
    try {
      indirectEval('"use strict";throw 0;(' + wrap(code, null) + ')');
    } catch (e) {
      if (e !== 0) throw e;
    }
    let fn;
    try {
      fn = indirectEval('"use strict";(' + wrap(code, label) + ')');
    } catch (e) {
      if (e instanceof SyntaxError) throw new SyntaxError('the handler closes a block it did not open');
      throw e;
    }
    return { fn: fn, isAsync: code.indexOf('await') >= 0 };
  }

  function listJson(list) {
    if (list === null) return '[]';
    return list.length === 1 ? '[' + list[0] + ']' : '[' + list.join(',') + ']';
  }

  function errorAnswer(info) {
    const out = '[1,' + jsonStringify(info) + ',' + listJson(rec.logs) + ',' + rec.calls + ']';
    clearSegment();
    return out;
  }

  function compileAnswer(thrown) {
    const info = describe(thrown);
    if (info.code === 'EXECUTION_ERROR') info.code = 'COMPILATION_ERROR';
    return '[1,' + jsonStringify(info) + ',[],0]';
  }

  // ------------------------------------------------------------------ run

  function deepFreeze(root) {
    if (root === null || typeof root !== 'object') return root;
    freeze(root);
    const keys = ownKeys(root);
    for (let i = 0; i < keys.length; i++) {
      const value = root[keys[i]];
      if (value !== null && typeof value === 'object' && !isFrozen(value)) deepFreeze(value);
    }
    return root;
  }

  // The arguments of the last execution that reached its handler. Deep-frozen, so
  // sharing them with the next execution shows it nothing new.
  let lastArgs = null;

  // request: [handlerSlot, capsSlot, state, args, extra?]; args 0 means the arguments
  //   of the previous execution (the host sends that only after one reached its handler,
  //   see runtime.py). extra may carry
  //   c: code to compile into handlerSlot, n: the label of its wrapper (see compile),
  //   k: compile only (syntax check),
  //   cp: [r, w, e, v, x] capability scopes for capsSlot, xm: extension methods,
  //   lm: limits, sc: $scope, rs: random seed.
  function run(input) {
    if (rec.open) return '[1,{"code":"INTERNAL_ERROR","message":"an execution is already in progress"},[],0]';
    const req = jsonParse(input);
    const extra = req.length > 4 ? req[4] : null;
    let scope = EMPTY;
    if (extra !== null) {
      if (extra.rs) reseed(extra.rs);
      if (extra.cp) {
        const cp = extra.cp;
        const lm = extra.lm;
        capsSlots[req[1]] = freeze({
          w: matcher(cp[1]), e: matcher(cp[2]), v: matcher(cp[3]), x: matcher(cp[4]), xm: extra.xm || EMPTY,
          maxCalls: lm[0], maxMutations: lm[1], maxEvents: lm[2], maxBytes: lm[3],
        });
      }
      if (typeof extra.c === 'string') {
        let entry;
        try {
          entry = compile(extra.c, extra.n);
        } catch (e) {
          return compileAnswer(e);
        }
        if (extra.k) return '[0,null,[],[],[],[],0]';
        compiled[req[0]] = entry;
      }
      if (extra.sc) scope = deepFreeze(extra.sc);
    }
    const entry = compiled[req[0]];
    const caps = capsSlots[req[1]];
    if (entry === undefined || caps === undefined) {
      return '[1,{"code":"INTERNAL_ERROR","message":"handler or capabilities missing in this instance"},[],0]';
    }
    // The traps only ever look at own properties, so the parsed object is used as is.
    const work = req[2];
    let args = req[3];
    if (args === 0) {
      if (lastArgs === null) return '[1,{"code":"INTERNAL_ERROR","message":"no previous arguments in this instance"},[],0]';
      args = lastArgs;
    } else {
      args = lastArgs = deepFreeze(args);
    }
    begin(work, caps);
    const state = new NativeProxy(work, stateTraps);
    rec.proxy = state;
    const fn = entry.fn;
    let result;
    try {
      result = fn(state, args, scope, emit, view, ext, log);
    } catch (e) {
      return finishError(e);
    }
    if (entry.isAsync || (result !== null && typeof result === 'object' && result instanceof NativePromise)) {
      try {
        apply(promiseThen, result, [
          function (value) { if (rec.settled === 0) { rec.settled = 1; rec.outcome = value; } },
          function (reason) { if (rec.settled === 0) { rec.settled = 2; rec.outcome = reason; } },
        ]);
        return PENDING_ANSWER;
      } catch (e) {
        // not a real promise: an ordinary return value
      }
    }
    return finishOk(result);
  }

  function segmentJson() {
    if (rec.calls === 0) return rec.muts === null ? '[],[],[],[],0' : mutationsJson() + ',[],[],[],0';
    return mutationsJson() + ',' + listJson(rec.events) + ',' + listJson(rec.views) + ',' +
      listJson(rec.logs) + ',' + rec.calls;
  }

  function finishOk(value) {
    let out;
    try {
      const type = typeof value;
      if (type === 'function' || type === 'symbol') {
        throw new NativeTypeError('the handler returned a ' + type + '; return JSON data');
      }
      const rv = type === 'number' && value === value && value !== Infinity && value !== -Infinity
        ? '' + value : enc(value, 'the return value');
      if (rec.orig !== null) commitNested();
      out = '[0,' + rv + ',' + segmentJson() + ']';
    } catch (e) {
      return finishError(e);
    }
    close();
    if (rec.sticky !== null) return errorAnswer(rec.sticky);
    if (out.length > rec.caps.maxBytes) {
      return errorAnswer({ code: 'RESOURCE_LIMIT', message: overLimit('the result', out.length, rec.caps.maxBytes) });
    }
    clearSegment();
    return out;
  }

  function finishError(thrown) {
    close();
    if (rec.logs !== null && rec.size > rec.caps.maxBytes) rec.logs = null;
    return errorAnswer(rec.sticky !== null ? rec.sticky : describe(thrown));
  }

  function poll() {
    if (!rec.open) return '[1,{"code":"INTERNAL_ERROR","message":"no execution in progress"},[],0]';
    if (rec.sticky !== null) return finishError(null);
    if (rec.settled === 1) return finishOk(rec.outcome);
    if (rec.settled === 2) return finishError(rec.outcome);
    if (rec.extQueue === null || rec.extQueue.length === 0) {
      return finishError(new NativeError('the handler awaits a promise that nothing can settle'));
    }
    const call = rec.extQueue.shift();
    let out;
    try {
      commitNested();
      out = '[2,[' + call.id + ',' + jsonStringify(call.alias) + ',' + jsonStringify(call.method) + ',' + call.args +
        '],' + segmentJson() + ']';
    } catch (e) {
      return finishError(e);
    }
    if (rec.sticky !== null) return finishError(null);
    rec.inflight = call;
    startSegment();
    return out;
  }

  // After a suspension the committed values become the new baseline: every
  // key read or written so far may still be changed through a reference.
  function startSegment() {
    const keys = [];
    if (rec.orig !== null) for (const entry of rec.orig) keys.push(entry[0]);
    if (rec.muts !== null) for (const m of rec.muts) keys.push(m[0]);
    clearSegment();
    for (const key of keys) {
      if (hasOwn(rec.work, key)) snapshotRead(key, rec.work[key]);
    }
  }

  // reply: [callId, ok, value, errorMessage, state|null, errorCode?]
  function resume(input) {
    const reply = jsonParse(input);
    if (!rec.open || rec.inflight === null || rec.inflight.id !== reply[0]) {
      return '[1,{"code":"INTERNAL_ERROR","message":"no extension call is waiting for this reply"},[],0]';
    }
    const call = rec.inflight;
    rec.inflight = null;
    const fresh = reply[4];
    if (fresh !== null && typeof fresh === 'object') {
      const work = rec.work;
      for (const key of ownKeys(work)) delete work[key];
      for (const key of ownKeys(fresh)) {
        defineProperty(work, key, { value: fresh[key], writable: true, enumerable: true, configurable: true });
      }
      rec.orig = null;
    }
    if (reply[1]) call.resolve(reply[2]);
    else {
      const failure = new NativeError(typeof reply[3] === 'string' ? reply[3] : 'extension call failed');
      // An error code chosen by the host (TIMEOUT, RESOURCE_LIMIT, ...) for handlers to test.
      if (typeof reply[5] === 'string') failure.code = reply[5];
      call.reject(failure);
    }
    return PENDING_ANSWER;
  }

  freeze(G);
  return freeze({ run: run, poll: poll, resume: resume });
})()
