// hyperhive dashboard: one agent's row. One line (name linked to its page, role, state and
// age, paused by its budget, waiting for you, a brief of model, cost and inbox, the direct port link, start / stop /
// restart / destroy); the details (facts, tool policy, workspace, last error) unfold under it.
// A destroy is behind a typed confirmation. A row's DOM is only touched when its data changed.
import { $, act, age, button, el, num, setOff, status } from "./common.js";
import { groupOf } from "./dash-groups.js";
import { updateWork, workBox } from "./dash-work.js";

const VERBS = { start: ["▶", "start"], stop: ["■", "stop"], restart: ["↻", "restart"] };
const TOOL_LISTS = { allow: "free", ask: "ask", deny: "deny" };

// `refresh` re-fetches the agents after an action.
export function agentRow(a, refresh) {
  const root = el("article", "agent");
  root.dataset.agent = a.name;
  root.id = `agent-row-${a.name}`;  // where a notification's link lands
  const top = el("div", "top");
  const fold = el("button", "fold");
  fold.type = "button";
  fold.setAttribute("aria-label", `details of ${a.name}`);
  const link = el("a", "name", a.name), direct = el("a", "direct");
  for (const l of [link, direct]) { l.target = "_blank"; l.rel = "noopener noreferrer"; }
  const badge = el("span", "badge"), brief = el("span", "brief"), host = el("span", "host");
  const paused = el("a", "paused", "paused: budget");
  paused.href = "#spend";
  const stalled = el("span", "stalled", "stalled");
  stalled.hidden = true;
  const waiting = el("a", "waiting", "◆ waiting for you");
  waiting.href = "#approvals";
  const actions = el("span", "actions"), msg = status(), btns = {};
  for (const [verb, [glyph, word]] of Object.entries(VERBS)) {
    // Glyphs keep the line short; the name and the tooltip say the word.
    const b = btns[verb] = button(verb === "stop" ? "alt" : "", glyph);
    b.dataset.action = verb;
    b.setAttribute("aria-label", `${glyph} ${word}`);
    b.title = `${word} ${a.name}`;
    b.addEventListener("click", async () => {
      await act(b, msg, `api/agents/${a.name}/${verb}`, {});
      refresh();
    });
  }
  const destroy = button("danger", "✖");
  destroy.dataset.action = "destroy";
  destroy.setAttribute("aria-label", "✖ destroy");
  destroy.title = `destroy ${a.name}`;
  actions.append(btns.start, btns.stop, btns.restart, destroy);
  top.append(fold, link, a.role === "manager" ? el("span", "role", "manager") : "", host, badge,
    paused, stalled, waiting, brief, direct, actions);

  const more = el("div", "more"), facts = el("div", "facts"), error = el("div", "err");
  more.id = `more-${a.name}`;
  fold.setAttribute("aria-controls", more.id);
  // The tool policy its container runs with: one line, the rules on demand.
  const tools = el("details", "tools"), toolsSum = el("summary"), toolsBody = el("div", "rules-of");
  tools.append(toolsSum, toolsBody);
  const work = workBox(a.name);
  more.append(facts, tools, work.root, error);
  const confirm = destroyConfirm(a.name, destroy, msg, refresh);
  root.append(top, more, confirm, msg);
  const row = { root, fold, link, direct, host, badge, paused, stalled, waiting, brief, more, facts, tools, toolsSum,
    toolsBody, work, error, actions, btns, open: false, chosen: null, sig: "" };
  fold.addEventListener("click", () => { row.chosen = !row.open; unfold(row, row.chosen); });
  return row;
}

// Unfolded by the operator's choice, or else by the size of the hive: a small hive shows its
// rows whole, a big one one line each.
export function unfold(row, open) {
  const was = row.open;
  row.open = row.chosen ?? open;
  if (row.open === was && row.fold.textContent) return;
  row.more.hidden = !row.open;
  row.fold.textContent = row.open ? "▾" : "▸";
  row.fold.setAttribute("aria-expanded", String(row.open));
  if (row.open && !was && row.data) updateWork(row.work, row.data.workspace, true);
}

// Destroy is behind a typed confirmation: the name, as GitHub does for repositories.
function destroyConfirm(name, destroy, msg, refresh) {
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

// The row from its data; its state, group and filter text are kept on it for the groups.
// `hosts`: how many hosts the hive spans; with more than one each row names its own.
export function updateAgent(row, a, containers, hosts = 1) {
  const c = a.container || { state: containers ? "missing" : "external", backend: "—" };
  row.state = c.state;
  row.group = groupOf(a, c.state);
  row.hay = [a.name, a.role, a.model || "default", c.state, row.group, row.group === "waiting" ? "waiting for you" : "",
    a.paused ? `paused: ${a.paused}` : "", a.stalled && a.stalled.length ? "stalled" : ""].join(" ").toLowerCase();
  row.data = a;
  // The workspace view follows its branch on every refresh, whether the row changed or not.
  if (row.open) updateWork(row.work, a.workspace, true);
  const sig = JSON.stringify([a, containers, hosts]);
  if (sig === row.sig) return;
  row.sig = sig;
  row.root.dataset.state = c.state;
  row.root.dataset.group = row.group;
  links(row, a);
  showHost(row, a, hosts);
  showState(row, c);
  const s = a.stats;
  row.brief.textContent = [a.model || "default", s ? `$${s.cost_usd.toFixed(2)}` : "", `inbox ${a.pending}`].filter(Boolean).join(" · ");
  row.facts.replaceChildren(...[
    ["backend", c.backend],
    ["model", a.model || "default"],
    ["cost", s ? `$${s.cost_usd.toFixed(4)}` : "—"],
    ["tokens", s ? `${num(s.input_tokens)} in / ${num(s.output_tokens)} out` : "—"],
    ["turns", s ? s.turns : "—"],
    ["inbox", a.pending],
  ].map(([k, v]) => {
    const f = el("span", "fact");
    f.append(el("i", null, k), " ", el("b", null, v));
    return f;
  }));
  updateTools(row, a.tools);
  if (!row.open) updateWork(row.work, a.workspace, false);
  // Another host's core runs it: starting and stopping it is that host's to do.
  row.actions.hidden = !containers || Boolean(a.elsewhere);
  setOff(row.btns.start, c.state === "running");
  setOff(row.btns.stop, c.state === "stopped" || c.state === "missing");
  row.paused.hidden = !a.paused;
  row.paused.textContent = a.paused ? `paused: ${a.paused}` : "";
  row.paused.title = a.paused ? `${a.name} gets no new turns: raise its budget or resume it under spend` : "";
  showStalled(row, a.stalled || []);
  row.waiting.hidden = !a.waiting;
  row.waiting.title = a.waiting ? `${a.waiting} approval(s) from ${a.name} wait for your decision` : "";
}

// A turn with no engine event, or a message leased unacked, past its threshold (the core's
// stall detection): the badge names what, its tooltip says it in words.
function showStalled(row, stalls) {
  row.stalled.hidden = !stalls.length;
  row.stalled.textContent = stalls.length ? `stalled: ${stalls.map((s) => s.what).join(", ")}` : "";
  row.stalled.title = stalls.map((s) => s.text).join("\n");
}

function showHost(row, a, hosts) {
  const down = Boolean(a.host_state) && a.host_state !== "up";
  row.host.hidden = hosts < 2 && !down;
  row.host.textContent = down ? `@${a.host} (host ${a.host_state})` : `@${a.host}`;
  row.host.className = down ? "host down" : "host";
  row.host.title = a.elsewhere ? `runs on host ${a.host}, behind its front door` : `runs on this host, ${a.host}`;
}

// The main link goes through the dashboard's front door (`page`, relative to it); the
// agent's own port (`url`), where there is one, is a small link beside it.
function links(row, a) {
  const main = a.page || a.url;
  if (main) row.link.href = main; else row.link.removeAttribute("href");
  const direct = a.page && a.url;
  row.direct.hidden = !direct;
  if (direct) {
    row.direct.href = a.url;
    const port = new URL(a.url, location.href).port;
    row.direct.textContent = port ? `direct :${port}` : "direct";
    row.direct.title = `${a.name}'s page on its own port`;
  }
}

function showState(row, c) {
  row.badge.className = `badge st-${c.state}`;
  row.badge.dataset.label = c.state;
  if (c.since) row.badge.dataset.since = c.since;
  else delete row.badge.dataset.since;
  row.badge.textContent = c.since ? `${c.state} ${age(c.since)}` : c.state;
  row.badge.title = c.last_error ? `! ${c.last_error}` : "";
  row.error.textContent = c.last_error ? `! ${c.last_error}` : "";
  row.error.hidden = !c.last_error;
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
