// hyperhive dashboard: spend over time, one line per agent, drawn as inline SVG by the page
// itself (no library). Each agent's line climbs through its buckets with traffic (one point
// each, the running total since the window began); a hover on a point says its bucket.
import { clock, el, num } from "./common.js";
import { usd } from "./spend-form.js";

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 170, LEFT = 52, RIGHT = 8, TOP = 10, BOTTOM = 22, COLOURS = 8;

function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Each agent keeps its colour while the page lives, however the set of agents changes.
const colours = new Map();
const colourOf = (agent) => {
  if (!colours.has(agent)) colours.set(agent, colours.size % COLOURS);
  return colours.get(agent);
};

// `data`: the usage_series answer ({now, bucket, series: {agent: [[start, cost, tokens]]}}).
export function drawPlot(host, legend, data, since) {
  const names = Object.keys(data.series).filter((a) => data.series[a].length).sort();
  const end = data.now, start = Math.min(since, ...names.map((a) => data.series[a][0][0]));
  const lines = names.map((agent) => {
    let total = 0;
    return { agent, points: data.series[agent].map(([ts, cost, tokens]) => ({ ts, cost, tokens, total: (total += cost) })) };
  });
  const top = Math.max(0, ...lines.map((l) => l.points[l.points.length - 1].total)) || 0.01;
  // A point at the middle of its bucket, never past "now".
  const x = (ts) => LEFT + (Math.min(end, ts + data.bucket / 2) - start) / Math.max(1, end - start) * (W - LEFT - RIGHT);
  const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot" });
  root.append(svg("title", {}, names.length ? "spend over time per agent" : "no spend in this window"));
  axes(root, start, end, top, y);
  for (const { agent, points } of lines) {
    const c = colourOf(agent), g = svg("g", { class: `series s${c}`, "data-agent": agent });
    const path = points.map((p) => `${x(p.ts).toFixed(1)},${y(p.total).toFixed(1)}`).join(" ");
    g.append(svg("polyline", { points: path, class: "line" }));
    for (const p of points) {
      const dot = svg("circle", { cx: x(p.ts).toFixed(1), cy: y(p.total).toFixed(1), r: 3, class: "pt",
        "data-agent": agent, "data-ts": p.ts, "data-cost": p.cost, "data-tokens": p.tokens });
      dot.append(svg("title", {}, `${agent} ${clock(p.ts)}: ${usd(p.cost)} · ${num(p.tokens)} tokens (${usd(p.total)} in all)`));
      g.append(dot);
    }
    root.append(g);
  }
  host.replaceChildren(root);
  legend.replaceChildren(...lines.map(({ agent, points }) => {
    const item = el("span", `key s${colourOf(agent)}`);
    item.dataset.agent = agent;
    item.append(el("i", "swatch", "●"), ` ${agent} ${usd(points[points.length - 1].total)}`);
    return item;
  }));
  return lines.reduce((n, l) => n + l.points.length, 0);
}

function axes(root, start, end, top, y) {
  const base = H - BOTTOM;
  root.append(
    svg("line", { x1: LEFT, y1: base, x2: W - RIGHT, y2: base, class: "axis" }),
    svg("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: base, class: "axis" }),
    svg("line", { x1: LEFT, y1: y(top / 2), x2: W - RIGHT, y2: y(top / 2), class: "grid" }),
    svg("text", { x: LEFT - 4, y: TOP + 8, class: "tick end" }, usd(top)),
    svg("text", { x: LEFT - 4, y: y(top / 2) + 4, class: "tick end" }, usd(top / 2)),
    svg("text", { x: LEFT - 4, y: base, class: "tick end" }, "$0"),
  );
  // The time of day every quarter of the window, and "now" at its end.
  for (let i = 0; i <= 4; i++) {
    const at = start + ((end - start) * i) / 4, tx = LEFT + ((W - LEFT - RIGHT) * i) / 4;
    const label = i === 4 ? "now" : hhmm(at), cls = i === 0 ? "tick" : i === 4 ? "tick end" : "tick mid";
    root.append(svg("text", { x: tx, y: H - 6, class: cls }, label));
  }
}

const hhmm = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
