// The panel's WebSocket: opening, heartbeats, reconnecting with backoff, and close codes.
//
// Connection knows nothing of panels: it reports frames and its status to the handlers it is
// given, {onFrame(text), onStatus(status, detail), onProblem(text), onClosed(), log(...)}; status is one of
// connecting, live, reconnecting, offline ("live" is reported by the app once CONNECTED arrives).

export const FATAL_CLOSE_CODES = {
  4401: 'You are not signed in. Sign in again and reload the page.',
  4403: 'You do not have access to this panel.',
  4404: 'This panel no longer exists.'
};

// A live socket closed with one of these (its token expired, the member's access changed) is
// opened again at once with the page's session: the server decides anew. Only a refusal of that
// new socket, before it was live, is final, so a revoked member never loops.
export const RECHECK_CLOSE_CODES = [4401, 4403];

// The server sends a socket away to reconnect, to another server, when it drains or the socket is
// old (a RECONNECT frame with retryAfterMs, then this code). Not a failure: no alert, usual backoff.
export const CLOSE_RECONNECT = 1012;

export function absoluteWsUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const scheme = globalThis.location.protocol === 'https:' ? 'wss://' : 'ws://';
  return scheme + globalThis.location.host + (url.startsWith('/') ? url : '/' + url);
}

export class Connection {
  constructor(url, options, handlers) {
    this.url = url;
    this.options = options;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timers = {};
    this.lastMessageAt = 0;
    this.destroyed = false;
    this.liveSinceOpen = false;
    this.suggestedMs = 0;
  }

  get isOpen() {
    return Boolean(this.ws) && this.ws.readyState === 1;
  }

  clearTimer(name) {
    if (this.timers[name]) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
      delete this.timers[name];
    }
  }

  // The server said hello: the backoff starts over.
  confirmed() {
    this.attempt = 0;
    this.liveSinceOpen = true;
  }

  // The server's suggested wait before the next attempt (a RECONNECT frame): a floor for the backoff.
  suggestDelay(ms) {
    if (typeof ms === 'number' && ms >= 0) this.suggestedMs = Math.min(ms, this.options.reconnectMaxMs);
  }

  connect() {
    this.clearTimer('reconnect');
    if (this.destroyed || this.ws) return;
    let ws;
    try {
      ws = new globalThis.WebSocket(absoluteWsUrl(this.url));
    } catch (err) {
      this.handlers.log('could not open the WebSocket', err);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    if (this.attempt > 0) this.handlers.onStatus('reconnecting');
    ws.onopen = () => { this.lastMessageAt = Date.now(); };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.lastMessageAt = Date.now();
      this.handlers.onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.onClosed(event.code, event.reason);
    };
    ws.onerror = () => {};
    this.startHeartbeat();
  }

  drop(code) {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try { ws.close(code || 1000); } catch (err) { /* already closing */ }
    this.onClosed(1006, 'dropped by the client');
  }

  onClosed(code, reason) {
    const wasLive = this.liveSinceOpen;
    this.ws = null;
    this.liveSinceOpen = false;
    this.clearTimer('heartbeat');
    this.handlers.onClosed();
    if (this.destroyed) return;
    if (wasLive && RECHECK_CLOSE_CODES.includes(code)) {
      this.handlers.log('access to be checked again', code, reason || '');
      this.handlers.onStatus('reconnecting');
      this.connect();
      return;
    }
    if (Object.prototype.hasOwnProperty.call(FATAL_CLOSE_CODES, code)) {
      this.handlers.onStatus('offline');
      this.handlers.onProblem(FATAL_CLOSE_CODES[code]);
      return;
    }
    if (code === 1009) this.handlers.onProblem('A message was too large for the server.');
    if (code === CLOSE_RECONNECT) this.handlers.log('the server asked to reconnect', this.suggestedMs, 'ms');
    else this.handlers.log('connection closed', code, reason || '');
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.clearTimer('reconnect');
    this.attempt += 1;
    const backoff = Math.min(this.options.reconnectMaxMs, this.options.reconnectBaseMs * Math.pow(2, this.attempt - 1));
    const base = Math.max(backoff, this.suggestedMs);
    this.suggestedMs = 0;
    // Between half and all of the base, at random: clients sent away together come back apart.
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    const offline = this.attempt > this.options.offlineAfterAttempts ||
      (globalThis.navigator && globalThis.navigator.onLine === false);
    const seconds = Math.max(1, Math.round(delay / 1000));
    this.handlers.onStatus(offline ? 'offline' : 'reconnecting',
      `${offline ? 'Offline' : 'Reconnecting'} · retry in ${seconds}s`);
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.destroyed) return;
    if (this.ws) this.drop(1000);
    this.clearTimer('reconnect');
    this.handlers.onStatus('connecting');
    this.connect();
  }

  startHeartbeat() {
    this.clearTimer('heartbeat');
    const every = this.options.heartbeatMs;
    if (!every) return;
    this.timers.heartbeat = setInterval(() => {
      if (!this.isOpen) return;
      const quiet = Date.now() - this.lastMessageAt;
      if (quiet > every * 3) this.drop(4000);
      else if (quiet > every) this.send({ type: 'PING' });
    }, every);
  }

  send(message) {
    if (!this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch (err) {
      this.handlers.log('send failed', err);
      return false;
    }
  }

  destroy() {
    this.destroyed = true;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      try { ws.close(1000); } catch (err) { /* ignore */ }
    }
    Object.keys(this.timers).forEach((name) => this.clearTimer(name));
  }
}
