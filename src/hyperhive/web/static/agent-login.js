// hyperhive agent page: logging the engine in, with an API key or a Claude subscription's
// setup-token flow. A secret never stays in the page longer than its request; the hive's
// core keeps it (for this agent, or for the whole hive when the box is ticked), never the
// agent's container.
import { $, post, say } from "./common.js";

const loginMsg = (answer) => say($("login-msg"), answer);
const forHive = () => $("login-hive").checked;

// `changed` re-reads the agent's status once a login was tried.
export function start(changed) {
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("key");
    const key = input.value;
    input.value = "";
    if (!key.trim()) return loginMsg({ ok: false, message: "paste an API key first" });
    loginMsg(await post("api/login/key", { key, hive: forHive() }));
    changed();
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
    const answer = await post("api/login/setup-token/finish", { code, hive: forHive() });
    loginMsg(answer);
    if (answer.ok) $("setup").hidden = true;
    changed();
  });
}
