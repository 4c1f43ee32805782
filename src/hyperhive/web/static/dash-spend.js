// hyperhive dashboard: what the hive spends on the model today. The hive's total against its
// budget, then one row per agent (cost, tokens in / out / cache, requests, budget, a bar of
// spend against it, its state, and the operator's raise and resume), the warnings as
// notices, and the plot of spend over time (dash-plot.js). A `usage` event from the live
// feed updates its agent's row at once; the totals and the plot follow with a re-fetch, at
// most about once a second however many responses are recorded.
import { $, act, button, el, num, refresher, setServerNow, status } from "./common.js";
import { drawPlot } from "./dash-plot.js";
import { budgetForm, budgetText, fraction, meter, setMeter, stateText, tokensText, usd } from "./spend-form.js";

const WINDOW_S = 24 * 3600, BUCKET_S = 300, STATS_MS = 1000, SOON_MS = 50;
const rows = new Map(), texts = new Map();
let hive = null, since = 0;

export const refreshUsage = refresher("api/usage", render);
const refreshPlot = refresher(() => {
  since = Math.floor(Date.now() / 1000) - WINDOW_S;
  return `api/usage/series?bucket=${BUCKET_S}&since=${since}`;
}, plot);
export const refresh = () => { refreshUsage(); refreshPlot(); };

// As the agents section does: one re-fetch at the earliest time asked for.
let timer = 0, due = 0;
function refreshIn(ms) {
  const at = performance.now() + ms;
  if (timer && due <= at) return;
  clearTimeout(timer);
  due = at;
  timer = setTimeout(() => { timer = 0; refresh(); }, ms);
}

export function onEvents(batch) {
  for (const ev of batch) {
    if (ev.type === "usage") {
      const row = rows.get(ev.agent);
      if (row) updateRow(row, { ...row.data, today: ev.today, state: ev.state });
      refreshIn(row ? STATS_MS : SOON_MS);
    } else if (ev.type === "budget") {
      texts.set(ev.agent ?? "", ev.text);
      const row = ev.agent == null ? null : rows.get(ev.agent);
      if (row) updateRow(row, { ...row.data, state: ev.state });
      if (ev.agent == null && hive) showHive({ ...hive, state: ev.state });
      showNotices();
      showCount();
      refreshIn(SOON_MS);
    } else if (ev.type === "agent_added" || ev.type === "agent_removed") refreshIn(SOON_MS);
  }
}

function render(data) {
  setServerNow(data.now);
  showHive(data.hive);
  const names = new Set(data.agents.map((r) => r.agent));
  for (const [name, row] of rows) if (!names.has(name)) { row.tr.remove(); rows.delete(name); }
  const body = $("spend-rows");
  for (const r of data.agents) {
    let row = rows.get(r.agent);
    if (!row) { row = spendRow(r.agent); rows.set(r.agent, row); }
    updateRow(row, r);
    body.append(row.tr); // in the server's order (by name); appending moves a kept row
  }
  $("spend-empty").hidden = data.agents.length > 0;
  showNotices();
  showCount();
}

let hiveForm = null;
function showHive(h) {
  hive = h;
  const box = $("spend-hive");
  if (!hiveForm) {
    hiveForm = budgetForm("api/budget", () => refreshIn(SOON_MS));
    const line = el("div", "hive-line"), bar = meter(), state = el("span", "sp-state");
    line.append(el("b", "hive-total"), el("span", "hive-budget dim"), bar, state);
    const more = el("details", "raise"), sum = el("summary", null, "hive budget…");
    more.append(sum, hiveForm.form);
    const resume = button("alt", "▶ resume the hive"), msg = status();
    resume.dataset.action = "resume";
    resume.title = "resume every agent for the rest of today, over the hive's budget";
    resume.addEventListener("click", async () => {
      await act(resume, msg, "api/resume", {});
      refreshIn(SOON_MS);
    });
    line.append(resume);
    box.append(line, el("div", "hive-tokens dim"), more, msg);
    Object.assign(hiveForm, { bar, state, resume });
  }
  const t = h.today || {};
  box.querySelector(".hive-total").textContent = `hive today ${usd(t.cost_usd || 0)}`;
  box.querySelector(".hive-budget").textContent = ` of ${budgetText(h.budget)} `;
  box.querySelector(".hive-tokens").textContent = `${tokensText(t)} · ${num(t.requests || 0)} requests`;
  setMeter(hiveForm.bar, fraction(t, h.budget));
  showState(hiveForm.state, h.state);
  hiveForm.show(h.budget);
  hiveForm.resume.hidden = h.state !== "paused";
  box.dataset.state = h.state;
  showCount();
}

// The header's figure: the hive's spend today, hot while anything is paused or near it.
function showCount() {
  const count = $("n-spend"), t = (hive && hive.today) || {};
  count.textContent = usd(t.cost_usd || 0);
  const states = [hive && hive.state, ...[...rows.values()].map((r) => r.data && r.data.state)];
  count.classList.toggle("hot", states.some((s) => s === "warn" || s === "paused"));
}

function showState(node, state) {
  node.textContent = stateText(state);
  node.className = `sp-state sp-${state}`;
}

function spendRow(agent) {
  const tr = el("tr", "sp-row");
  tr.dataset.spend = agent;
  const cells = {};
  for (const k of ["agent", "cost", "tokens", "requests", "budget", "state", "act"]) {
    cells[k] = el("td", `c-${k}`);
    tr.append(cells[k]);
  }
  cells.agent.textContent = agent;
  const bar = meter(), state = el("span", "sp-state"), limit = el("span", "limit");
  cells.budget.append(limit, bar);
  cells.state.append(state);
  const msg = status();
  const form = budgetForm(`api/agents/${encodeURIComponent(agent)}/budget`, () => refreshIn(SOON_MS));
  const raise = el("details", "raise"), sum = el("summary", null, "raise…");
  raise.append(sum, form.form);
  const resume = button("alt", "▶ resume");
  resume.dataset.action = "resume";
  resume.title = `resume ${agent} for the rest of today, over its budget`;
  resume.addEventListener("click", async () => {
    await act(resume, msg, `api/agents/${encodeURIComponent(agent)}/resume`, {});
    refreshIn(SOON_MS);
  });
  cells.act.append(raise, resume, msg);
  return { tr, cells, bar, limit, state, form, resume, data: null, sig: "" };
}

function updateRow(row, r) {
  const sig = JSON.stringify(r);
  row.data = r;
  if (sig === row.sig) return;
  row.sig = sig;
  const t = r.today || {};
  row.tr.dataset.state = r.state;
  row.cells.cost.textContent = usd(t.cost_usd || 0);
  row.cells.tokens.textContent = tokensText(t);
  row.cells.tokens.title = `cache write ${t.cache_creation_input_tokens || 0} · cache read ${t.cache_read_input_tokens || 0} · ${t.tokens || 0} in all`;
  row.cells.requests.textContent = num(t.requests || 0);
  row.limit.textContent = budgetText(r.budget);
  setMeter(row.bar, fraction(t, r.budget));
  showState(row.state, r.state);
  row.form.show(r.budget);
  row.resume.hidden = r.state !== "paused";
}

// A notice per agent (and the hive) at 80 % or paused, with the core's words when we have
// them; it goes away when the state is ok again.
function showNotices() {
  const list = [];
  const add = (who, key, state) => {
    if (state !== "warn" && state !== "paused") return;
    const fallback = state === "paused" ? `${who} is paused: budget` : `${who} has used 80 % or more of its budget today`;
    const n = el("p", `notice sp-${state}`, `${state === "paused" ? "■" : "⚠"} ${texts.get(key) || fallback}`);
    n.dataset.notice = key || "hive";
    list.push(n);
  };
  if (hive) add("the hive", "", hive.state);
  for (const [name, row] of rows) if (row.data) add(name, name, row.data.state);
  $("spend-notices").replaceChildren(...list);
}

function plot(data) {
  setServerNow(data.now);
  const points = drawPlot($("spend-plot"), $("spend-legend"), data, since);
  $("spend-plot").dataset.points = points;
  $("spend-plot-empty").hidden = points > 0;
}
