// hyperhive dashboard: agents, spend, approvals, questions, dead letters and the live message flow.
// Plain ES modules, no build step. The page keeps itself true from the core's event bus: an
// event names what changed and the section re-fetches its JSON (or applies the event itself),
// so another tab or the CLI shows up here too. Events arrive in batches, one per frame: a
// section with onEvents takes the whole batch, the others each event.
import { tickAges } from "./common.js";
import * as agents from "./dash-agents.js";
import * as approvals from "./dash-approvals.js";
import * as audit from "./dash-audit.js";
import * as dead from "./dash-dead.js";
import * as flow from "./dash-flow.js";
import { connect } from "./dash-live.js";
import * as questions from "./dash-questions.js";
import * as spend from "./dash-spend.js";

const sections = [agents, spend, approvals, questions, dead, audit, flow];
document.addEventListener("hive:events", (e) => {
  for (const section of sections) {
    if (section.onEvents) section.onEvents(e.detail);
    else for (const ev of e.detail) section.onEvent(ev);
  }
});
document.addEventListener("hive:refetch", () => { for (const section of sections) section.refresh(); });
agents.start();
flow.start();
audit.start();
tickAges();
connect(); // its first "hello" fetches every section
