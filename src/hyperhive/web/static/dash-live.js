// hyperhive dashboard: the live connection to the core's event bus (SSE "events"). The
// browser resumes a dropped feed with Last-Event-ID; a feed that is new or too far behind
// ("hello" with resumed false) asks every section to re-fetch ("hive:refetch"). Every bus
// event goes out as "hive:event" for the sections to pick what concerns them.
import { liveFeed } from "./common.js";

let epoch = "";
// The feed's identity: bus sequence numbers are only unique within it.
export const feedEpoch = () => epoch;

export function connect() {
  liveFeed({
    ready: "hello",
    on: {
      hello: (hello) => {
        epoch = hello.epoch;
        if (!hello.resumed) document.dispatchEvent(new CustomEvent("hive:refetch"));
      },
    },
    onMessage: (ev) => document.dispatchEvent(new CustomEvent("hive:event", { detail: ev })),
  });
}
