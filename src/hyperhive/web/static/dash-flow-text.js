// hyperhive dashboard: what one line of the message flow says. A message (text or a core
// event in an inbox) or a bus event, each as the agents it concerns (for the filter), its
// classes and its parts; dash-flow.js places them.
import { el, short } from "./common.js";
import { KIND } from "./dash-approvals.js";
import { answerText } from "./dash-questions.js";

export function messageLine(m) {
  const route = [el("span", "from", m.from), el("span", "arrow", " → "), el("span", "to", m.to), el("span", "mid", ` #${m.id}`)];
  const agents = [m.from, m.to];
  if (m.kind === "event") return { agents, cls: "k-event", parts: [...route, el("div", "body", eventText(m))] };
  // Long bodies come as previews (truncated, size); the whole one is `hive message <id>`.
  const text = m.truncated ? `${m.body}… (${m.size} bytes)` : m.body;
  return { agents, cls: "k-message", parts: [...route, el("div", "body", text)] };
}

export function busLine(ev) {
  const [agents, text] = describe(ev);
  return { agents, cls: `k-core t-${ev.type}`, parts: [el("span", "core", "c0re "), el("span", "body", text)] };
}

// A core event in an inbox, said the way the operator would say it.
function eventText(m) {
  const p = m.payload || {};
  const why = p.decision_reason || p.error || p.detail;
  switch (m.body) {
    case "approval_decided":
      return `⚑ approval_decided #${p.id} ${KIND[p.kind] || p.kind} ${p.agent} → ${p.state}${why ? `: ${short(why)}` : ""}`;
    case "operator_answered":
      return `⚑ operator_answered #${p.question_id} “${short(p.question || "", 80)}” → ${short(answerText(p.answer))}`;
    case "agent_state":
      return `⚑ agent_state ${p.agent} ${p.state}${why ? `: ${short(why)}` : ""}`;
    case "budget":
      return `⚑ budget ${p.agent || "the hive"} → ${p.state}${p.text ? `: ${short(p.text)}` : ""}`;
    case "dead_letter":
      return `⚑ dead_letter #${p.message_id} ${p.from} → ${p.to} after ${p.attempts} tries: ${short(p.reason || "")}`;
    default:
      return `⚑ ${m.body} ${m.payload ? short(JSON.stringify(m.payload), 200) : ""}`;
  }
}

// A bus event: the agents it concerns and its line.
function describe(ev) {
  const a = ev.approval, q = ev.question;
  switch (ev.type) {
    case "agent_state": return [[ev.agent], `⚙ ${ev.agent} → ${ev.state}${ev.last_error ? ` (${ev.last_error})` : ""}`];
    case "agent_added": return [[ev.agent.name], `+ ${ev.agent.name} joined the hive`];
    case "agent_removed": return [[ev.agent], `− ${ev.agent} left the hive`];
    case "approval_requested": return [[a.agent, a.requester], `◆ #${a.id} ${KIND[a.kind]} ${a.agent} requested by ${a.requester}: ${short(a.reason)}`];
    case "approval_decided": return [[a.agent, a.requester], `◆ #${a.id} ${KIND[a.kind]} ${a.agent} → ${a.state}${a.decision_reason ? `: ${short(a.decision_reason)}` : ""}`];
    case "rule_added": return [[ev.rule.agent], `◆ rule #${ev.rule.id}: ${ev.rule.agent} may always run ${ev.rule.tool} ${short(ev.rule.input_json, 120)}`];
    case "rule_revoked": return [[ev.rule.agent], `◆ rule #${ev.rule.id} revoked: ${ev.rule.agent} ${ev.rule.tool} asks again`];
    case "question_asked": return [[q.asker], `? #${q.id} ${q.asker} asks: ${short(q.question)}`];
    case "question_answered": return [[q.asker], `? #${q.id} answered: ${short(answerText(q.answer))}`];
    case "dead_letter": return [[ev.message.to, ev.message.from], `✝ #${ev.message.id} to ${ev.message.to} is a dead letter after ${ev.attempts} tries: ${short(ev.reason)}`];
    case "dead_letter_retried": return [[ev.to], `↻ dead letter #${ev.id} back in ${ev.to}'s queue`];
    case "budget": return [ev.agent ? [ev.agent] : [], `$ ${ev.agent || "the hive"} budget → ${ev.state}${ev.text ? `: ${short(ev.text)}` : ""}`];
    case "dead_letter_dropped": return [[ev.to], `✖ dead letter #${ev.id} to ${ev.to} dropped by ${ev.by}`];
    default: return [[], `· ${ev.type}`];
  }
}
