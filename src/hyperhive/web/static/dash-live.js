// hyperhive dashboard: the live connection to the core's event bus (SSE "events"). The
// browser resumes a dropped feed with Last-Event-ID; a feed that is new or too far behind
// ("hello" with resumed false) asks every section to re-fetch ("hive:refetch").
// Bus events are handed out in batches ("hive:events", an array in arrival order), one per
// animation frame: a burst (agent_state for 200 agents, thousands of messages) is drawn
// once rather than once per event. A hidden tab gets no frames, so a timer stands in.
import { liveFeed } from "./common.js";

const LATEST_MS = 100, HIDDEN_MS = 250;
let epoch = "", queue = [], frame = 0, timer = 0;
// The feed's identity: bus sequence numbers are only unique within it.
export const feedEpoch = () => epoch;

function flush() {
  cancelAnimationFrame(frame);
  clearTimeout(timer);
  frame = timer = 0;
  const batch = queue;
  queue = [];
  if (batch.length) document.dispatchEvent(new CustomEvent("hive:events", { detail: batch }));
}

function schedule() {
  if (frame || timer) return;
  const visible = document.visibilityState === "visible";
  if (visible) frame = requestAnimationFrame(flush);
  // Also a timer when visible: a frame may be late (a busy or throttled renderer).
  timer = setTimeout(flush, visible ? LATEST_MS : HIDDEN_MS);
}

export function connect() {
  liveFeed({
    ready: "hello",
    on: {
      hello: (hello) => {
        flush(); // what came before belongs to the old epoch
        epoch = hello.epoch;
        if (!hello.resumed) document.dispatchEvent(new CustomEvent("hive:refetch"));
      },
    },
    onMessage: (ev) => { queue.push(ev); schedule(); },
  });
}
