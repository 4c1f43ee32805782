// hyperhive dashboard: the agents section, made to stay usable at hundreds of agents: counts
// by state on top, a filter box, rows grouped by what they need (dash-groups.js), one line
// each with the details on demand (dash-agent-row.js). Rows are kept and updated in place.
// A container's new state from the live feed is shown at once; the rest (inbox, cost,
// waiting) comes with a re-fetch, at most about once a second however many events come.
import { $, refresher, setCount, setServerNow } from "./common.js";
import { startFilter, typingIn } from "./dash-agent-filter.js";
import { agentRow, unfold, updateAgent } from "./dash-agent-row.js";
import { setNames } from "./dash-flow.js";
import { placeRows, startGroups } from "./dash-groups.js";

const SMALL_HIVE = 8; // up to this many agents, rows show whole
const STATS_MS = 1000, SOON_MS = 50;
const rows = new Map();
let order = [], containers = true, hosts = 1;

export const refresh = refresher("api/agents", render);

// One re-fetch at the earliest time asked for; asking again before it runs changes nothing,
// so a steady flow of messages re-fetches once a second rather than never (or always).
let timer = 0, due = 0;
function refreshIn(ms) {
  const at = performance.now() + ms;
  if (timer && due <= at) return;
  clearTimeout(timer);
  due = at;
  timer = setTimeout(() => { timer = 0; refresh(); }, ms);
}

export function onEvents(batch) {
  let changed = false;
  for (const ev of batch) {
    const type = String(ev.type);
    if (type === "agent_state") changed = applyState(ev) || changed;
    if (type === "message" || type === "agent_state") refreshIn(STATS_MS);
    // approval_*: a row's "waiting for you" comes and goes with the approvals.
    // budget: a row's "paused: budget" comes and goes with its state; stall*: its "stalled".
    else if (type.startsWith("agent_") || type.startsWith("approval_") || type === "budget"
      || type === "stall" || type === "stall_cleared") refreshIn(SOON_MS);
  }
  if (changed) place();
}
export const onEvent = (ev) => onEvents([ev]);

// An agent_state event carries the container's record: the row shows it now.
function applyState(ev) {
  const row = rows.get(ev.agent);
  if (!row || !row.data || ev.state === "destroyed") { refreshIn(SOON_MS); return false; }
  const { type, agent, seq, ts, ...container } = ev;
  updateAgent(row, { ...row.data, container }, containers, hosts);
  return true;
}

function render(data) {
  setServerNow(data.now);
  containers = data.containers;
  hosts = data.hosts || 1;
  const names = new Set(data.agents.map((a) => a.name));
  for (const [name, row] of rows) {
    if (!names.has(name)) { row.root.remove(); rows.delete(name); }
  }
  const small = data.agents.length <= SMALL_HIVE;
  for (const a of data.agents) {
    // Each distinct tool policy comes once; a row names its own by index.
    if (typeof a.tools === "number") a.tools = data.tool_sets[a.tools];
    let row = rows.get(a.name);
    if (!row) { row = agentRow(a, refresh); rows.set(a.name, row); }
    // An event newer than this answer (it was on its way meanwhile) keeps its state.
    const known = row.data && row.data.container;
    if (known && a.container && known.since > a.container.since) a.container = known;
    updateAgent(row, a, containers, hosts);
    unfold(row, small);
  }
  order = data.agents.map((a) => a.name);
  place();
  $("agents-empty").hidden = data.agents.length > 0;
  setCount("n-agents", data.agents.length);
  setNames(order);
}

// A row with a field being typed in stays put until the focus leaves it.
const typedIn = (row) => typingIn(document.activeElement) && row.root.contains(document.activeElement);
const place = () => placeRows(order.map((n) => rows.get(n)), typedIn);

export function start() {
  startGroups();
  startFilter(place);
  $("agent-list").addEventListener("focusout", () => setTimeout(place));
}
