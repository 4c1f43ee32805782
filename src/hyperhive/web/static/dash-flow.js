// hyperhive dashboard: the message flow (messages and core events in time order, filtered
// by agent, history loaded on demand) and the operator's send box under it.
import { $, act, clock, el, refresher, short } from "./common.js";
import { KIND } from "./dash-approvals.js";
import { feedEpoch } from "./dash-live.js";
import { answerText } from "./dash-questions.js";

const MAX_FLOW = 2000, FLOW_HISTORY = 200, BOTTOM_SLACK = 24;
const flow = $("flow-log"), seen = new Set();
let names = [];

const filterPath = () => `api/messages?limit=${FLOW_HISTORY}` + ($("filter").value ? `&agent=${encodeURIComponent($("filter").value)}` : "");
export const refresh = refresher(filterPath, (list) => list.forEach(addMessage));
export function onEvent(ev) {
  if (ev.type === "message") addMessage(ev.message);
  else addEvent(ev);
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

const atBottom = () => flow.scrollHeight - flow.scrollTop - flow.clientHeight < BOTTOM_SLACK;
function place(key, ts, agents, cls, parts) {
  if (seen.has(key)) return;
  seen.add(key);
  const row = el("div", "fl " + cls);
  row.dataset.ts = ts;
  row.dataset.key = key;
  row.dataset.agents = " " + agents.join(" ") + " ";
  row.append(el("span", "ts", clock(ts)), ...parts);
  const filter = $("filter").value;
  row.hidden = Boolean(filter) && !row.dataset.agents.includes(` ${filter} `);
  const stick = atBottom();
  // Rows are ordered by time; almost all arrive last, so walk back from the end.
  let after = flow.lastElementChild;
  while (after && Number(after.dataset.ts) > ts) after = after.previousElementSibling;
  flow.insertBefore(row, after ? after.nextSibling : flow.firstChild);
  while (flow.childElementCount > MAX_FLOW) {
    seen.delete(flow.firstElementChild.dataset.key);
    flow.firstElementChild.remove();
  }
  if (stick) flow.scrollTop = flow.scrollHeight;
}

function addMessage(m) {
  const route = [el("span", "from", m.from), el("span", "arrow", " → "), el("span", "to", m.to), el("span", "mid", ` #${m.id}`)];
  if (m.kind === "event") {
    place(`m${m.id}`, m.created_at, [m.from, m.to], "k-event", [...route, el("div", "body", eventText(m))]);
  } else {
    // Long bodies come as previews (truncated, size); the whole one is `hive message <id>`.
    const text = m.truncated ? `${m.body}… (${m.size} bytes)` : m.body;
    place(`m${m.id}`, m.created_at, [m.from, m.to], "k-message", [...route, el("div", "body", text)]);
  }
}

// A core event in an inbox, said the way the operator would say it.
function eventText(m) {
  const p = m.payload || {};
  const why = p.decision_reason || p.error || p.detail;
  switch (m.body) {
    case "approval_decided":
      return `⚑ approval_decided #${p.id} ${KIND[p.kind] || p.kind} ${p.agent} → ${p.state}${why ? `: ${short(why)}` : ""}`;
    case "operator_answered":
      return `⚑ operator_answered #${p.question_id} “${short(p.question || "", 80)}” → ${short(answerText(p.answer))}`;
    case "agent_state":
      return `⚑ agent_state ${p.agent} ${p.state}${why ? `: ${short(why)}` : ""}`;
    case "dead_letter":
      return `⚑ dead_letter #${p.message_id} ${p.from} → ${p.to} after ${p.attempts} tries: ${short(p.reason || "")}`;
    default:
      return `⚑ ${m.body} ${m.payload ? short(JSON.stringify(m.payload), 200) : ""}`;
  }
}

// A bus event: the agents it concerns (for the filter) and its line.
function describe(ev) {
  const a = ev.approval, q = ev.question;
  switch (ev.type) {
    case "agent_state": return [[ev.agent], `⚙ ${ev.agent} → ${ev.state}${ev.last_error ? ` (${ev.last_error})` : ""}`];
    case "agent_added": return [[ev.agent.name], `+ ${ev.agent.name} joined the hive`];
    case "agent_removed": return [[ev.agent], `− ${ev.agent} left the hive`];
    case "approval_requested": return [[a.agent, a.requester], `◆ #${a.id} ${KIND[a.kind]} ${a.agent} requested by ${a.requester}: ${short(a.reason)}`];
    case "approval_decided": return [[a.agent, a.requester], `◆ #${a.id} ${KIND[a.kind]} ${a.agent} → ${a.state}${a.decision_reason ? `: ${short(a.decision_reason)}` : ""}`];
    case "rule_added": return [[ev.rule.agent], `◆ rule #${ev.rule.id}: ${ev.rule.agent} may always run ${ev.rule.tool} ${short(ev.rule.input_json, 120)}`];
    case "rule_revoked": return [[ev.rule.agent], `◆ rule #${ev.rule.id} revoked: ${ev.rule.agent} ${ev.rule.tool} asks again`];
    case "question_asked": return [[q.asker], `? #${q.id} ${q.asker} asks: ${short(q.question)}`];
    case "question_answered": return [[q.asker], `? #${q.id} answered: ${short(answerText(q.answer))}`];
    case "dead_letter": return [[ev.message.to, ev.message.from], `✝ #${ev.message.id} to ${ev.message.to} is a dead letter after ${ev.attempts} tries: ${short(ev.reason)}`];
    case "dead_letter_retried": return [[ev.to], `↻ dead letter #${ev.id} back in ${ev.to}'s queue`];
    case "dead_letter_dropped": return [[ev.to], `✖ dead letter #${ev.id} to ${ev.to} dropped by ${ev.by}`];
    default: return [[], `· ${ev.type}`];
  }
}

function addEvent(ev) {
  const [agents, text] = describe(ev);
  // Bus sequence numbers start over with each feed (epoch): key by both.
  place(`b${feedEpoch()}:${ev.seq}`, ev.ts, agents, `k-core t-${ev.type}`, [el("span", "core", "c0re "), el("span", "body", text)]);
}

// The filter and the send box: Enter sends, Shift+Enter is a newline.
export function start() {
  $("filter").addEventListener("change", () => {
    const f = $("filter").value;
    for (const row of flow.children) row.hidden = Boolean(f) && !row.dataset.agents.includes(` ${f} `);
    flow.scrollTop = flow.scrollHeight;
    refresh(); // older messages of that agent may not be loaded yet
  });
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
