// hyperhive dashboard: dead letters, the messages that failed too often for their own sake
// and wait for the operator. Each shows its recipient, sender, a preview of its body, its
// tries and the reason; retry puts it back into the recipient's queue with its tries reset,
// drop marks it delivered for good. Kept true from the core's bus through dashboard.js
// ("hive:event": dead_letter, dead_letter_retried, dead_letter_dropped; "hive:refetch").
// Everything from the hive goes in via textContent, never HTML.
"use strict";

(() => {
  const { $, el, button, act, refresher, ago, setCount } = window.hive;
  // Keyed by id and time of death: a letter retried and dead again is a new card.
  const cards = new Map();
  const key = (d) => `${d.id}:${d.dead_at}`;

  function card(d) {
    const item = el("article", "dead");
    item.dataset.dead = d.id;
    const head = el("header");
    head.append(el("b", "id", `#${d.id}`), el("span", "who", d.to),
      el("span", "dim", ` from ${d.from} · ${d.attempts} tries · dead `), ago(d.dead_at));
    const reason = el("p", "reason", d.dead_reason || "(no reason given)");
    const body = el("pre", "dead-body", d.truncated ? `${d.body}… (${d.size} bytes)` : d.body);
    const msg = el("p", "msg");
    msg.setAttribute("role", "status");
    const decide = el("div", "decide");
    for (const [action, cls, label] of [["retry", "", "↻ retry"], ["drop", "danger", "✖ drop"]]) {
      const b = button(cls, label);
      b.dataset.action = action;
      b.addEventListener("click", () => act(b, msg, `api/dead/${d.id}/${action}`, {}, $("dead-msg")));
      decide.append(b);
    }
    item.append(head, reason, body, decide, msg);
    return item;
  }

  function render(data) {
    const keys = new Set(data.dead.map(key));
    for (const [k, c] of cards) if (!keys.has(k)) { c.remove(); cards.delete(k); }
    for (const d of data.dead) {
      if (!cards.has(key(d))) { const c = card(d); cards.set(key(d), c); $("dead-list").append(c); }
    }
    $("dead-empty").hidden = data.dead.length > 0;
    setCount("n-dead", data.dead.length, true);
  }

  const refresh = refresher("api/dead", render);
  document.addEventListener("hive:event", (e) => {
    if (String(e.detail.type).startsWith("dead_letter")) refresh();
  });
  document.addEventListener("hive:refetch", refresh);
  refresh(); // the feed's first hello may have come before this script ran
})();
