// Components that change the panel: Input, Switch, Checkbox, Button and Action.
//
// A control that runs a tool ("trigger", with optional "args") goes through app.trigger, which
// marks it busy until the tool's RESULT arrives (setBusy).
import { copyObject, defineOwn, el, hasOwn, oneOf, setText } from './dom.js';
import { register } from './components.js';
import { E } from './expressions.js';
import { argsProp, boolProp, boundKey, literalProp, textProp } from './props.js';

let fieldCounter = 0;

function stateValue(key, ctx) {
  return key && ctx.state && hasOwn(ctx.state, key) ? ctx.state[key] : undefined;
}

// Run the node's trigger with its args; an args expression that fails is shown, not sent.
function runTrigger(app, instance, node, trigger, ctx, what) {
  const args = argsProp(node, ctx);
  if (!args.ok) {
    app.showAlert('error', `Could not read the arguments of "${what || trigger}": ${args.error}`);
    return;
  }
  app.trigger(instance, trigger, args.value, ctx.scope);
}

function Input(node, ctx, app) {
  const key = boundKey((node.props || {}).bind);
  const trigger = literalProp(node, 'trigger');
  const type = oneOf(literalProp(node, 'inputType'), ['text', 'number', 'password', 'email'], 'text');
  const field = el('div', 'nx-field');
  const input = el('input', 'nx-input');
  const label = el('label', 'nx-visually-hidden');
  fieldCounter += 1;
  input.id = 'nx-field-' + fieldCounter;
  label.htmlFor = input.id;
  input.type = type;
  input.autocomplete = type === 'password' ? 'current-password' : 'off';
  if (type === 'number') input.inputMode = 'decimal';
  if (trigger) input.enterKeyHint = 'send';
  field.append(label, input);
  let synced = '';
  let busy = false;
  let lastCtx = ctx;

  // The typed value, or undefined when it is not a valid value to send.
  function typedValue() {
    const raw = input.value;
    if (type !== 'number') return raw;
    const value = raw.trim() === '' ? NaN : Number(raw);
    const bad = !Number.isFinite(value);
    input.setAttribute('aria-invalid', bad ? 'true' : 'false');
    return bad ? undefined : value;
  }

  // Send the typed value as a SET; false when there is nothing valid to send.
  function commit() {
    if (!key || input.disabled) return false;
    const value = typedValue();
    if (value === undefined) return false;
    if (input.value !== synced) {
      synced = input.value;
      app.sendSet(key, value);
    }
    return true;
  }

  input.addEventListener('change', commit);
  input.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.isComposing || !commit()) return;
    if (!trigger || busy || !app.isLive()) return;
    event.preventDefault();
    // The tool runs after the SET: its args read the state with the value just typed.
    const state = copyObject(lastCtx.state);
    defineOwn(state, key, typedValue());
    runTrigger(app, instance, node, trigger, { state, scope: lastCtx.scope }, textProp(node, 'placeholder', lastCtx));
  });

  function refresh() {
    input.disabled = !key || !app.isLive() || boolProp(node, 'disabled', lastCtx);
    input.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function update(next) {
    lastCtx = next;
    const placeholder = textProp(node, 'placeholder', next);
    setText(label, placeholder || key || 'Value');
    if (input.placeholder !== placeholder) input.placeholder = placeholder;
    refresh();
    const current = E.toText(stateValue(key, next) ?? '');
    const typing = document.activeElement === input && input.value !== synced;
    if (!typing && input.value !== current) input.value = current;
    if (!typing) synced = current;
  }

  update(ctx);
  const instance = {
    el: field,
    update,
    focus: () => input.focus(),
    flush: commit,
    setBusy(value) {
      busy = value;
      refresh();
    },
    destroy: () => app.inputs.delete(instance)
  };
  app.inputs.add(instance);
  return instance;
}

// A checkbox-like control: Switch always binds a boolean state key; Checkbox binds one or shows
// `checked` (for example a field of an Iterate row) and runs its trigger when it is clicked.
function toggleControl(kind) {
  return function (node, ctx, app) {
    const key = boundKey((node.props || {}).bind);
    const trigger = literalProp(node, 'trigger');
    const wrapper = el('label', `nx-${kind}`);
    const control = el('span', `nx-${kind}-control`);
    const input = el('input', `nx-${kind}-input`);
    const text = el('span', `nx-${kind}-label`);
    input.type = 'checkbox';
    control.appendChild(input);
    if (kind === 'switch') {
      input.setAttribute('role', 'switch');
      const track = el('span', 'nx-switch-track');
      track.setAttribute('aria-hidden', 'true');
      control.appendChild(track);
    }
    wrapper.append(control, text);
    let lastCtx = ctx;
    let busy = false;

    const checkedIn = (next) => (key ? Boolean(stateValue(key, next)) : boolProp(node, 'checked', next));

    input.addEventListener('change', () => {
      if (key) app.sendSet(key, input.checked);
      if (trigger) runTrigger(app, instance, node, trigger, lastCtx, text.textContent);
    });

    function refresh() {
      const acts = Boolean(key || trigger);
      input.disabled = !acts || busy || !app.isLive() || boolProp(node, 'disabled', lastCtx);
      input.setAttribute('aria-busy', busy ? 'true' : 'false');
    }

    function update(next) {
      lastCtx = next;
      const label = textProp(node, 'label', next);
      setText(text, label);
      if (!label) input.setAttribute('aria-label', key || trigger || (kind === 'switch' ? 'Switch' : 'Checkbox'));
      else input.removeAttribute('aria-label');
      const on = checkedIn(next);
      if (input.checked !== on) input.checked = on;
      refresh();
    }

    const instance = {
      el: wrapper,
      update,
      focus: () => input.focus(),
      setBusy(value) {
        busy = value;
        // A run that changed nothing (or failed) leaves the box as the state says.
        if (!busy) update(lastCtx);
        else refresh();
      }
    };
    update(ctx);
    return instance;
  };
}

function makeButton(requireTrigger) {
  return function (node, ctx, app) {
    const button = el('button', 'nx-button');
    const label = el('span', 'nx-button-label');
    button.type = 'button';
    button.appendChild(label);
    let lastCtx = ctx;
    let busy = false;
    const trigger = literalProp(node, 'trigger');

    function refresh() {
      button.disabled = !trigger || !app.isLive() || busy || boolProp(node, 'disabled', lastCtx);
      button.setAttribute('aria-busy', busy ? 'true' : 'false');
      button.classList.toggle('nx-button--busy', busy);
    }

    function update(next) {
      lastCtx = next;
      const variant = oneOf(textProp(node, 'variant', next), ['primary', 'secondary', 'danger', 'ghost'], 'primary');
      const className = `nx-button nx-button--${variant}${busy ? ' nx-button--busy' : ''}`;
      if (button.className !== className) button.className = className;
      setText(label, textProp(node, 'label', next) || trigger || 'Button');
      refresh();
    }

    const instance = {
      el: button,
      update,
      focus: () => button.focus(),
      setBusy(value) {
        busy = value;
        refresh();
      },
      destroy() { instance.destroyed = true; }
    };

    button.addEventListener('click', () => {
      if (button.disabled || busy || !trigger) return;
      runTrigger(app, instance, node, trigger, lastCtx, label.textContent);
    });

    if (requireTrigger && !trigger) app.log('Action without a trigger', node);
    update(ctx);
    return instance;
  };
}

register({
  Input,
  Switch: toggleControl('switch'),
  Checkbox: toggleControl('checkbox'),
  Button: makeButton(false),
  Action: makeButton(true)
});
