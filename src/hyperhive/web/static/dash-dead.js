// hyperhive dashboard: dead letters, the messages that failed too often for their own sake
// and wait for the operator. Each shows its recipient, sender, a preview of its body, its
// tries and the reason; retry puts it back into the recipient's queue with its tries reset,
// drop marks it delivered for good.
import { $, act, ago, button, el, keyed, refresher, setCount, status } from "./common.js";

// Keyed by id and time of death: a letter retried and dead again is a new card.
const cards = new Map();
const key = (d) => `${d.id}:${d.dead_at}`;

export const refresh = refresher("api/dead", render);
export function onEvent(ev) {
  if (String(ev.type).startsWith("dead_letter")) refresh();
}

function card(d) {
  const item = el("article", "dead");
  item.dataset.dead = d.id;
  const head = el("header");
  head.append(el("b", "id", `#${d.id}`), el("span", "who", d.to),
    el("span", "dim", ` from ${d.from} · ${d.attempts} tries · dead `), ago(d.dead_at));
  const reason = el("p", "reason", d.dead_reason || "(no reason given)");
  const body = el("pre", "dead-body", d.truncated ? `${d.body}… (${d.size} bytes)` : d.body);
  const msg = status();
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
  keyed(cards, $("dead-list"), data.dead, card, key);
  $("dead-empty").hidden = data.dead.length > 0;
  setCount("n-dead", data.dead.length, true);
}
