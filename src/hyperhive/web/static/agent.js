// hyperhive agent page: live tail over SSE, prompt, state badge, login.
// Plain JS, no build step. Everything from the agent goes in via textContent, never HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="hive-csrf"]').content;
  const log = $("log"), pill = $("pill"), badge = $("badge"), cancelBtn = $("cancel");
  const TRUNCATE = 600, MAX_LINES = 12, MAX_EVENTS = 3000, BOTTOM_SLACK = 24;
  let lastId = 0, unseen = 0, skew = 0;
  let status = { state: "offline", since: Date.now() / 1000, reason: null, needs_login: false };

  // ---------- rendering ----------
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
  const num = (n) => (n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n));

  // A long body shows its head and a button to toggle the rest, so one tool result
  // cannot push the whole conversation off screen.
  function head(text) {
    const lines = text.split("\n");
    const short = lines.length > MAX_LINES ? lines.slice(0, MAX_LINES).join("\n") : text;
    return short.length > TRUNCATE ? short.slice(0, TRUNCATE) : short;
  }
  function body(text, cls) {
    const wrap = el("div");
    const pre = el("pre", cls, text);
    wrap.append(pre);
    const short = head(text);
    if (short.length < text.length) {
      const label = `▸ show all (${text.length} chars)`;
      pre.textContent = short + "…";
      const more = el("button", "more", label);
      more.type = "button";
      let open = false;
      more.addEventListener("click", () => {
        open = !open;
        pre.textContent = open ? text : short + "…";
        more.textContent = open ? "▴ show less" : label;
      });
      wrap.append(more);
    }
    return wrap;
  }

  function turnEnd(d) {
    const parts = [`└ turn ${d.turn ?? "?"} ${d.ok ? "done" : "failed"}`];
    if (d.cost_usd != null) parts.push(`$${Number(d.cost_usd).toFixed(4)}`);
    if (d.input_tokens != null || d.output_tokens != null)
      parts.push(`${num(d.input_tokens ?? 0)} in / ${num(d.output_tokens ?? 0)} out`);
    if (d.duration_ms != null) parts.push(`${(d.duration_ms / 1000).toFixed(1)}s`);
    if (d.error) parts.push(`error: ${d.error}`);
    return parts.join(" · ");
  }

  function changedSummary(d) {
    const c = d.counts || {};
    const parts = [["added", "+"], ["modified", "~"], ["removed", "-"]]
      .filter(([k]) => c[k]).map(([k, sign]) => `${sign}${c[k]} ${k}`);
    return parts.join(" · ") + (d.complete === false ? " (too many files to look at all)" : "");
  }
  function changedList(d) {
    const lines = [];
    for (const [k, sign] of [["added", "+"], ["modified", "~"], ["removed", "-"]]) {
      for (const p of d[k] || []) lines.push(`${sign} ${p}`);
      const more = ((d.counts || {})[k] || 0) - (d[k] || []).length;
      if (more > 0) lines.push(`${sign} … ${more} more`);
    }
    return lines.join("\n");
  }

  // Each kind: [css modifier, one-line head, optional long body]
  const kinds = {
    state: (d) => ["", `● ${d.state}${d.reason ? ` (${d.reason})` : ""}`],
    turn_start: (d) => [
      "",
      `┌ turn ${d.turn ?? "?"} · ${d.trigger === "operator" ? "operator" : `from ${d.from ?? "?"}`}` +
        (d.message_id != null ? ` · msg #${d.message_id}` : ""),
      d.prompt,
    ],
    turn_end: (d) => [d.ok ? "" : "error", turnEnd(d)],
    operator_prompt: (d) => ["", `operator> ${d.text ?? ""}`],
    command: (d) => [
      d.ok ? "" : "error",
      `/${d.name}${d.arg ? " " + d.arg : ""} → ${d.ok ? "ok" : "failed"}: ${d.message ?? ""}`,
    ],
    notice: (d) => [d.level || "info", `! ${d.text ?? ""}`],
    system: (d) => ["", `system ${d.subtype ?? ""}${d.model ? ` model=${d.model}` : ""}`],
    assistant: (d) => ["", d.text ?? ""],
    tool_use: (d) => ["", `⚙ ${d.name}`, JSON.stringify(d.input ?? {}, null, 1)],
    tool_result: (d) => [d.is_error ? "error" : "", `↳ result${d.is_error ? " (error)" : ""}`,
      typeof d.content === "string" ? d.content : JSON.stringify(d.content)],
    result: (d) => [d.is_error ? "error" : "", `result${d.is_error ? " (error)" : ""}: ${d.text ?? ""}`],
    files_changed: (d) => ["", `✎ /work: ${changedSummary(d)}`, changedList(d)],
    tool_approval: (d) => [/^den/.test(d.decision) ? "error" : "",
      `⚑ ${d.tool} ${d.approval != null ? `#${d.approval} ` : ""}${d.decision}${d.always ? " always" : ""}` +
        (d.message ? `: ${d.message}` : "")],
  };

  function renderEvent(ev) {
    const make = kinds[ev.kind];
    const [mod, head, long] = make ? make(ev.data || {}) : ["", ev.kind, JSON.stringify(ev.data)];
    const row = el("div", `ev k-${make ? ev.kind : "other"}${mod ? " " + mod : ""}`);
    row.dataset.id = ev.id;
    row.append(el("span", "ts", clock(ev.ts)), el("span", "tag body", head));
    if (long) row.append(body(String(long)));
    return row;
  }

  // ---------- sticky-bottom scrolling ----------
  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight <= BOTTOM_SLACK;
  const toBottom = () => { log.scrollTop = log.scrollHeight; };
  function setUnseen(n) {
    unseen = n;
    pill.textContent = `↓ ${n} new`;
    pill.hidden = n === 0;
  }
  function append(row, counts) {
    const stick = atBottom();
    log.append(row);
    while (log.childElementCount > MAX_EVENTS) log.firstElementChild.remove();
    if (stick) toBottom();
    else if (counts) setUnseen(unseen + 1);
  }
  log.addEventListener("scroll", () => { if (unseen && atBottom()) setUnseen(0); });
  pill.addEventListener("click", () => { toBottom(); setUnseen(0); });

  function local(text, ok) {
    const row = el("div", `ev k-local${ok ? "" : " error"}`);
    row.append(el("span", "ts", clock(Date.now() / 1000)), el("span", "tag body", text));
    append(row, false);
  }

  // ---------- tool uses waiting for the operator ----------
  // Shown here, decided on the dashboard: this page is served by the agent itself, so its
  // buttons are only links to the dashboard, where the operator's own session decides.
  const waitingTools = new Map(); // approval id → its tool_approval data
  const waitPanel = el("section", "panel tool-waits");
  waitPanel.id = "tool-waits";
  waitPanel.hidden = true;
  log.before(waitPanel);
  const origin = (raw) => {
    try {
      const u = new URL(raw);
      return /^https?:$/.test(u.protocol) ? u.origin + "/" : null;
    } catch { return null; }
  };
  // The dashboard's address (no key in it) comes with the dashboard's link to this page.
  function dashboard() {
    const given = origin(new URLSearchParams(location.search).get("dashboard") || "");
    try {
      if (given) localStorage.setItem("hive-dashboard", given);
      const kept = origin(localStorage.getItem("hive-dashboard") || "");
      if (kept) return kept;
    } catch { if (given) return given; }
    // The dashboard links this page under the other loopback name; the default port.
    return `http://${location.hostname === "localhost" ? "127.0.0.1" : "localhost"}:7000/`;
  }
  function noteTool(d) {
    if (typeof d.approval !== "number") return;
    if (d.decision === "pending") waitingTools.set(d.approval, d);
    else waitingTools.delete(d.approval);
    const base = dashboard();
    const items = [...waitingTools.values()].map((w) => {
      const item = el("div", "tool-wait");
      item.dataset.approval = w.approval;
      const link = (cls, text, query) => {
        const a = el("a", `btn ${cls}`, text);
        a.href = `${base}?${query}`;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        return a;
      };
      item.append(el("div", "tool-head", `#${w.approval} ${w.tool} · waiting for the operator`),
        el("pre", "tool-input", JSON.stringify(w.input ?? {}, null, 2)),
        link("approve", "◆ approve on the dashboard ↗", `approval=${w.approval}`), " ",
        link("danger", "✖ deny on the dashboard ↗", `approval=${w.approval}&deny=1`));
      return item;
    });
    waitPanel.replaceChildren(el("h2", null, "tool use waiting for you"), ...items);
    waitPanel.hidden = items.length === 0;
  }

  // ---------- status badge ----------
  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  function tick() {
    const state = status.state || "offline";
    badge.className = `badge ${state}`;
    badge.dataset.state = state;
    // "offline (login)", "backoff (upstream)": the reason's first word; all of it on hover.
    const why = status.reason ? ` (${String(status.reason).split(":")[0]})` : "";
    badge.textContent = `${state}${why} ${age(Date.now() / 1000 + skew - status.since)}`;
    badge.title = status.reason ? `reason: ${status.reason}` : "";
  }
  function applyStatus(s) {
    if (typeof s.now === "number") skew = s.now - Date.now() / 1000;
    status = { ...status, ...s };
    cancelBtn.hidden = status.state !== "thinking";
    const meta = [];
    if (status.model) meta.push(`model ${status.model}`);
    if (status.queued) meta.push(`${status.queued} queued`);
    if (status.session_id) meta.push(`session ${String(status.session_id).slice(0, 8)}`);
    $("meta").textContent = meta.join(" · ");
    $("login").hidden = !status.needs_login;
    tick();
  }
  setInterval(tick, 1000);
  const refreshStatus = () =>
    fetch("api/status", { cache: "no-store" }).then((r) => r.json()).then(applyStatus, () => {});

  // ---------- live tail ----------
  function connect() {
    const source = new EventSource("events");
    const linkEl = $("link");
    source.onopen = () => { linkEl.className = "link"; linkEl.textContent = "● live"; };
    source.onerror = () => { linkEl.className = "link down"; linkEl.textContent = "○ reconnecting"; };
    source.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (ev.id <= lastId) return; // a resume never repeats, but be sure
      lastId = ev.id;
      append(renderEvent(ev), true);
      if (ev.kind === "tool_approval") noteTool(ev.data || {});
      if (ev.kind === "state") applyStatus({ state: ev.data.state, since: ev.data.since, reason: ev.data.reason });
    };
    source.addEventListener("status", (msg) => applyStatus(JSON.parse(msg.data)));
  }

  // ---------- actions ----------
  async function post(path, fields) {
    try {
      const r = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Hive-CSRF": csrf },
        body: JSON.stringify(fields || {}),
        credentials: "same-origin",
      });
      const answer = await r.json().catch(() => ({ ok: false, message: `HTTP ${r.status}` }));
      return { ok: Boolean(answer.ok) && r.ok, message: String(answer.message ?? "") };
    } catch (err) {
      return { ok: false, message: `network error: ${err}` };
    }
  }

  const promptBox = $("prompt");
  async function sendPrompt() {
    const text = promptBox.value;
    if (!text.trim()) return;
    const answer = await post("api/prompt", { text });
    if (answer.ok) promptBox.value = "";
    const label = text.startsWith("/") ? text.trim().split("\n")[0] : "prompt";
    local(`» ${label} → ${answer.ok ? "ok" : "failed"}${answer.message ? ": " + answer.message : ""}`, answer.ok);
    toBottom();
    setUnseen(0);
  }
  $("prompt-form").addEventListener("submit", (e) => { e.preventDefault(); sendPrompt(); });
  promptBox.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendPrompt(); }
  });
  cancelBtn.addEventListener("click", async () => {
    const answer = await post("api/cancel");
    local(`» cancel → ${answer.message || (answer.ok ? "ok" : "failed")}`, answer.ok);
  });

  // ---------- login ----------
  const loginMsg = (answer) => {
    $("login-msg").textContent = answer.message;
    $("login-msg").className = `msg ${answer.ok ? "ok" : "bad"}`;
  };
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("key");
    const key = input.value;
    input.value = ""; // never keep a secret in the page longer than the request
    if (!key.trim()) return loginMsg({ ok: false, message: "paste an API key first" });
    loginMsg(await post("api/login/key", { key }));
    refreshStatus();
  });
  $("setup-start").addEventListener("click", async () => {
    const answer = await post("api/login/setup-token/start");
    loginMsg(answer);
    const url = (answer.message.match(/https:\/\/\S+/) || [])[0];
    if (!answer.ok || !url) return;
    const link = $("setup-url");
    link.href = url;
    link.textContent = url;
    $("setup").hidden = false;
    $("code").focus();
  });
  $("code-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("code");
    const code = input.value;
    input.value = "";
    if (!code.trim()) return loginMsg({ ok: false, message: "paste the code first" });
    const answer = await post("api/login/setup-token/finish", { code });
    loginMsg(answer);
    if (answer.ok) $("setup").hidden = true;
    refreshStatus();
  });

  tick();
  connect();
})();
