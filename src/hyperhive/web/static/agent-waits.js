// hyperhive agent page: tool uses waiting for the operator. Shown here, decided on the
// dashboard: its buttons are only links to the dashboard, where the operator decides (on an
// agent's own port the page is the agent's, so it must never act for the operator).
import { $, el } from "./common.js";

const waiting = new Map(); // approval id → its tool_approval data
let panel = null;

const origin = (raw) => {
  try {
    const u = new URL(raw);
    return /^https?:$/.test(u.protocol) ? u.origin + "/" : null;
  } catch { return null; }
};
// Behind the core's front door (/agents/<name>/) the page names the dashboard itself: the
// hive's root, on this origin. On an agent's own port the dashboard's address (no key in
// it) comes with the dashboard's link to this page.
function dashboard() {
  const served = document.querySelector('meta[name="hive-dashboard"]')?.content || "";
  if (served) return new URL(served, location.href).href;
  const given = origin(new URLSearchParams(location.search).get("dashboard") || "");
  try {
    if (given) localStorage.setItem("hive-dashboard", given);
    const kept = origin(localStorage.getItem("hive-dashboard") || "");
    if (kept) return kept;
  } catch { if (given) return given; }
  // The dashboard links this page under the other loopback name; the default port.
  return `http://${location.hostname === "localhost" ? "127.0.0.1" : "localhost"}:7000/`;
}

export function start() {
  panel = el("section", "panel tool-waits");
  panel.id = "tool-waits";
  panel.hidden = true;
  $("log").before(panel);
}

function link(cls, text, href) {
  const a = el("a", `btn ${cls}`, text);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

// A tool_approval event: a pending one joins the panel, a decided one leaves it.
export function noteTool(d) {
  if (typeof d.approval !== "number") return;
  if (d.decision === "pending") waiting.set(d.approval, d);
  else waiting.delete(d.approval);
  const base = dashboard();
  const items = [...waiting.values()].map((w) => {
    const item = el("div", "tool-wait");
    item.dataset.approval = w.approval;
    const ask = `${base}?approval=${w.approval}`;
    item.append(el("div", "tool-head", `#${w.approval} ${w.tool} · waiting for the operator`),
      el("pre", "tool-input", JSON.stringify(w.input ?? {}, null, 2)),
      link("approve", "◆ approve on the dashboard ↗", ask), " ",
      link("danger", "✖ deny on the dashboard ↗", `${ask}&deny=1`));
    return item;
  });
  panel.replaceChildren(el("h2", null, "tool use waiting for you"), ...items);
  panel.hidden = items.length === 0;
}
