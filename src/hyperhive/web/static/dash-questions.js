// hyperhive dashboard: the questions section. Open ask_operator forms (free text, radio or
// checkbox) as cards that answer inline, and the answered ones as history.
import { $, act, ago, button, el, keyed, refresher, setCount, status } from "./common.js";

const cards = new Map();
export const answerText = (a) => (Array.isArray(a) ? a.join(", ") : String(a ?? ""));

export const refresh = refresher("api/questions", render);
export function onEvent(ev) {
  if (ev.type.startsWith("question_")) refresh();
}

// The answer's inputs in the form; returns how to read the answer back.
function inputs(form, q) {
  if (!q.options) {
    const text = el("textarea");
    text.rows = 2;
    text.placeholder = "your answer";
    text.setAttribute("aria-label", `answer to #${q.id}`);
    form.append(text);
    return () => text.value;
  }
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
  return q.multi ? picked : () => picked()[0] ?? null;
}

function questionCard(q) {
  const card = el("article", "question");
  card.dataset.question = q.id;
  card.id = `question-${q.id}`;  // where a notification's link lands
  const head = el("header");
  head.append(el("b", "id", `#${q.id}`), el("span", "who", q.asker), el("span", "dim", " asks · "), ago(q.created_at));
  const form = el("form", "answer"), msg = status();
  const read = inputs(form, q);
  const send = button("", q.multi ? "answer (pick any)" : "answer", "submit");
  form.append(send);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(send, msg, `api/questions/${q.id}/answer`, { answer: read() }, $("questions-msg"));
  });
  card.append(head, el("p", "q", q.question), form, msg);
  return card;
}

function render(data) {
  keyed(cards, $("question-list"), data.pending, questionCard);
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
