// hyperhive dashboard: agents, approvals, questions and the live message flow.
// Plain JS, no build step. Everything from the hive goes in via textContent, never HTML.
// The page keeps itself true from the core's event bus (SSE): an event names what changed
// and the page re-fetches that section's JSON, so another tab or the CLI shows up here too.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="hive-csrf"]').content;
  const MAX_FLOW = 2000, FLOW_HISTORY = 200, BOTTOM_SLACK = 24;
  let skew = 0; // server clock minus ours, in seconds, so ages are right on a skewed phone

  // ---------- small helpers ----------
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const button = (cls, text, type = "button") => {
    const b = el("button", "btn " + cls, text);
    b.type = type;
    return b;
  };
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
  const num = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n));
  function age(since) {
    const s = Math.max(0, Math.floor(Date.now() / 1000 + skew - since));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    return s < 86400 ? Math.floor(s / 3600) + "h" : Math.floor(s / 86400) + "d";
  }
  const short = (text, n = 240) => (text.length > n ? text.slice(0, n) + "…" : text);
  const answerText = (a) => (Array.isArray(a) ? a.join(", ") : String(a ?? ""));
  function ago(ts) {
    const n = el("span", "ago", age(ts) + " ago");
    n.dataset.since = ts;
    n.dataset.suffix = " ago";
    return n;
  }

  // ---------- talking to the core ----------
  async function getJSON(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }
  async function post(path, fields) {
    try {
      const r = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Hive-CSRF": csrf },
        body: JSON.stringify(fields || {}),
      });
      const body = await r.json().catch(() => null);
      if (body && typeof body.message === "string") return { ok: r.ok && body.ok, message: body.message };
      return { ok: false, message: `HTTP ${r.status}` };
    } catch (err) {
      return { ok: false, message: `network error: ${err.message}` };
    }
  }
  function say(node, res) {
    node.textContent = res.message;
    node.className = "msg " + (res.ok ? "ok" : "bad");
  }
  // One action: the button is busy while it runs (no double posts); the answer shows inline,
  // and a success is echoed in the section, because the card itself may vanish on refresh.
  async function act(btn, msg, path, fields, sectionMsg) {
    btn.disabled = true;
    msg.textContent = "…";
    msg.className = "msg";
    const res = await post(path, fields);
    btn.disabled = false;
    say(msg, res);
    if (res.ok && sectionMsg) say(sectionMsg, res);
    return res;
  }

  // A re-fetch that never runs twice at once, and runs once more if asked while busy.
  function refresher(path, render) {
    let busy = false, again = false;
    const go = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try { render(await getJSON(typeof path === "function" ? path() : path)); }
      catch (err) { console.warn("refresh failed:", err.message); }
      busy = false;
      if (again) { again = false; go(); }
    };
    return go;
  }
  function setCount(id, n, hot) {
    const c = $(id);
    c.textContent = n;
    c.classList.toggle("hot", Boolean(hot && n > 0));
  }

  // ---------- agents ----------
  const agentRows = new Map();
  let names = [];
  function agentRow(a) {
    const root = el("article", "agent");
    root.dataset.agent = a.name;
    const top = el("div", "top");
    const link = el("a", "name", a.name);
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const badge = el("span", "badge");
    top.append(link, a.role === "manager" ? el("span", "role", "manager") : "", badge);
    const facts = el("div", "facts"), error = el("div", "err");
    // The tool policy its container runs with: one line, the rules on demand.
    const tools = el("details", "tools"), toolsSum = el("summary"), toolsBody = el("div", "rules-of");
    tools.append(toolsSum, toolsBody);
    const actions = el("div", "actions"), msg = el("p", "msg");
    msg.setAttribute("role", "status");
    const verbs = { start: "▶ start", stop: "■ stop", restart: "↻ restart" };
    const btns = {};
    for (const [verb, label] of Object.entries(verbs)) {
      btns[verb] = button(verb === "stop" ? "alt" : "", label);
      btns[verb].dataset.action = verb;
      btns[verb].addEventListener("click", async () => {
        await act(btns[verb], msg, `api/agents/${a.name}/${verb}`, {});
        refresh.agents();
      });
      actions.append(btns[verb]);
    }
    const destroy = button("danger", "✖ destroy");
    destroy.dataset.action = "destroy";
    actions.append(destroy);
    // Destroy is behind a typed confirmation: the name, as GitHub does for repositories.
    const confirm = el("form", "confirm");
    confirm.hidden = true;
    const typed = el("input");
    typed.placeholder = a.name;
    typed.setAttribute("aria-label", `type ${a.name} to confirm`);
    typed.autocomplete = "off";
    const purgeBox = el("input");
    purgeBox.type = "checkbox";
    const purge = el("label", "purge");
    purge.append(purgeBox, " purge its state");
    const go = button("danger", "destroy for good", "submit"), cancel = button("alt", "cancel");
    confirm.append(el("span", "warn", `type ${a.name} to destroy it:`), typed, purge, go, cancel);
    destroy.addEventListener("click", () => { confirm.hidden = false; typed.focus(); });
    cancel.addEventListener("click", () => { confirm.hidden = true; typed.value = ""; });
    confirm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const fields = { confirm: typed.value, purge: purgeBox.checked };
      const res = await act(go, msg, `api/agents/${a.name}/destroy`, fields, $("agents-msg"));
      if (res.ok) confirm.hidden = true;
      refresh.agents();
    });
    const work = workBox(a.name);
    root.append(top, facts, tools, work.root, error, actions, confirm, msg);
    return { root, link, badge, facts, tools, toolsSum, toolsBody, work, error, actions, btns };
  }
  function updateAgent(row, a, containers) {
    const c = a.container || { state: containers ? "missing" : "external", backend: "—" };
    row.link.href = a.url;
    row.badge.className = `badge st-${c.state}`;
    row.badge.dataset.label = c.state;
    if (c.since) row.badge.dataset.since = c.since;
    else delete row.badge.dataset.since;
    row.badge.textContent = c.since ? `${c.state} ${age(c.since)}` : c.state;
    const s = a.stats;
    const facts = [
      ["backend", c.backend],
      ["model", a.model || "default"],
      ["cost", s ? `$${s.cost_usd.toFixed(4)}` : "—"],
      ["tokens", s ? `${num(s.input_tokens)} in / ${num(s.output_tokens)} out` : "—"],
      ["turns", s ? s.turns : "—"],
      ["inbox", a.pending],
    ];
    row.facts.replaceChildren(...facts.map(([k, v]) => {
      const f = el("span", "fact");
      f.append(el("i", null, k), " ", el("b", null, v));
      return f;
    }));
    updateTools(row, a.tools);
    updateWork(row.work, a.workspace);
    row.error.textContent = c.last_error ? `! ${c.last_error}` : "";
    row.error.hidden = !c.last_error;
    row.actions.hidden = !containers;
    row.btns.start.disabled = c.state === "running";
    row.btns.stop.disabled = c.state === "stopped" || c.state === "missing";
    markWaiting(row, a);
  }
  const TOOL_LISTS = { allow: "free", ask: "ask", deny: "deny" };
  function updateTools(row, t) {
    row.tools.hidden = !t;
    if (!t) return;
    const counts = Object.entries(TOOL_LISTS).map(([k, label]) => `${t[k].length} ${label}`);
    const custom = Object.keys(TOOL_LISTS).filter((k) => !t.default[k]);
    row.toolsSum.textContent = `tools: ${counts.join(" · ")}${custom.length ? ` (custom ${custom.join(", ")})` : " (default)"}`;
    row.toolsBody.replaceChildren(...Object.entries(TOOL_LISTS).map(([k, label]) => {
      const line = el("div", `tl-${k}`);
      line.append(el("i", null, `${label}${t.default[k] ? "" : " *"}: `), t[k].length ? t[k].join(", ") : "—");
      return line;
    }));
  }
  function renderAgents(data) {
    skew = data.now - Date.now() / 1000;
    const list = $("agent-list");
    const current = new Set(data.agents.map((a) => a.name));
    for (const [name, row] of agentRows) {
      if (!current.has(name)) { row.root.remove(); agentRows.delete(name); }
    }
    data.agents.forEach((a, i) => {
      let row = agentRows.get(a.name);
      if (!row) { row = agentRow(a); agentRows.set(a.name, row); }
      // Only move a row that is out of place: moving would drop focus from its inputs.
      if (list.children[i] !== row.root) list.insertBefore(row.root, list.children[i] || null);
      updateAgent(row, a, data.containers);
    });
    $("agents-empty").hidden = data.agents.length > 0;
    setCount("n-agents", data.agents.length);
    setNames(data.agents.map((a) => a.name));
  }
  function setNames(next) {
    if (next.join() === names.join()) return;
    names = next;
    for (const [id, first] of [["filter", "all agents"], ["send-to", null]]) {
      const select = $(id), keep = select.value;
      const opts = first === null ? [] : [new Option(first, "")];
      for (const n of names) opts.push(new Option(n, n));
      select.replaceChildren(...opts);
      if (keep && names.includes(keep)) select.value = keep;
    }
  }

  // ---------- workspaces ----------
  // An agent's branch as the core's mirror of it shows it: one line (branch, commits ahead,
  // diffstat totals), the commits, the diffstat and the diff on demand. Loaded with each
  // refresh of the agents (the core answers from a cache until the branch moves); the diff,
  // up to 1 MiB, only while the view is open.
  function workBox(name) {
    const root = el("details", "work"), sum = el("summary");
    root.hidden = true;
    root.dataset.work = name;
    const commits = el("ol", "commits"), stat = el("pre", "diffstat"), err = el("p", "err");
    const diff = el("details", "work-diff"), diffSum = el("summary", null, "diff");
    diff.append(diffSum);
    err.hidden = true;
    root.append(sum, commits, stat, diff, err);
    const box = { root, sum, commits, stat, diff, diffSum, err };
    root.addEventListener("toggle", () => { if (root.open) box.load(); });
    let busy = false, again = false;
    box.load = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const r = await fetch(`api/agents/${encodeURIComponent(name)}/work?diff=${root.open ? 1 : 0}`,
          { headers: { Accept: "application/json" }, cache: "no-store" });
        const body = await r.json().catch(() => null);
        if (r.ok && body) renderWork(box, body);
        else workError(box, (body && body.message) || `HTTP ${r.status}`);
      } catch (e) { workError(box, `network error: ${e.message}`); }
      busy = false;
      if (again) { again = false; box.load(); }
    };
    return box;
  }
  function updateWork(box, ws) {
    box.root.hidden = !ws;
    if (ws) box.load();
  }
  function workError(box, message) {
    box.sum.textContent = `⎇ work: unavailable`;
    box.err.textContent = `! ${message}`;
    box.err.hidden = false;
  }
  function renderWork(box, v) {
    const s = v.stat;
    const totals = s && s.files ? ` · ${s.files} file${s.files === 1 ? "" : "s"} +${s.insertions} −${s.deletions}` : "";
    box.sum.textContent = v.tip ? `⎇ ${v.branch} · ${v.ahead} ahead of ${v.base}${totals}` : `⎇ ${v.branch} · no such branch in the clone`;
    box.commits.replaceChildren(...v.commits.map((c) => {
      const li = el("li");
      li.dataset.sha = c.sha;
      li.append(el("b", "sha", c.sha.slice(0, 12)), " ", el("span", "subject", c.subject),
        el("span", "dim", ` · ${c.author} · ${c.date}`));
      return li;
    }));
    box.stat.textContent = v.diffstat;
    box.stat.hidden = !v.diffstat;
    if (v.diff !== undefined) {
      box.diff.replaceChildren(box.diffSum, ...(v.diff ? [diffView(v.diff)] : []));
      box.diff.hidden = !v.diff;
    } else if (!box.diff.querySelector("pre")) box.diff.hidden = true;
    box.err.hidden = true;
  }

  // ---------- approvals ----------
  const approvalCards = new Map();
  const KIND = { spawn: "Spawn", apply_commit: "ApplyCommit", tool_use: "ToolUse" };
  function diffView(text) {
    const pre = el("pre", "diff");
    for (const line of text.split("\n")) {
      let cls = "";
      if (/^(diff --git|index |--- |\+\+\+ |new file|deleted file)/.test(line)) cls = "meta";
      else if (line.startsWith("@@")) cls = "hunk";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      pre.append(el("span", cls, line + "\n"));
    }
    return pre;
  }
  function approvalCard(a) {
    const card = el("article", `approval kind-${a.kind}`);
    card.dataset.approval = a.id;
    card.id = `approval-${a.id}`;
    const head = el("header");
    head.append(el("b", "id", `#${a.id}`), el("span", "kind", KIND[a.kind] || a.kind),
      el("span", "who", a.agent), el("span", "dim", `by ${a.requester} · `), ago(a.created_at));
    card.append(head, el("p", "reason", a.reason || "(no reason given)"));
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
    const decide = el("div", "decide"), msg = el("p", "msg");
    msg.setAttribute("role", "status");
    const approve = button("approve", "◆ APPR0VE");
    approve.addEventListener("click", () =>
      act(approve, msg, `api/approvals/${a.id}/approve`, {}, $("approvals-msg")));
    decide.append(approve);
    if (a.kind === "tool_use") {
      const always = button("alt always", "approve always");
      always.title = "also allow every identical call from now on (revocable)";
      always.addEventListener("click", () =>
        act(always, msg, `api/approvals/${a.id}/approve`, { always: true }, $("approvals-msg")));
      decide.append(always);
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
      act(denyBtn, msg, `api/approvals/${a.id}/deny`, { reason: reason.value }, $("approvals-msg"));
    });
    decide.append(deny);
    card.append(decide, msg);
    return card;
  }
  function renderApprovals(data) {
    keyed(approvalCards, $("approval-list"), data.pending, approvalCard);
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
  // An agent's page sends the operator here to decide one of its approvals: ?approval=N
  // (&deny=1 to deny). The page only points; deciding is done here, with this session.
  const asked = new URLSearchParams(location.search);
  let askedDone = !/^\d{1,15}$/.test(asked.get("approval") || "");
  function focusAsked() {
    if (askedDone) return;
    askedDone = true;
    const id = Number(asked.get("approval"));
    const card = approvalCards.get(id);
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
  function markWaiting(row, a) {
    if (!row.waiting) {
      row.waiting = el("a", "waiting", "◆ waiting for you");
      row.waiting.href = "#approvals";
      row.root.querySelector(".top").append(row.waiting);
    }
    row.waiting.hidden = !a.waiting;
    row.waiting.title = a.waiting ? `${a.waiting} approval(s) from ${a.name} wait for your decision` : "";
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
      const msg = el("p", "msg");
      msg.setAttribute("role", "status");
      const revoke = button("danger", "revoke");
      revoke.addEventListener("click", () => act(revoke, msg, `api/rules/${r.id}/revoke`, {}, $("rules-msg")));
      head.append(" ", revoke);
      item.append(head, el("pre", "tool-input", r.input_pretty ?? r.input_json), msg);
      return item;
    }));
    $("rules-empty").hidden = active.length > 0;
  }

  // Pending items never change, only come and go: keep the cards (and what is typed in them).
  function keyed(cards, list, items, build) {
    const ids = new Set(items.map((x) => x.id));
    for (const [id, card] of cards) if (!ids.has(id)) { card.remove(); cards.delete(id); }
    for (const item of items) {
      if (!cards.has(item.id)) { const c = build(item); cards.set(item.id, c); list.append(c); }
    }
  }

  // ---------- questions ----------
  const questionCards = new Map();
  function questionCard(q) {
    const card = el("article", "question");
    card.dataset.question = q.id;
    const head = el("header");
    head.append(el("b", "id", `#${q.id}`), el("span", "who", q.asker), el("span", "dim", " asks · "), ago(q.created_at));
    const form = el("form", "answer"), msg = el("p", "msg");
    msg.setAttribute("role", "status");
    let read;
    if (!q.options) {
      const text = el("textarea");
      text.rows = 2;
      text.placeholder = "your answer";
      text.setAttribute("aria-label", `answer to #${q.id}`);
      form.append(text);
      read = () => text.value;
    } else {
      const type = q.multi ? "checkbox" : "radio";
      const boxes = q.options.map((opt) => {
        const label = el("label", "opt"), input = el("input");
        input.type = type;
        input.name = `q-${q.id}`;
        input.value = opt;
        label.append(input, " ", opt);
        form.append(label);
        return input;
      });
      const picked = () => boxes.filter((b) => b.checked).map((b) => b.value);
      read = q.multi ? picked : () => picked()[0] ?? null;
    }
    const send = button("", q.multi ? "answer (pick any)" : "answer", "submit");
    form.append(send);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(send, msg, `api/questions/${q.id}/answer`, { answer: read() }, $("questions-msg"));
    });
    card.append(head, el("p", "q", q.question), form, msg);
    return card;
  }
  function renderQuestions(data) {
    keyed(questionCards, $("question-list"), data.pending, questionCard);
    $("questions-empty").hidden = data.pending.length > 0;
    setCount("n-questions", data.pending.length, true);
    $("question-history").replaceChildren(...data.answered.map((q) => {
      const li = el("li");
      li.dataset.question = q.id;
      li.append(el("b", "id", `#${q.id}`), ` ${q.asker}: `, el("span", "q", q.question), " → ",
        el("span", "ans", answerText(q.answer)), ` · ${q.answered_by} · `, ago(q.answered_at));
      return li;
    }));
  }

  // ---------- message flow ----------
  const flow = $("flow-log"), seen = new Set();
  const atBottom = () => flow.scrollHeight - flow.scrollTop - flow.clientHeight < BOTTOM_SLACK;
  function place(key, ts, agents, cls, parts) {
    if (seen.has(key)) return;
    seen.add(key);
    const row = el("div", "fl " + cls);
    row.dataset.ts = ts;
    row.dataset.key = key;
    row.dataset.agents = " " + agents.join(" ") + " ";
    row.append(el("span", "ts", clock(ts)), ...parts);
    const filter = $("filter").value;
    row.hidden = Boolean(filter) && !row.dataset.agents.includes(` ${filter} `);
    const stick = atBottom();
    // Rows are ordered by time; almost all arrive last, so walk back from the end.
    let after = flow.lastElementChild;
    while (after && Number(after.dataset.ts) > ts) after = after.previousElementSibling;
    flow.insertBefore(row, after ? after.nextSibling : flow.firstChild);
    while (flow.childElementCount > MAX_FLOW) {
      seen.delete(flow.firstElementChild.dataset.key);
      flow.firstElementChild.remove();
    }
    if (stick) flow.scrollTop = flow.scrollHeight;
  }
  function addMessage(m) {
    const route = [el("span", "from", m.from), el("span", "arrow", " → "), el("span", "to", m.to), el("span", "mid", ` #${m.id}`)];
    if (m.kind === "event") {
      place(`m${m.id}`, m.created_at, [m.from, m.to], "k-event", [...route, el("div", "body", eventText(m))]);
    } else {
      // Long bodies come as previews (truncated, size); the whole one is `hive message <id>`.
      const text = m.truncated ? `${m.body}… (${m.size} bytes)` : m.body;
      place(`m${m.id}`, m.created_at, [m.from, m.to], "k-message", [...route, el("div", "body", text)]);
    }
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
      case "dead_letter":
        return `⚑ dead_letter #${p.message_id} ${p.from} → ${p.to} after ${p.attempts} tries: ${short(p.reason || "")}`;
      default:
        return `⚑ ${m.body} ${m.payload ? short(JSON.stringify(m.payload), 200) : ""}`;
    }
  }
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
      case "dead_letter_dropped": return [[ev.to], `✖ dead letter #${ev.id} to ${ev.to} dropped by ${ev.by}`];
      default: return [[], `· ${ev.type}`];
    }
  }
  function addEvent(ev) {
    const [agents, text] = describe(ev);
    place(`b${epoch}:${ev.seq}`, ev.ts, agents, `k-core t-${ev.type}`, [el("span", "core", "c0re "), el("span", "body", text)]);
  }
  const filterPath = () => `api/messages?limit=${FLOW_HISTORY}` + ($("filter").value ? `&agent=${encodeURIComponent($("filter").value)}` : "");
  const history = refresher(filterPath, (list) => list.forEach(addMessage));
  $("filter").addEventListener("change", () => {
    const f = $("filter").value;
    for (const row of flow.children) row.hidden = Boolean(f) && !row.dataset.agents.includes(` ${f} `);
    flow.scrollTop = flow.scrollHeight;
    history(); // older messages of that agent may not be loaded yet
  });

  // ---------- the send box ----------
  const sendForm = $("send-form"), body = $("send-body");
  sendForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = { to: $("send-to").value, body: body.value };
    const res = await act(sendForm.querySelector("button"), $("send-msg"), "api/send", fields);
    if (res.ok) body.value = "";
  });
  body.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendForm.requestSubmit(); }
  });

  // ---------- live ----------
  const refresh = {
    agents: refresher("api/agents", renderAgents),
    approvals: refresher("api/approvals", renderApprovals),
    questions: refresher("api/questions", renderQuestions),
    rules: refresher("api/rules", renderRules),
  };
  let agentsSoon = null;
  const soonAgents = () => { clearTimeout(agentsSoon); agentsSoon = setTimeout(refresh.agents, 1000); };
  const refreshAll = () => { refresh.agents(); refresh.approvals(); refresh.questions(); refresh.rules(); history(); };
  function handle(ev) {
    // Sections kept in their own scripts (dead_letters.js) hear every event too.
    document.dispatchEvent(new CustomEvent("hive:event", { detail: ev }));
    if (ev.type === "message") { addMessage(ev.message); soonAgents(); return; }
    addEvent(ev);
    if (ev.type.startsWith("agent_")) refresh.agents();
    else if (ev.type.startsWith("approval_")) { refresh.approvals(); refresh.agents(); } // "waiting for you"
    else if (ev.type.startsWith("rule_")) refresh.rules();
    else if (ev.type.startsWith("question_")) refresh.questions();
  }
  let source = null, epoch = "";
  function setLink(up) {
    $("link").textContent = up ? "● live" : "○ reconnecting";
    $("link").className = "link" + (up ? "" : " down");
  }
  function connect() {
    source = new EventSource("events");
    source.addEventListener("hello", (e) => {
      const hello = JSON.parse(e.data);
      epoch = hello.epoch;
      setLink(true);
      if (!hello.resumed) { // a new feed, or too far behind: start over
        refreshAll();
        document.dispatchEvent(new CustomEvent("hive:refetch"));
      }
    });
    source.onmessage = (e) => handle(JSON.parse(e.data));
    source.onerror = () => {
      setLink(false);
      // The browser retries by itself unless the answer was not an event stream at all.
      if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connect, 3000); }
    };
  }
  setInterval(() => {
    for (const n of document.querySelectorAll("[data-since]")) {
      const label = n.dataset.label ? n.dataset.label + " " : "";
      n.textContent = label + age(Number(n.dataset.since)) + (n.dataset.suffix || "");
    }
  }, 1000);
  // What the sections in their own scripts share with this one (loaded after it).
  window.hive = Object.freeze({ $, el, button, act, refresher, ago, short, setCount });
  connect();
})();
