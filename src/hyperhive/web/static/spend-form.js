// hyperhive pages: spend and budgets as both pages show them (the dashboard's spend view and
// an agent's page at the front door): money, a budget in words, the share of it spent, the
// state, and the operator's form to raise a budget. The figures are the gateway's count.
import { act, button, el, num, status } from "./common.js";

// Cents, or four decimals below a cent (as the core words it).
export const usd = (x) => "$" + (x >= 0.01 ? x.toFixed(2) : x.toFixed(4));
export const STATE_TEXT = { ok: "ok", warn: "warn · 80 %", paused: "paused: budget" };
export const stateText = (s) => STATE_TEXT[s] || String(s);

export function budgetText(b) {
  const parts = [];
  if (b && b.usd_per_day != null) parts.push(`${usd(b.usd_per_day)}/day`);
  if (b && b.tokens_per_day != null) parts.push(`${num(b.tokens_per_day)} tokens/day`);
  return parts.join(" · ") || "no limit";
}

// The larger of the shares of money and of tokens; null without a budget. May pass 1.
export function fraction(today, b) {
  const shares = [];
  if (b && b.usd_per_day) shares.push((today.cost_usd || 0) / b.usd_per_day);
  if (b && b.tokens_per_day) shares.push((today.tokens || 0) / b.tokens_per_day);
  return shares.length ? Math.max(...shares) : null;
}

// A bar of spend against budget; green, amber from 80 %, red when spent.
export function meter() {
  const m = el("meter", "spent");
  Object.assign(m, { min: 0, max: 1, low: 0.8, high: 0.999, optimum: 0 });
  return m;
}
export function setMeter(m, share) {
  m.hidden = share === null;
  if (share === null) return;
  m.value = Math.min(1, share);
  const pct = Math.round(share * 100);
  m.title = `${pct} % of the budget spent today`;
  m.textContent = `${pct} %`;
  m.dataset.share = share.toFixed(4);
}

// Counters in one line: "in 1.2k · out 300 · cache 5.0k".
export function tokensText(t) {
  const cache = (t.cache_creation_input_tokens || 0) + (t.cache_read_input_tokens || 0);
  return `in ${num(t.input_tokens || 0)} · out ${num(t.output_tokens || 0)} · cache ${num(cache)}`;
}

function field(label, name, hint) {
  const wrap = el("label", "bf"), input = el("input");
  input.name = name;
  input.autocomplete = "off";
  input.spellcheck = false;
  input.placeholder = hint;
  input.title = "blank: keep it · none: no limit";
  input.inputMode = "text"; // "none" must be typeable on a phone too
  wrap.append(`${label} `, input);
  return [wrap, input];
}

// The operator's form for a budget (posted to `path`): dollars and/or tokens a day, as
// typed; the core checks them and says why it refused. `done` runs after each answer.
export function budgetForm(path, done) {
  const form = el("form", "budget-form");
  form.autocomplete = "off";
  const [usdLabel, usdBox] = field("usd/day", "usd_per_day", "e.g. 5");
  const [tokLabel, tokBox] = field("tokens/day", "tokens_per_day", "e.g. 2000000");
  const go = button("", "set budget", "submit"), msg = status();
  form.append(usdLabel, tokLabel, go, msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const res = await act(go, msg, path, { usd_per_day: usdBox.value, tokens_per_day: tokBox.value });
    if (res.ok) usdBox.value = tokBox.value = "";
    if (done) done(res);
  });
  // What the budget is now, as the boxes' hints.
  const show = (b) => {
    usdBox.placeholder = b && b.usd_per_day != null ? String(b.usd_per_day) : "e.g. 5";
    tokBox.placeholder = b && b.tokens_per_day != null ? String(b.tokens_per_day) : "e.g. 2000000";
  };
  return { form, msg, show };
}
