// hyperhive dashboard: the message flow (messages and core events in time order, filtered
// by agent) and the operator's send box under it. What has come is remembered as data (a
// few thousand lines); the DOM holds at most MAX_ROWS of them, so thousands of messages
// never make the page slow. Older lines page in with the messages API's `before`; reading
// them (or reading up a full log) holds the live lines back until "back to the latest".
import { $, act, clock, el, refresher } from "./common.js";
import { busLine, messageLine } from "./dash-flow-text.js";
import { feedEpoch } from "./dash-live.js";

const MAX_ROWS = 300, MAX_KEPT = 2000, FLOW_HISTORY = 200, OLDER_PAGE = 100, BOTTOM_SLACK = 24;
const flow = $("flow-log"), entries = [], keys = new Set();
let names = [], detached = false, missed = 0;

const agentArg = () => ($("filter").value ? `&agent=${encodeURIComponent($("filter").value)}` : "");
export const refresh = refresher(() => `api/messages?limit=${FLOW_HISTORY}${agentArg()}`, (list) => add(list.map(fromMessage)));
// A `usage` event comes with every response an agent gets: the spend view shows those.
export function onEvents(batch) {
  const told = batch.filter((ev) => ev.type !== "usage");
  add(told.map((ev) => (ev.type === "message" ? fromMessage(ev.message) : fromBus(ev))));
}

// The agents to filter by and to send to, kept in step with the agents section.
export function setNames(next) {
  if (next.join() === names.join()) return;
  names = next;
  for (const [id, first] of [["filter", "all agents"], ["send-to", null]]) {
    const select = $(id), keep = select.value;
    const opts = first === null ? [] : [new Option(first, "")];
    for (const n of names) opts.push(new Option(n, n));
    select.replaceChildren(...opts);
    if (keep && names.includes(keep)) select.value = keep;
  }
}

const fromMessage = (m) => ({ key: `m${m.id}`, ts: m.created_at, mid: m.id, ...messageLine(m) });
// Bus sequence numbers start over with each feed (epoch): key by both.
const fromBus = (ev) => ({ key: `b${feedEpoch()}:${ev.seq}`, ts: ev.ts, mid: null, ...busLine(ev) });
const shown = (e) => !$("filter").value || e.agents.includes($("filter").value);
const atBottom = () => flow.scrollHeight - flow.scrollTop - flow.clientHeight < BOTTOM_SLACK;

function rowOf(e) {
  const row = el("div", "fl " + e.cls);
  row.dataset.ts = e.ts;
  row.dataset.key = e.key;
  row.append(el("span", "ts", clock(e.ts)), ...e.parts);
  row.entry = e;
  e.node = row;
  return row;
}

// Remembered in time order; almost every line comes last, so look from the end.
function remember(e) {
  let i = entries.length;
  while (i > 0 && entries[i - 1].ts > e.ts) i--;
  entries.splice(i, 0, e);
  keys.add(e.key);
}

function add(list) {
  const fresh = [];
  for (const e of list) if (!keys.has(e.key)) { remember(e); fresh.push(e); }
  if (!fresh.length) return;
  const stick = atBottom();
  // Reading up a full log: new lines would push out what is being read, so they wait.
  if (!detached && !stick && flow.childElementCount >= MAX_ROWS) detached = true;
  const visible = fresh.filter(shown);
  if (detached) missed += visible.length;
  else show(visible);
  forget();
  if (stick && !detached) flow.scrollTop = flow.scrollHeight;
  showLatest();
}

// Into the DOM at their places in time, then the oldest out beyond the bound.
function show(list) {
  const tail = document.createDocumentFragment();
  for (const e of list) {
    const last = tail.lastChild || flow.lastElementChild;
    if (!last || last.entry.ts <= e.ts) { tail.append(rowOf(e)); continue; }
    flow.append(tail);
    let after = flow.lastElementChild;
    while (after && after.entry.ts > e.ts) after = after.previousElementSibling;
    flow.insertBefore(rowOf(e), after ? after.nextSibling : flow.firstChild);
  }
  flow.append(tail);
  while (flow.childElementCount > MAX_ROWS) drop(flow.firstElementChild);
}

function drop(row) {
  row.entry.node = null;
  row.remove();
}

// Beyond MAX_KEPT the oldest lines are forgotten, unless they are on screen (paged in).
function forget() {
  while (entries.length > MAX_KEPT && !entries[0].node) keys.delete(entries.shift().key);
}

// The last MAX_ROWS lines the filter lets through, live again.
function showLatest(redraw = false) {
  if (redraw) {
    for (const row of [...flow.children]) drop(row);
    detached = false;
    missed = 0;
    flow.append(...entries.filter(shown).slice(-MAX_ROWS).map(rowOf));
    flow.scrollTop = flow.scrollHeight;
  }
  $("flow-latest").hidden = !detached;
  $("flow-latest").textContent = missed ? `⇣ ${missed} newer · back to the latest` : "⇣ back to the latest";
}

// One page older than the first line shown: from memory, else from the messages API.
let paging = false;
async function older() {
  if (paging) return;
  paging = true;
  try { await pageOlder(); } finally { paging = false; }
}
async function pageOlder() {
  const first = flow.firstElementChild;
  const upTo = first ? entries.indexOf(first.entry) : entries.length;
  let page = entries.slice(0, upTo).filter(shown).slice(-OLDER_PAGE);
  if (page.length < OLDER_PAGE) {
    const ids = entries.filter((e) => e.mid !== null && shown(e)).map((e) => e.mid);
    const before = ids.length ? `&before=${Math.min(...ids)}` : "";
    try {
      const r = await fetch(`api/messages?limit=${OLDER_PAGE}${before}${agentArg()}`, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      for (const e of (await r.json()).map(fromMessage)) if (!keys.has(e.key)) remember(e);
    } catch (err) { console.warn("older messages:", err.message); }
    const head = flow.firstElementChild;
    page = entries.slice(0, head ? entries.indexOf(head.entry) : entries.length).filter(shown).slice(-OLDER_PAGE);
  }
  const height = flow.scrollHeight;
  flow.prepend(...page.map(rowOf));
  flow.scrollTop += flow.scrollHeight - height; // the line read stays where it was
  while (flow.childElementCount > MAX_ROWS) { drop(flow.lastElementChild); detached = true; }
  showLatest();
}

// The filter, the paging buttons and the send box: Enter sends, Shift+Enter is a newline.
export function start() {
  $("filter").addEventListener("change", () => {
    showLatest(true);
    refresh(); // older messages of that agent may not be loaded yet
  });
  $("flow-latest").addEventListener("click", () => showLatest(true));
  $("flow-older").addEventListener("click", older);
  const sendForm = $("send-form"), body = $("send-body");
  sendForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { to: $("send-to").value, body: body.value };
    const res = await act(sendForm.querySelector("button"), $("send-msg"), "api/send", fields);
    if (res.ok) body.value = "";
  });
  body.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendForm.requestSubmit(); }
  });
}
