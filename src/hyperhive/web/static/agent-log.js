// hyperhive agent page: the activity log. Each harness event as one row (a one-line head,
// a long body folded), sticky at the bottom unless the reader scrolled up, when a pill
// counts what came in below.
import { $, clock, el, num } from "./common.js";

const TRUNCATE = 600, MAX_LINES = 12, MAX_EVENTS = 3000, BOTTOM_SLACK = 24;
const log = $("log"), pill = $("pill");
let unseen = 0;

// A long body shows its head and a button to toggle the rest, so one tool result
// cannot push the whole conversation off screen.
function head(text) {
  const lines = text.split("\n");
  const short = lines.length > MAX_LINES ? lines.slice(0, MAX_LINES).join("\n") : text;
  return short.length > TRUNCATE ? short.slice(0, TRUNCATE) : short;
}
function body(text, cls) {
  const wrap = el("div");
  const pre = el("pre", cls, text);
  wrap.append(pre);
  const short = head(text);
  if (short.length < text.length) {
    const label = `▸ show all (${text.length} chars)`;
    pre.textContent = short + "…";
    const more = el("button", "more", label);
    more.type = "button";
    let open = false;
    more.addEventListener("click", () => {
      open = !open;
      pre.textContent = open ? text : short + "…";
      more.textContent = open ? "▴ show less" : label;
    });
    wrap.append(more);
  }
  return wrap;
}

function turnEnd(d) {
  const parts = [`└ turn ${d.turn ?? "?"} ${d.ok ? "done" : "failed"}`];
  if (d.cost_usd != null) parts.push(`$${Number(d.cost_usd).toFixed(4)}`);
  if (d.input_tokens != null || d.output_tokens != null)
    parts.push(`${num(d.input_tokens ?? 0)} in / ${num(d.output_tokens ?? 0)} out`);
  if (d.duration_ms != null) parts.push(`${(d.duration_ms / 1000).toFixed(1)}s`);
  if (d.error) parts.push(`error: ${d.error}`);
  return parts.join(" · ");
}

const CHANGES = [["added", "+"], ["modified", "~"], ["removed", "-"]];
function changedSummary(d) {
  const c = d.counts || {};
  const parts = CHANGES.filter(([k]) => c[k]).map(([k, sign]) => `${sign}${c[k]} ${k}`);
  return parts.join(" · ") + (d.complete === false ? " (too many files to look at all)" : "");
}
function changedList(d) {
  const lines = [];
  for (const [k, sign] of CHANGES) {
    for (const p of d[k] || []) lines.push(`${sign} ${p}`);
    const more = ((d.counts || {})[k] || 0) - (d[k] || []).length;
    if (more > 0) lines.push(`${sign} … ${more} more`);
  }
  return lines.join("\n");
}

// Each kind: [css modifier, one-line head, optional long body]
const kinds = {
  state: (d) => ["", `● ${d.state}${d.reason ? ` (${d.reason})` : ""}`],
  turn_start: (d) => [
    "",
    `┌ turn ${d.turn ?? "?"} · ${d.trigger === "operator" ? "operator" : `from ${d.from ?? "?"}`}` +
      (d.message_id != null ? ` · msg #${d.message_id}` : ""),
    d.prompt,
  ],
  turn_end: (d) => [d.ok ? "" : "error", turnEnd(d)],
  operator_prompt: (d) => ["", `operator> ${d.text ?? ""}`],
  command: (d) => [
    d.ok ? "" : "error",
    `/${d.name}${d.arg ? " " + d.arg : ""} → ${d.ok ? "ok" : "failed"}: ${d.message ?? ""}`,
  ],
  notice: (d) => [d.level || "info", `! ${d.text ?? ""}`],
  system: (d) => ["", `system ${d.subtype ?? ""}${d.model ? ` model=${d.model}` : ""}`],
  assistant: (d) => ["", d.text ?? ""],
  tool_use: (d) => ["", `⚙ ${d.name}`, JSON.stringify(d.input ?? {}, null, 1)],
  tool_result: (d) => [d.is_error ? "error" : "", `↳ result${d.is_error ? " (error)" : ""}`,
    typeof d.content === "string" ? d.content : JSON.stringify(d.content)],
  result: (d) => [d.is_error ? "error" : "", `result${d.is_error ? " (error)" : ""}: ${d.text ?? ""}`],
  files_changed: (d) => ["", `✎ /work: ${changedSummary(d)}`, changedList(d)],
  tool_approval: (d) => [/^den/.test(d.decision) ? "error" : "",
    `⚑ ${d.tool} ${d.approval != null ? `#${d.approval} ` : ""}${d.decision}${d.always ? " always" : ""}` +
      (d.message ? `: ${d.message}` : "")],
};

export function renderEvent(ev) {
  const make = kinds[ev.kind];
  const [mod, line, long] = make ? make(ev.data || {}) : ["", ev.kind, JSON.stringify(ev.data)];
  const row = el("div", `ev k-${make ? ev.kind : "other"}${mod ? " " + mod : ""}`);
  row.dataset.id = ev.id;
  row.append(el("span", "ts", clock(ev.ts)), el("span", "tag body", line));
  if (long) row.append(body(String(long)));
  return row;
}

// ---------- sticky-bottom scrolling ----------
const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight <= BOTTOM_SLACK;
const toBottom = () => { log.scrollTop = log.scrollHeight; };
function setUnseen(n) {
  unseen = n;
  pill.textContent = `↓ ${n} new`;
  pill.hidden = n === 0;
}
// A row at the end; `counts` when it is news the reader should be told of.
export function append(row, counts) {
  const stick = atBottom();
  log.append(row);
  while (log.childElementCount > MAX_EVENTS) log.firstElementChild.remove();
  if (stick) toBottom();
  else if (counts) setUnseen(unseen + 1);
}
export function jumpDown() {
  toBottom();
  setUnseen(0);
}
// A line of the page's own (an action's answer), not from the agent.
export function local(text, ok) {
  const row = el("div", `ev k-local${ok ? "" : " error"}`);
  row.append(el("span", "ts", clock(Date.now() / 1000)), el("span", "tag body", text));
  append(row, false);
}

export function start() {
  log.addEventListener("scroll", () => { if (unseen && atBottom()) setUnseen(0); });
  pill.addEventListener("click", jumpDown);
}
