// hyperhive dashboard: a unified diff as text, each line coloured by what it is
// (used by the ApplyCommit cards and the workspace view).
import { el } from "./common.js";

export function diffView(text) {
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
