// hyperhive dashboard: the approvals section. Pending Spawn, ApplyCommit and ToolUse
// requests as cards (approve, approve always for a tool use, deny with a reason), the
// decided ones as history, and the always-rules that tool uses approved for good.
import { $, act, ago, button, el, keyed, refresher, say, setCount, status } from "./common.js";
import { diffView } from "./dash-diff.js";

export const KIND = { spawn: "Spawn", apply_commit: "ApplyCommit", tool_use: "ToolUse" };
const cards = new Map();

const refreshApprovals = refresher("api/approvals", renderApprovals);
const refreshRules = refresher("api/rules", renderRules);
export function refresh() {
  refreshApprovals();
  refreshRules();
}
export function onEvent(ev) {
  if (ev.type.startsWith("approval_")) refreshApprovals();
  else if ((ev.type === "stall" || ev.type === "stall_cleared") && ev.what === "approval") refreshApprovals();
  else if (ev.type.startsWith("rule_")) refreshRules();
}

// What approving would do, shown before the buttons.
function subject(card, a) {
  if (a.kind === "apply_commit") {
    // The tree is what approving applies, byte for byte: the pin kept with the request.
    card.append(el("div", "dim", `commit ${(a.sha || "").slice(0, 12)} · tree ${(a.tree || "?").slice(0, 12)} · diff from the applied config:`));
    if (a.diff !== undefined) card.append(a.diff.trim() ? diffView(a.diff) : el("p", "dim", "(no changes)"));
    if (a.diff_error) card.append(el("p", "err", `diff unavailable: ${a.diff_error}`));
  } else if (a.kind === "tool_use") {
    // Exactly what approving allows: this tool, this input (indented by the core, so no
    // number is rounded here), shown as text.
    const tool = el("div", "tool");
    tool.append(el("span", "dim", "tool "), el("b", "tool-name", a.tool), el("span", "dim", " with this exact input:"));
    card.append(tool, el("pre", "tool-input", a.input_pretty ?? a.input_json));
  } else if (a.config) {
    card.append(el("div", "dim", "agent.toml:"), diffView(a.config.replace(/^/gm, "+").replace(/\n\+$/, "")));
  } else {
    card.append(el("div", "dim", "with the default agent.toml"));
  }
}

function decide(a, msg) {
  const box = el("div", "decide"), done = $("approvals-msg");
  const approve = button("approve", "◆ APPR0VE");
  approve.addEventListener("click", () => act(approve, msg, `api/approvals/${a.id}/approve`, {}, done));
  box.append(approve);
  if (a.kind === "tool_use") {
    const always = button("alt always", "approve always");
    always.title = "also allow every identical call from now on (revocable)";
    always.addEventListener("click", () =>
      act(always, msg, `api/approvals/${a.id}/approve`, { always: true }, done));
    box.append(always);
  }
  const deny = el("form", "deny");
  const reason = el("input");
  reason.name = "reason";
  reason.placeholder = "reason to deny";
  reason.setAttribute("aria-label", `reason to deny #${a.id}`);
  const denyBtn = button("danger", "✖ deny", "submit");
  deny.append(reason, denyBtn);
  deny.addEventListener("submit", (e) => {
    e.preventDefault();
    act(denyBtn, msg, `api/approvals/${a.id}/deny`, { reason: reason.value }, done);
  });
  box.append(deny);
  return box;
}

function approvalCard(a) {
  const card = el("article", `approval kind-${a.kind}`);
  card.dataset.approval = a.id;
  card.id = `approval-${a.id}`;
  const head = el("header");
  head.append(el("b", "id", `#${a.id}`), el("span", "kind", KIND[a.kind] || a.kind),
    el("span", "who", a.agent), el("span", "dim", `${a.host ? `on ${a.host} ` : ""}by ${a.requester} · `), ago(a.created_at),
    el("span", "stalled"));
  card.append(head, el("p", "reason", a.reason || "(no reason given)"));
  subject(card, a);
  const msg = status();
  card.append(decide(a, msg), msg);
  return card;
}

function renderApprovals(data) {
  keyed(cards, $("approval-list"), data.pending, approvalCard);
  for (const a of data.pending) markStalled(cards.get(a.id), a.stalled);
  $("approvals-empty").hidden = data.pending.length > 0;
  setCount("n-approvals", data.pending.length, true);
  $("approval-history").replaceChildren(...data.decided.map((a) => {
    const li = el("li", `st-${a.state}`);
    li.dataset.approval = a.id;
    li.append(el("b", "id", `#${a.id}`), ` ${KIND[a.kind] || a.kind} ${a.agent} ${a.tool ? a.tool + " " : ""}`,
      el("span", "state", a.state), ` by ${a.decided_by || "?"}`);
    const why = a.decision_reason || a.error;
    if (why) li.append(": ", el("span", "why", why));
    li.append(" · ", ago(a.finished_at || a.decided_at || a.created_at));
    return li;
  }));
  focusAsked();
}

// Pending past the stall threshold (the core's stall detection): marked on its card.
function markStalled(card, stall) {
  const mark = card.querySelector("header .stalled");
  mark.hidden = !stall;
  mark.textContent = stall ? "stalled" : "";
  mark.title = stall ? stall.text : "";
}

// An agent's page sends the operator here to decide one of its approvals: ?approval=N
// (&deny=1 to deny). The page only points; deciding is done here, with this session.
const asked = new URLSearchParams(location.search);
let askedDone = !/^\d{1,15}$/.test(asked.get("approval") || "");
function focusAsked() {
  if (askedDone) return;
  askedDone = true;
  const id = Number(asked.get("approval"));
  const card = cards.get(id);
  if (!card) {
    const decided = $("approval-history").querySelector(`[data-approval="${id}"]`);
    say($("approvals-msg"), { ok: false, message: `approval #${id} is ${decided ? "already decided" : "not pending"}` });
    return;
  }
  card.classList.add("focus");
  card.scrollIntoView({ block: "center" });
  // Never the approve button: the link comes from an agent's page, and one key
  // press must not approve what an agent pointed at. Deny's reason box is safe.
  if (asked.get("deny")) card.querySelector(".deny input").focus();
}

// ---------- always-rules ----------
function renderRules(data) {
  const active = data.rules.filter((r) => r.active);
  $("rule-list").replaceChildren(...active.map((r) => {
    const item = el("article", "rule");
    item.dataset.rule = r.id;
    const head = el("header");
    head.append(el("b", "id", `#${r.id}`), el("span", "who", r.agent), el("b", "tool-name", r.tool),
      el("span", "dim", r.approval_id ? ` from approval #${r.approval_id} · ` : " · "), ago(r.created_at));
    const msg = status();
    const revoke = button("danger", "revoke");
    revoke.addEventListener("click", () => act(revoke, msg, `api/rules/${r.id}/revoke`, {}, $("rules-msg")));
    head.append(" ", revoke);
    item.append(head, el("pre", "tool-input", r.input_pretty ?? r.input_json), msg);
    return item;
  }));
  $("rules-empty").hidden = active.length > 0;
}
