// The panel's state as the client knows it: the last committed snapshot plus PATCHes in
// state-version order. A gap in versions is closed by re-reading the state over HTTP; when that
// fails too often the caller is told to reconnect (a fresh CONNECTED carries the full state).
import { copyObject, defineOwn, isPlainObject } from './dom.js';

export class PanelState {
  constructor(state, version, { stateUrl, maxResyncAttempts, onChange, onLost, log }) {
    this.values = copyObject(state);
    this.version = typeof version === 'number' ? version : null;
    this.stateUrl = stateUrl;
    this.maxResyncAttempts = maxResyncAttempts;
    this.onChange = onChange;
    this.onLost = onLost;
    this.log = log;
    this.buffer = [];
    this.resyncing = false;
    this.resyncAttempts = 0;
  }

  // A full snapshot (CONNECTED): everything buffered before it is stale.
  reset(state, version) {
    this.resyncAttempts = 0;
    this.buffer = [];
    this.resyncing = false;
    this.replace(state, version);
  }

  replace(state, version) {
    this.values = copyObject(state);
    if (typeof version === 'number') this.version = version;
    this.onChange();
  }

  apply(mutations) {
    const values = this.values;
    (Array.isArray(mutations) ? mutations : []).forEach((mutation) => {
      if (!isPlainObject(mutation) || typeof mutation.key !== 'string') return;
      if (mutation.operation === 'delete') delete values[mutation.key];
      else defineOwn(values, mutation.key, mutation.value);
    });
    this.onChange();
  }

  patch(message) {
    const version = message.stateVersion;
    if (this.resyncing) {
      this.buffer.push(message);
      return;
    }
    if (typeof version !== 'number' || this.version === null) {
      this.apply(message.mutations);
      if (typeof version === 'number') this.version = version;
      return;
    }
    if (version <= this.version) return;
    if (version === this.version + 1) {
      this.apply(message.mutations);
      this.version = version;
      return;
    }
    this.buffer.push(message);
    this.resync();
  }

  resync() {
    this.resyncAttempts += 1;
    if (this.resyncAttempts > this.maxResyncAttempts || !this.stateUrl || typeof globalThis.fetch !== 'function') {
      this.resyncing = false;
      this.onLost();
      return;
    }
    this.resyncing = true;
    globalThis.fetch(this.stateUrl, {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' }
    }).then((response) => {
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json();
    }).then((body) => {
      if (!isPlainObject(body) || !isPlainObject(body.state) || typeof body.stateVersion !== 'number') {
        throw new Error('unexpected state body');
      }
      this.resyncing = false;
      this.replace(body.state, body.stateVersion);
      this.drain();
    }).catch((err) => {
      this.log('state re-sync failed', err);
      this.resyncing = false;
      this.buffer = [];
      this.onLost();
    });
  }

  drain() {
    const buffered = this.buffer.sort((a, b) => a.stateVersion - b.stateVersion);
    this.buffer = [];
    for (let i = 0; i < buffered.length; i += 1) {
      const version = buffered[i].stateVersion;
      if (version <= this.version) continue;
      if (version !== this.version + 1) {
        this.buffer = buffered.slice(i);
        this.resync();
        return;
      }
      this.apply(buffered[i].mutations);
      this.version = version;
    }
    this.resyncAttempts = 0;
  }
}
