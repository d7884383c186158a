// The WebSocket side: /ws/inventory with the token as ?access_token= (a browser cannot set
// headers on a WebSocket). On a close it reconnects with backoff and resumes after the last
// offset it saw (?after=), so events missed meanwhile are replayed rather than lost; replays it
// has already seen are dropped by their offset. The first "subscribed" message names the offset
// the subscription starts after, so a page that saw no event yet resumes from there too.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const POLICY_VIOLATION = 1008; // the server refused the credentials
const GONE = 4410; // missed more events than the server replays: start afresh from snapshots

export function backoffMs(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * base / 2); // jitter: many pages must not come back in step
}

export class LiveFeed {
  /**
   * @param {() => string|null} token the current bearer token
   * @param {{onEvent, onAlert, onStatus, onSubscribed, expired, onRefused}} handlers
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.lastOffset = null; // highest offset seen; null before the first subscription
    this.resuming = false; // whether the socket being opened asked to resume (?after=)
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.handlers.onStatus("offline", "offline");
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ access_token: this.token() || "" });
    this.resuming = this.lastOffset !== null;
    if (this.resuming) params.set("after", String(this.lastOffset));
    return `${scheme}://${location.host}/ws/inventory?${params}`;
  }

  connect() {
    if (this.stopped) return;
    this.handlers.onStatus("connecting", this.attempt ? `reconnecting (try ${this.attempt + 1})` : "connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // not ours to show
    }
    if (message.type === "subscribed") {
      this.attempt = 0;
      if (this.lastOffset === null && typeof message.after === "number") this.lastOffset = message.after;
      this.handlers.onStatus("live", "live");
      this.handlers.onSubscribed(this.resuming);
      return;
    }
    if (message.type === "LowStock") {
      this.handlers.onAlert(message);
      return;
    }
    if (typeof message.offset === "number") {
      if (this.lastOffset !== null && message.offset <= this.lastOffset) return; // seen already
      this.lastOffset = message.offset;
    }
    this.handlers.onEvent(message);
  }

  closed(socket, event) {
    if (socket !== this.socket || this.stopped) return;
    this.socket = null;
    // A refused handshake reaches a browser as a bare 1006, so an expired token is told by its
    // own expiry; any other refusal shows at the next REST call (401), which signs out.
    if (event.code === POLICY_VIOLATION || this.handlers.expired()) {
      this.stop();
      this.handlers.onRefused();
      return;
    }
    if (event.code === GONE) this.lastOffset = null; // resubscribe afresh; snapshots are re-read
    const delay = backoffMs(this.attempt);
    this.attempt += 1;
    this.handlers.onStatus("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
