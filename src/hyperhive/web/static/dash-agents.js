// hyperhive dashboard: the agents section. One row per agent (its container's state and
// age, model, cost, tokens, inbox, tool policy, workspace), with start / stop / restart
// and a destroy behind a typed confirmation. Rows are kept and updated in place.
import { $, act, age, button, el, num, refresher, setCount, setServerNow, status } from "./common.js";
import { setNames } from "./dash-flow.js";
import { updateWork, workBox } from "./dash-work.js";

const rows = new Map();
const VERBS = { start: "▶ start", stop: "■ stop", restart: "↻ restart" };
const TOOL_LISTS = { allow: "free", ask: "ask", deny: "deny" };

export const refresh = refresher("api/agents", render);
let soon = null;
// Messages move inbox counts and stats; one refresh a second is plenty for those.
const refreshSoon = () => { clearTimeout(soon); soon = setTimeout(refresh, 1000); };

export function onEvent(ev) {
  if (ev.type === "message") refreshSoon();
  // approval_*: a row's "waiting for you" comes and goes with the approvals.
  else if (ev.type.startsWith("agent_") || ev.type.startsWith("approval_")) refresh();
}

function agentRow(a) {
  const root = el("article", "agent");
  root.dataset.agent = a.name;
  const top = el("div", "top");
  const link = el("a", "name", a.name);
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  const badge = el("span", "badge");
  top.append(link, a.role === "manager" ? el("span", "role", "manager") : "", badge);
  const facts = el("div", "facts"), error = el("div", "err");
  // The tool policy its container runs with: one line, the rules on demand.
  const tools = el("details", "tools"), toolsSum = el("summary"), toolsBody = el("div", "rules-of");
  tools.append(toolsSum, toolsBody);
  const actions = el("div", "actions"), msg = status();
  const btns = {};
  for (const [verb, label] of Object.entries(VERBS)) {
    btns[verb] = button(verb === "stop" ? "alt" : "", label);
    btns[verb].dataset.action = verb;
    btns[verb].addEventListener("click", async () => {
      await act(btns[verb], msg, `api/agents/${a.name}/${verb}`, {});
      refresh();
    });
    actions.append(btns[verb]);
  }
  const destroy = button("danger", "✖ destroy");
  destroy.dataset.action = "destroy";
  actions.append(destroy);
  const confirm = destroyConfirm(a.name, destroy, msg);
  const work = workBox(a.name);
  root.append(top, facts, tools, work.root, error, actions, confirm, msg);
  return { root, top, link, badge, facts, tools, toolsSum, toolsBody, work, error, actions, btns };
}

// Destroy is behind a typed confirmation: the name, as GitHub does for repositories.
function destroyConfirm(name, destroy, msg) {
  const confirm = el("form", "confirm");
  confirm.hidden = true;
  const typed = el("input");
  typed.placeholder = name;
  typed.setAttribute("aria-label", `type ${name} to confirm`);
  typed.autocomplete = "off";
  const purgeBox = el("input");
  purgeBox.type = "checkbox";
  const purge = el("label", "purge");
  purge.append(purgeBox, " purge its state");
  const go = button("danger", "destroy for good", "submit"), cancel = button("alt", "cancel");
  confirm.append(el("span", "warn", `type ${name} to destroy it:`), typed, purge, go, cancel);
  destroy.addEventListener("click", () => { confirm.hidden = false; typed.focus(); });
  cancel.addEventListener("click", () => { confirm.hidden = true; typed.value = ""; });
  confirm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { confirm: typed.value, purge: purgeBox.checked };
    const res = await act(go, msg, `api/agents/${name}/destroy`, fields, $("agents-msg"));
    if (res.ok) confirm.hidden = true;
    refresh();
  });
  return confirm;
}

function updateAgent(row, a, containers) {
  const c = a.container || { state: containers ? "missing" : "external", backend: "—" };
  row.link.href = a.url;
  row.badge.className = `badge st-${c.state}`;
  row.badge.dataset.label = c.state;
  if (c.since) row.badge.dataset.since = c.since;
  else delete row.badge.dataset.since;
  row.badge.textContent = c.since ? `${c.state} ${age(c.since)}` : c.state;
  const s = a.stats;
  const facts = [
    ["backend", c.backend],
    ["model", a.model || "default"],
    ["cost", s ? `$${s.cost_usd.toFixed(4)}` : "—"],
    ["tokens", s ? `${num(s.input_tokens)} in / ${num(s.output_tokens)} out` : "—"],
    ["turns", s ? s.turns : "—"],
    ["inbox", a.pending],
  ];
  row.facts.replaceChildren(...facts.map(([k, v]) => {
    const f = el("span", "fact");
    f.append(el("i", null, k), " ", el("b", null, v));
    return f;
  }));
  updateTools(row, a.tools);
  updateWork(row.work, a.workspace);
  row.error.textContent = c.last_error ? `! ${c.last_error}` : "";
  row.error.hidden = !c.last_error;
  row.actions.hidden = !containers;
  row.btns.start.disabled = c.state === "running";
  row.btns.stop.disabled = c.state === "stopped" || c.state === "missing";
  markWaiting(row, a);
}

function updateTools(row, t) {
  row.tools.hidden = !t;
  if (!t) return;
  const counts = Object.entries(TOOL_LISTS).map(([k, label]) => `${t[k].length} ${label}`);
  const custom = Object.keys(TOOL_LISTS).filter((k) => !t.default[k]);
  row.toolsSum.textContent = `tools: ${counts.join(" · ")}${custom.length ? ` (custom ${custom.join(", ")})` : " (default)"}`;
  row.toolsBody.replaceChildren(...Object.entries(TOOL_LISTS).map(([k, label]) => {
    const line = el("div", `tl-${k}`);
    line.append(el("i", null, `${label}${t.default[k] ? "" : " *"}: `), t[k].length ? t[k].join(", ") : "—");
    return line;
  }));
}

// Approvals of this agent's waiting for the operator: a link up to the approvals section.
function markWaiting(row, a) {
  if (!row.waiting) {
    row.waiting = el("a", "waiting", "◆ waiting for you");
    row.waiting.href = "#approvals";
    row.top.append(row.waiting);
  }
  row.waiting.hidden = !a.waiting;
  row.waiting.title = a.waiting ? `${a.waiting} approval(s) from ${a.name} wait for your decision` : "";
}

function render(data) {
  setServerNow(data.now);
  const list = $("agent-list");
  const current = new Set(data.agents.map((a) => a.name));
  for (const [name, row] of rows) {
    if (!current.has(name)) { row.root.remove(); rows.delete(name); }
  }
  data.agents.forEach((a, i) => {
    let row = rows.get(a.name);
    if (!row) { row = agentRow(a); rows.set(a.name, row); }
    // Only move a row that is out of place: moving would drop focus from its inputs.
    if (list.children[i] !== row.root) list.insertBefore(row.root, list.children[i] || null);
    updateAgent(row, a, data.containers);
  });
  $("agents-empty").hidden = data.agents.length > 0;
  setCount("n-agents", data.agents.length);
  setNames(data.agents.map((a) => a.name));
}
