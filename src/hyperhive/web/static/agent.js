// hyperhive agent page: live tail over SSE, prompt, state badge, login, spend and budget.
// Plain ES modules, no build step. Everything from the agent goes in via textContent.
import { $, age, liveFeed, post, refresher, setServerNow } from "./common.js";
import * as log from "./agent-log.js";
import * as login from "./agent-login.js";
import * as spend from "./agent-spend.js";
import * as waits from "./agent-waits.js";

const badge = $("badge"), cancelBtn = $("cancel"), promptBox = $("prompt");
let lastId = 0;
let status = { state: "offline", since: Date.now() / 1000, reason: null, needs_login: false };

// ---------- status badge ----------
function tick() {
  const state = status.state || "offline";
  badge.className = `badge ${state}`;
  badge.dataset.state = state;
  // "offline (login)", "backoff (upstream)": the reason's first word; all of it on hover.
  const why = status.reason ? ` (${String(status.reason).split(":")[0]})` : "";
  badge.textContent = `${state}${why} ${age(status.since, true)}`;
  badge.title = status.reason ? `reason: ${status.reason}` : "";
}
let stateSince = -Infinity; // when the state shown began, as the harness said
function applyStatus(s) {
  setServerNow(s.now);
  const next = { ...status, ...s };
  if (typeof s.since === "number" && s.since < stateSince) {
    // A status fetched before a state event but answered after it must not undo it
    // (a login's refresh racing the turn it starts): keep the newer state.
    Object.assign(next, { state: status.state, since: status.since, reason: status.reason });
  } else if (typeof s.since === "number") {
    stateSince = s.since;
  }
  status = next;
  cancelBtn.hidden = status.state !== "thinking";
  const meta = [];
  if (status.model) meta.push(`model ${status.model}`);
  if (status.queued) meta.push(`${status.queued} queued`);
  if (status.session_id) meta.push(`session ${String(status.session_id).slice(0, 8)}`);
  $("meta").textContent = meta.join(" · ");
  $("login").hidden = !status.needs_login;
  tick();
}
const refreshStatus = refresher("api/status", applyStatus);

// ---------- live tail ----------
function onEvent(ev) {
  if (ev.id <= lastId) return; // a resume never repeats, but be sure
  lastId = ev.id;
  log.append(log.renderEvent(ev), true);
  if (ev.kind === "tool_approval") waits.noteTool(ev.data || {});
  if (ev.kind === "state") applyStatus({ state: ev.data.state, since: ev.data.since, reason: ev.data.reason });
}

// ---------- prompt and cancel ----------
async function sendPrompt() {
  const text = promptBox.value;
  if (!text.trim()) return;
  const answer = await post("api/prompt", { text });
  if (answer.ok) promptBox.value = "";
  const label = text.startsWith("/") ? text.trim().split("\n")[0] : "prompt";
  log.local(`» ${label} → ${answer.ok ? "ok" : "failed"}${answer.message ? ": " + answer.message : ""}`, answer.ok);
  log.jumpDown();
}
$("prompt-form").addEventListener("submit", (e) => { e.preventDefault(); sendPrompt(); });
promptBox.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendPrompt(); }
});
cancelBtn.addEventListener("click", async () => {
  const answer = await post("api/cancel");
  log.local(`» cancel → ${answer.message || (answer.ok ? "ok" : "failed")}`, answer.ok);
});

log.start();
waits.start();
login.start(refreshStatus);
spend.start();
setInterval(tick, 1000);
tick();
liveFeed({ onMessage: onEvent, on: { status: applyStatus } });
