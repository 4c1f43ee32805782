// hyperhive pages: the helpers the dashboard and the agent page share. Plain ES module,
// no build step. Everything from the hive goes in via textContent, never as HTML.

export const $ = (id) => document.getElementById(id);
const csrf = () => document.querySelector('meta[name="hive-csrf"]').content;

// ---------- building elements ----------
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
export function button(cls, text, type = "button") {
  const b = el("button", cls ? "btn " + cls : "btn", text);
  b.type = type;
  return b;
}
// A message area that screen readers announce when an action answers in it.
export function status(cls = "msg") {
  const msg = el("p", cls);
  msg.setAttribute("role", "status");
  return msg;
}

// ---------- numbers, text and time ----------
export const num = (n) =>
  n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n);
export const short = (text, n = 240) => (text.length > n ? text.slice(0, n) + "…" : text);
export const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });

let skew = 0; // server clock minus ours, in seconds, so ages are right on a skewed phone
export function setServerNow(now) {
  if (typeof now === "number") skew = now - Date.now() / 1000;
}
export const serverNow = () => Date.now() / 1000 + skew;

// How long ago a server timestamp was: "42s", "3m", "2h", "1d"; `fine` adds the next
// unit ("3m05s", "1h02m") for a clock the operator watches tick.
export function age(since, fine = false) {
  const s = Math.max(0, Math.floor(serverNow() - since));
  const two = (n) => String(n).padStart(2, "0");
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (fine ? two(s % 60) + "s" : "");
  if (s < 86400) return Math.floor(s / 3600) + "h" + (fine ? two(Math.floor(s / 60) % 60) + "m" : "");
  return Math.floor(s / 86400) + "d" + (fine ? two(Math.floor(s / 3600) % 24) + "h" : "");
}
// "5m ago", kept current by tickAges.
export function ago(ts) {
  const n = el("span", "ago", age(ts) + " ago");
  n.dataset.since = ts;
  n.dataset.suffix = " ago";
  return n;
}
// Every [data-since] node re-reads its age once a second ("running 5s" → "running 6s").
export function tickAges() {
  setInterval(() => {
    for (const n of document.querySelectorAll("[data-since]")) {
      const label = n.dataset.label ? n.dataset.label + " " : "";
      const text = label + age(Number(n.dataset.since)) + (n.dataset.suffix || "");
      // Most ages move once a minute: with hundreds on the page, touch only those that did.
      if (n.textContent !== text) n.textContent = text;
    }
  }, 1000);
}

// ---------- talking to the server ----------
export async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}
// A POST with the page's CSRF token; always answers {ok, message}, never throws.
export async function post(path, fields) {
  try {
    const r = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Hive-CSRF": csrf() },
      body: JSON.stringify(fields || {}),
      credentials: "same-origin",
    });
    const body = await r.json().catch(() => null);
    if (body && typeof body.message === "string") return { ok: r.ok && body.ok === true, message: body.message };
    return { ok: false, message: `HTTP ${r.status}` };
  } catch (err) {
    return { ok: false, message: `network error: ${err.message}` };
  }
}
// An action's answer, inline where it was asked.
export function say(node, res) {
  node.textContent = res.message;
  node.className = "msg " + (res.ok ? "ok" : "bad");
}
// Whether a button is off by its row's state; an action running on it keeps it busy (off)
// until it ends, and then this is what it returns to.
export function setOff(btn, off) {
  btn.dataset.off = off ? "1" : "";
  if (!btn.dataset.busy) btn.disabled = off;
}

// One action: the button is busy while it runs (no double posts); the answer shows inline,
// and a success is echoed in the section, because the card itself may vanish on refresh.
export async function act(btn, msg, path, fields, sectionMsg) {
  btn.dataset.busy = "1";
  btn.disabled = true;
  msg.textContent = "…";
  msg.className = "msg";
  const res = await post(path, fields);
  delete btn.dataset.busy;
  // A refresh during the post may have switched the button off (a stopped agent's stop).
  btn.disabled = btn.dataset.off === "1";
  say(msg, res);
  if (res.ok && sectionMsg) say(sectionMsg, res);
  return res;
}

// A re-fetch that never runs twice at once, and runs once more if asked while busy.
export function refresher(path, render) {
  let busy = false, again = false;
  const go = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try { render(await getJSON(typeof path === "function" ? path() : path)); }
    catch (err) { console.warn("refresh failed:", err.message); }
    busy = false;
    if (again) { again = false; go(); }
  };
  return go;
}

// ---------- what the page shows ----------
export function setCount(id, n, hot) {
  const c = $(id);
  c.textContent = n;
  c.classList.toggle("hot", Boolean(hot && n > 0));
}
// Pending items never change, only come and go: keep the cards (and what is typed in them).
export function keyed(cards, list, items, build, key = (x) => x.id) {
  const keys = new Set(items.map(key));
  for (const [k, card] of cards) if (!keys.has(k)) { card.remove(); cards.delete(k); }
  for (const item of items) {
    if (!cards.has(key(item))) { const c = build(item); cards.set(key(item), c); list.append(c); }
  }
}

// ---------- the live connection ----------
// The page's SSE feed ("events"), shown in #link. `ready` names the event that means the
// feed is up ("open" or a first event the server sends); `on` maps event names to handlers.
// The browser retries (with Last-Event-ID) by itself unless the answer was not an event
// stream at all; then start over with a new source.
export function liveFeed({ ready = "open", onMessage, on = {} }) {
  const link = $("link");
  const setLink = (up) => {
    link.textContent = up ? "● live" : "○ reconnecting";
    link.className = "link" + (up ? "" : " down");
  };
  const connect = () => {
    const source = new EventSource("events");
    if (ready === "open") source.onopen = () => setLink(true);
    for (const [name, handle] of Object.entries(on)) {
      source.addEventListener(name, (e) => {
        if (name === ready) setLink(true);
        handle(JSON.parse(e.data));
      });
    }
    source.onmessage = (e) => onMessage(JSON.parse(e.data));
    source.onerror = () => {
      setLink(false);
      if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, 3000); }
    };
  };
  connect();
}
