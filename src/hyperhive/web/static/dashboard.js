// hyperhive dashboard: agents, approvals, questions, dead letters and the live message flow.
// Plain ES modules, no build step. The page keeps itself true from the core's event bus: an
// event names what changed and the section re-fetches its JSON, so another tab or the CLI
// shows up here too.
import { tickAges } from "./common.js";
import * as agents from "./dash-agents.js";
import * as approvals from "./dash-approvals.js";
import * as dead from "./dash-dead.js";
import * as flow from "./dash-flow.js";
import { connect } from "./dash-live.js";
import * as questions from "./dash-questions.js";

const sections = [agents, approvals, questions, dead, flow];
for (const section of sections) {
  document.addEventListener("hive:event", (e) => section.onEvent(e.detail));
  document.addEventListener("hive:refetch", () => section.refresh());
}
flow.start();
tickAges();
connect(); // its first "hello" fetches every section
