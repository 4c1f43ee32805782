// hyperhive dashboard: an agent's workspace branch as the core's mirror of it shows it: one
// line (branch, commits ahead, diffstat totals), the commits, the diffstat and the diff on
// demand. Loaded with each refresh of the agents (the core answers from a cache until the
// branch moves); the diff, up to 1 MiB, only while the view is open.
import { el } from "./common.js";
import { diffView } from "./dash-diff.js";

export function workBox(name) {
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
  // Its own loop rather than refresher(): an error answer is shown in the box, not logged.
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

// `load`: fetch the view now (an unfolded row); a folded one fetches when it unfolds.
export function updateWork(box, ws, load = true) {
  box.root.hidden = !ws;
  if (ws && load) box.load();
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
