// hyperhive dashboard: the agents' groups and their counts. Each agent sits in one group by
// what it needs from the operator: waiting for you (its approvals are pending), paused by its
// budget, failed or
// restarting, working (messages in its inbox), idle, stopped. Each group shows its count and
// folds; folded groups stay folded across reloads (localStorage). The counts by state go on
// top of the section and, those that are not zero, in the header.
import { $, el } from "./common.js";
import { filtering, matches, setFilter } from "./dash-agent-filter.js";

export const GROUPS = [
  ["waiting", "waiting for you"],
  ["paused", "paused: budget"],
  ["failed", "failed / restarting"],
  ["working", "working"],
  ["idle", "idle"],
  ["stopped", "stopped"],
];
// The counts on top, in the order the operator reads them; each filters the rows on a click.
const COUNTS = ["running", "working", "idle", "waiting", "stopped", "failed", "restarting"];
const HOT = new Set(["waiting", "failed", "restarting"]);
const LABEL = { waiting: "waiting for you" };
const FOLDED_KEY = "hyperhive.dashboard.folded-groups";

// `turn` is a turn in progress, where the row carries it.
export function groupOf(a, state) {
  if (a.waiting > 0) return "waiting";
  if (a.paused) return "paused";
  if (state === "failed" || state === "restarting") return "failed";
  if (state === "stopped" || state === "missing") return "stopped";
  return a.pending > 0 || a.turn ? "working" : "idle";
}

function readFolded() {
  try { return new Set(JSON.parse(localStorage.getItem(FOLDED_KEY) || "[]")); }
  catch { return new Set(); } // storage off or garbage in it: nothing folded
}
const folded = readFolded();
function saveFolded() {
  try { localStorage.setItem(FOLDED_KEY, JSON.stringify([...folded])); }
  catch { /* private mode: folding just is not remembered */ }
}

const groups = new Map();
function groupBox(id, label) {
  const root = el("section", "group");
  root.dataset.group = id;
  const head = el("h3", "group-head"), fold = el("button", "fold-group");
  fold.type = "button";
  fold.setAttribute("aria-controls", `group-${id}`);
  const count = el("b", "count");
  fold.append(el("span", "caret"), ` ${label} `, count);
  head.append(fold);
  const box = el("div", "group-rows");
  box.id = `group-${id}`;
  root.append(head, box);
  const g = { root, fold, count, box };
  fold.addEventListener("click", () => {
    if (folded.has(id)) folded.delete(id); else folded.add(id);
    saveFolded();
    showFold(g, id);
  });
  showFold(g, id);
  return g;
}

function showFold(g, id) {
  // A filter looks into folded groups too: what it finds is shown.
  const open = !folded.has(id) || filtering();
  g.fold.setAttribute("aria-expanded", String(open));
  g.root.classList.toggle("folded", !open);
  g.box.hidden = !open;
}

export function startGroups() {
  const list = $("agent-list");
  for (const [id, label] of GROUPS) {
    const g = groupBox(id, label);
    groups.set(id, g);
    list.append(g.root);
  }
  makeChips("section", "button");
  makeChips("header", "span");
  $("agent-states").addEventListener("click", (e) => {
    const chip = e.target.closest("[data-state]");
    // A second click on the same count shows every agent again.
    if (chip) setFilter($("agent-filter").value === chip.dataset.state ? "" : chip.dataset.state);
  });
}

// Rows (in the server's order: the manager first, then by name) into their groups. A row
// whose field is being typed in is left where it is: moving it would drop the focus.
export function placeRows(rows, keep = () => false) {
  const by = new Map(GROUPS.map(([id]) => [id, []]));
  for (const row of rows) by.get(row.group).push(row);
  for (const [id, g] of groups) {
    const want = by.get(id);
    let cursor = g.box.firstElementChild, shown = 0;
    for (const row of want) {
      const match = matches(row.hay);
      if (row.root.hidden === match) row.root.hidden = !match;
      shown += match ? 1 : 0;
      if (row.root === cursor) cursor = cursor.nextElementSibling;
      else if (!keep(row)) g.box.insertBefore(row.root, cursor);
    }
    g.count.textContent = filtering() ? `${shown}/${want.length}` : String(want.length);
    g.root.hidden = want.length === 0 || (filtering() && shown === 0);
    showFold(g, id);
  }
  showCounts(rows);
}

// One chip per count, built once and updated in place (a focused chip keeps its focus).
const chips = { section: new Map(), header: new Map() };
function makeChips(where, tag) {
  for (const k of COUNTS) {
    const c = el(tag, `chip st-${k}`), b = el("b", null, "0");
    c.dataset.state = k;
    c.append(b, ` ${LABEL[k] || k}`);
    if (tag === "button") { c.type = "button"; c.title = `show only ${LABEL[k] || k}`; }
    chips[where].set(k, { c, b });
    $(where === "section" ? "agent-states" : "hive-states").append(c);
  }
}

function showCounts(rows) {
  const n = Object.fromEntries(COUNTS.map((k) => [k, 0]));
  for (const row of rows) {
    if (row.state === "missing") n.stopped++;
    else if (row.state in n) n[row.state]++;
    if (row.group === "waiting" || row.group === "working" || row.group === "idle") n[row.group]++;
  }
  for (const where of ["section", "header"]) {
    for (const [k, { c, b }] of chips[where]) {
      b.textContent = n[k];
      c.classList.toggle("hot", HOT.has(k) && n[k] > 0);
      c.classList.toggle("zero", n[k] === 0);
      if (where === "header") c.hidden = n[k] === 0;
    }
  }
}
