// hyperhive agent page: the agent's spend today against its budget and, when its budget (or
// the hive's) is spent, the "paused: budget" banner with the operator's raise and resume.
// Answered by the core, not the harness (api/spend, api/spend/events, api/budget,
// api/resume at the front door), and kept live from the core's usage and budget events.
import { $, act, button, el, refresher, setServerNow, status } from "./common.js";
import { budgetForm, budgetText, fraction, meter, setMeter, stateText, tokensText, usd } from "./spend-form.js";

const RECONNECT_MS = 5000;
const dashboard = () => document.querySelector('meta[name="hive-dashboard"]').content;
let data = null, text = { agent: "", hive: "" };
const refresh = refresher("api/spend", show);

function show(d) {
  data = d;
  setServerNow(d.now);
  const t = d.today || {};
  $("spend").hidden = false;
  $("spend").dataset.state = d.state;
  $("spend-cost").textContent = usd(t.cost_usd || 0);
  $("spend-budget").textContent = `of ${budgetText(d.budget)}`;
  setMeter(bar, fraction(t, d.budget));
  $("spend-tokens").textContent = `${tokensText(t)} · ${t.requests || 0} requests`;
  const state = $("spend-state");
  state.textContent = stateText(d.state);
  state.className = `sp-state sp-${d.state}`;
  raiseForm.show(d.budget);
  pausedForm.show(d.budget);
  banner(d);
}

// Paused by its own budget: raise it or resume it here. By the hive's: that is raised on
// the dashboard, where the hive's budget is.
function banner(d) {
  const own = d.state === "paused", hive = d.hive && d.hive.state === "paused";
  $("paused").hidden = !own && !hive;
  if (!own && !hive) return;
  const why = own
    ? text.agent || `${d.agent} gets no new turns: its budget (${budgetText(d.budget)}) is spent for today. Its messages wait in its queue.`
    : text.hive || "the hive's budget is spent for today: no agent gets new turns.";
  $("paused-text").textContent = why;
  pausedForm.form.hidden = !own;
  resume.hidden = !own;
  hiveLink.hidden = own || !hive;
}

function apply(ev) {
  if (ev.type === "budget") {
    text[ev.agent == null ? "hive" : "agent"] = ev.text || "";
    refresh();
  } else if (ev.type === "usage" && data) {
    show({ ...data, today: ev.today, state: ev.state });
  }
}

function connect() {
  const source = new EventSource("api/spend/events");
  source.addEventListener("hello", () => refresh()); // what came while away is in the figures
  source.addEventListener("spend", (e) => apply(JSON.parse(e.data)));
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, RECONNECT_MS); }
  };
}

const bar = meter();
const raiseForm = budgetForm("api/budget", () => refresh());
const pausedForm = budgetForm("api/budget", () => refresh());
const resume = button("", "▶ resume for today"), resumeMsg = status();
resume.dataset.action = "resume";
const hiveLink = el("a", "hive-link", "raise the hive's budget on the dashboard");

export function start() {
  // On its own port the page comes from the harness, which must not be able to show (or
  // fake) its own spend: only the core's front door has these figures.
  if (!dashboard()) return;
  $("spend-bar").append(bar);
  $("spend-raise").append(raiseForm.form);
  hiveLink.href = `${dashboard()}#spend`;
  $("paused-controls").append(pausedForm.form, resume, hiveLink, resumeMsg);
  resume.addEventListener("click", async () => {
    await act(resume, resumeMsg, "api/resume", {});
    refresh();
  });
  connect();
}
