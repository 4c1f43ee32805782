// hyperhive dashboard: the agents' filter box. Every word typed must appear in an agent's
// name, role, model, state or group. "/" focuses the box from anywhere but a field being
// typed in; Escape clears it, and a second Escape leaves it.
import { $ } from "./common.js";

let words = [], changed = () => {};
export const filtering = () => words.length > 0;
export const matches = (hay) => words.every((w) => hay.includes(w));
// A field where "/" and Escape are the operator's text, not the page's keys.
export const typingIn = (node) =>
  node instanceof HTMLElement && (node.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(node.tagName));

function apply() {
  words = $("agent-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  changed();
}

export function setFilter(text) {
  $("agent-filter").value = text;
  apply();
}

export function startFilter(onChange) {
  changed = onChange;
  const box = $("agent-filter");
  box.addEventListener("input", apply);
  box.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    e.preventDefault();
    if (box.value) setFilter("");
    else box.blur();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (typingIn(e.target) || e.defaultPrevented) return;
    e.preventDefault();
    box.focus();
    box.select();
  });
  if (box.value) apply(); // kept by the browser across a reload
}
