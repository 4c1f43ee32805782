// hyperhive dashboard: the audit log, who did what and through what (the CLI, this page,
// a policy rule, the core), newest last, with whether its hash chain verifies. The
// chain walk is asked for on load and by the button, not on every event.
import { $, button, clock, el, refresher, short } from "./common.js";

// Events that append an audit entry: the list re-reads itself after them.
const AUDITED = /^(approval_|agent_|question_|rule_|budget$|login$)/;

let verifyNext = true;
const load = refresher(() => `api/audit?limit=50${verifyNext ? "&verify=1" : ""}`, render);
export function refresh() { load(); }
export function onEvent(ev) { if (AUDITED.test(String(ev.type))) load(); }

function detail(d) {
  return short(Object.entries(d).map(([k, v]) =>
    `${k}=${v && typeof v === "object" ? (v.preview !== undefined ? v.preview + "…" : JSON.stringify(v)) : v}`,
  ).join(" "), 120);
}

function row(e) {
  const tr = el("tr", e.via === "policy" ? "policy" : "");
  tr.dataset.audit = e.id;
  for (const text of [`#${e.id}`, clock(e.at), e.actor, e.via, e.action, e.agent || "-", detail(e.detail)]) {
    tr.append(el("td", "", text));
  }
  return tr;
}

function render(data) {
  $("audit-rows").replaceChildren(...data.entries.map(row));
  $("audit-empty").hidden = data.entries.length > 0;
  if (data.verify) {
    verifyNext = false;
    const v = data.verify, mark = $("audit-verify");
    mark.className = v.ok ? "ok" : "bad";
    mark.textContent = v.ok ? `chain ok · ${v.count} entries` : `chain broken: ${v.reason}`;
  }
}

export function start() {
  const again = button("alt", "verify chain");
  again.addEventListener("click", () => { verifyNext = true; load(); });
  $("audit-tools").append(again);
}
