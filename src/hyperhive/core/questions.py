"""``ask_operator``: questions an agent asks and the operator answers once.

Three forms, chosen by the asker:

- free text (``options`` is None): the answer is a non-empty string;
- radio (``options``, not ``multi``): the answer is exactly one option, as a string;
- checkbox (``options`` and ``multi``): the answer is a non-empty list of
  distinct options, returned in the order the options were given, so the
  asker sees the same order whatever order the boxes were ticked in.

The checks are pure functions; :class:`QuestionBook` stores questions in
sqlite and answers with a compare-and-set, so a question is answered once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hyperhive.core.db import Database, returned_id
from hyperhive.errors import BadRequest, ClientError, QuotaExceeded
from hyperhive.names import OPERATOR, validate_agent_name

MAX_QUESTION: Final = 4000
MAX_OPTION: Final = 200
MIN_OPTIONS: Final = 2
MAX_OPTIONS: Final = 20
MAX_ANSWER: Final = 10_000
MAX_LIST: Final = 1000
# An operator answers questions one by one; more than this many open from one asker is a
# loop, not a conversation, and each one is a row and a line on the dashboard.
MAX_PENDING_PER_ASKER: Final = 20
COLUMNS: Final = "id, asker, question, options, multi, answer, answered_by, created_at, answered_at"

Answer = str | tuple[str, ...]


class BadQuestion(ClientError):
    code = "bad_question"


class BadAnswer(ClientError):
    code = "bad_answer"


class UnknownQuestion(ClientError):
    code = "unknown_question"


class AlreadyAnswered(ClientError):
    code = "already_answered"


@dataclass(frozen=True, slots=True)
class Question:
    id: int
    asker: str
    question: str
    options: tuple[str, ...] | None
    multi: bool
    answer: Answer | None
    answered_by: str | None
    created_at: float
    answered_at: float | None

    @property
    def form(self) -> str:
        if self.options is None:
            return "text"
        return "checkbox" if self.multi else "radio"

    def to_wire(self) -> dict[str, object]:
        return {
            "id": self.id,
            "asker": self.asker,
            "question": self.question,
            "options": None if self.options is None else list(self.options),
            "multi": self.multi,
            "form": self.form,
            "answer": list(self.answer) if isinstance(self.answer, tuple) else self.answer,
            "answered_by": self.answered_by,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
        }


def validate_question(
    question: object, options: object, multi: object
) -> tuple[str, tuple[str, ...] | None, bool]:
    """Check a question as asked; return ``(question, options, multi)`` normalised."""
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion("the question must be a non-empty string")
    if len(question) > MAX_QUESTION:
        raise BadQuestion(
            f"the question is {len(question)} characters; the limit is {MAX_QUESTION}"
        )
    if not isinstance(multi, bool):
        raise BadQuestion(f"multi must be true or false (got {multi!r})")
    if options is None:
        if multi:
            raise BadQuestion("multi needs options to choose from")
        return question, None, False
    if not isinstance(options, list | tuple):
        raise BadQuestion("options must be a list of strings, or null for a free-text answer")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise BadQuestion(
            f"give {MIN_OPTIONS} to {MAX_OPTIONS} options (got {len(options)}); "
            "for a free-text answer give none"
        )
    for i, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise BadQuestion(f"option {i} must be a non-empty string")
        if len(option) > MAX_OPTION:
            raise BadQuestion(f"option {i} is {len(option)} characters; the limit is {MAX_OPTION}")
        if option in options[:i]:
            raise BadQuestion(f"option {i} ({option!r}) is given twice")
    return question, tuple(options), multi


def validate_answer(question: Question, answer: object) -> Answer:
    """Check ``answer`` against the form of ``question``; return it normalised."""
    if question.options is None:
        if not isinstance(answer, str) or not answer.strip():
            raise BadAnswer(f"question {question.id} wants a non-empty text answer")
        if len(answer) > MAX_ANSWER:
            raise BadAnswer(f"the answer is {len(answer)} characters; the limit is {MAX_ANSWER}")
        return answer
    choices = question.options
    if not question.multi:
        if not isinstance(answer, str) or answer not in choices:
            raise BadAnswer(
                f"question {question.id} wants exactly one of {list(choices)!r} "
                f"(got {_show(answer)})"
            )
        return answer
    if not isinstance(answer, list | tuple) or not answer:
        raise BadAnswer(
            f"question {question.id} wants a list of one or more of {list(choices)!r} "
            f"(got {_show(answer)})"
        )
    for picked in answer:
        if not isinstance(picked, str) or picked not in choices:
            raise BadAnswer(f"{_show(picked)} is not one of {list(choices)!r}")
    if len(set(answer)) != len(answer):
        raise BadAnswer("each option may be picked once")
    return tuple(c for c in choices if c in answer)


class QuestionBook:
    def __init__(
        self,
        conn: Database,
        clock: Callable[[], float] = time.time,
        *,
        max_pending: int = MAX_PENDING_PER_ASKER,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._max_pending = max_pending

    def ask(self, asker: object, question: object, options: object, multi: object) -> Question:
        asker = validate_agent_name(asker)
        text, choices, is_multi = validate_question(question, options, multi)
        (open_now,) = self._conn.execute(
            "SELECT count(*) FROM questions WHERE asker = ? AND answered_at IS NULL", (asker,)
        ).fetchone()
        if open_now >= self._max_pending:
            raise QuotaExceeded(
                f"{asker} already has {open_now} questions waiting for the operator "
                f"(the limit is {self._max_pending}); wait for answers before asking more"
            )
        now = self._clock()
        cursor = self._conn.execute(
            "INSERT INTO questions (asker, question, options, multi, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (asker, text, None if choices is None else json.dumps(choices), is_multi, now),
        )
        return Question(returned_id(cursor), asker, text, choices, is_multi, None, None, now, None)

    def answer(self, question_id: object, answer: object, by: object) -> Question:
        """Answer once; a second answer is :class:`AlreadyAnswered`, the first kept."""
        if by != OPERATOR:
            by = validate_agent_name(by)
        assert isinstance(by, str)
        question = self.get(question_id)
        if question.answered_at is not None:
            raise _already_answered(question)
        value = validate_answer(question, answer)
        now = self._clock()
        cursor = self._conn.execute(
            "UPDATE questions SET answer = ?, answered_by = ?, answered_at = ? "
            "WHERE id = ? AND answered_at IS NULL",
            (json.dumps(value), by, now, question.id),
        )
        if cursor.rowcount != 1:  # someone answered between our read and write
            raise _already_answered(self.get(question.id))
        return Question(
            question.id, question.asker, question.question, question.options,
            question.multi, value, by, question.created_at, now,
        )  # fmt: skip

    def get(self, question_id: object) -> Question:
        if not isinstance(question_id, int) or isinstance(question_id, bool):
            raise BadRequest(f"question id must be an integer (got {question_id!r})")
        row = self._conn.execute(
            f"SELECT {COLUMNS} FROM questions WHERE id = ?", (question_id,)
        ).fetchone()
        if row is None:
            raise UnknownQuestion(f"no question with id {question_id}")
        return _from_row(row)

    def pending(self) -> list[Question]:
        """Unanswered questions, oldest first."""
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM questions WHERE answered_at IS NULL ORDER BY id"
        )
        return [_from_row(r) for r in rows]

    def answered(self, limit: int = 50) -> list[Question]:
        """The ``limit`` most recently answered questions, newest answer first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_LIST}")
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM questions WHERE answered_at IS NOT NULL "
            "ORDER BY answered_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [_from_row(r) for r in rows]


def _from_row(row: tuple[Any, ...]) -> Question:
    qid, asker, text, options, multi, answer, by, created, answered_at = row
    value: Answer | None = None
    if answer is not None:
        decoded = json.loads(answer)
        value = tuple(decoded) if isinstance(decoded, list) else decoded
    choices = None if options is None else tuple(json.loads(options))
    return Question(qid, asker, text, choices, bool(multi), value, by, created, answered_at)


def _already_answered(question: Question) -> AlreadyAnswered:
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(question.answered_at or 0))
    return AlreadyAnswered(
        f"question {question.id} was already answered by {question.answered_by} at {when}"
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
