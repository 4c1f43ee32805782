"""ask_operator questions: the three forms, their checks, and answering once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive.core.db import Database, open_store
from hyperhive.core.questions import (
    MAX_PENDING_PER_ASKER,
    AlreadyAnswered,
    BadAnswer,
    BadQuestion,
    Question,
    QuestionBook,
    UnknownQuestion,
    validate_answer,
    validate_question,
)
from hyperhive.errors import BadName, BadRequest, QuotaExceeded

pytestmark = pytest.mark.usefixtures("both_stores")

COLOURS = ("red", "green", "blue")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def question(options: tuple[str, ...] | None = None, multi: bool = False) -> Question:
    return Question(3, "hm1nd", "which?", options, multi, None, None, 1.0, None)


@pytest.fixture
def db(store_target: str | Path) -> str | Path:
    return store_target


@pytest.fixture
def conn(db: Path) -> Iterator[Database]:
    connection = open_store(db)
    yield connection
    connection.close()


@pytest.fixture
def book(conn: Database) -> QuestionBook:
    return QuestionBook(conn, Clock())


# -- validate_question ----------------------------------------------------------


def test_a_question_without_options_is_a_free_text_question() -> None:
    assert validate_question("why?", None, False) == ("why?", None, False)


def test_options_become_a_tuple_in_the_given_order() -> None:
    assert validate_question("pick", ["b", "a"], True) == ("pick", ("b", "a"), True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", None, False), "non-empty string"),
        ((" \n", None, False), "non-empty string"),
        ((None, None, False), "non-empty string"),
        (("q" * 4001, None, False), "4001 characters; the limit is 4000"),
        (("q", None, True), "multi needs options"),
        (("q", None, "yes"), "multi must be true or false"),
        (("q", "a,b", False), "options must be a list"),
        (("q", ["only"], False), "give 2 to 20 options (got 1)"),
        (("q", [], False), "give 2 to 20 options (got 0)"),
        (("q", [str(i) for i in range(21)], False), "give 2 to 20 options (got 21)"),
        (("q", ["a", ""], False), "option 1 must be a non-empty string"),
        (("q", ["a", 2], False), "option 1 must be a non-empty string"),
        (("q", ["a", "o" * 201], False), "option 1 is 201 characters; the limit is 200"),
        (("q", ["a", "b", "a"], False), "option 2 ('a') is given twice"),
    ],
)
def test_a_malformed_question_is_refused_with_the_reason(
    args: tuple[object, object, object], message: str
) -> None:
    with pytest.raises(BadQuestion, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        validate_question(*args)
    assert e.value.code == "bad_question"


def test_the_limits_themselves_are_allowed() -> None:
    options = [f"{i}" + "o" * 198 for i in range(20)]
    assert validate_question("q" * 4000, options, False)[1] == tuple(options)


# -- validate_answer ------------------------------------------------------------


def test_a_free_text_answer_is_any_non_empty_string() -> None:
    assert validate_answer(question(), "because") == "because"
    assert validate_answer(question(), "x" * 10_000) == "x" * 10_000


@pytest.mark.parametrize("answer", ["", "   ", None, ["a"], 5, "x" * 10_001])
def test_a_bad_free_text_answer_is_refused(answer: object) -> None:
    with pytest.raises(BadAnswer):
        validate_answer(question(), answer)


def test_a_radio_answer_is_exactly_one_option() -> None:
    assert validate_answer(question(COLOURS), "green") == "green"


@pytest.mark.parametrize("answer", ["purple", "", ["green"], None, "Green"])
def test_a_radio_answer_that_is_not_one_option_is_refused(answer: object) -> None:
    with pytest.raises(BadAnswer, match=r"question 3 wants exactly one of \['red', 'green'"):
        validate_answer(question(COLOURS), answer)


def test_a_checkbox_answer_comes_back_in_the_order_of_the_options() -> None:
    assert validate_answer(question(COLOURS, True), ["blue", "red"]) == ("red", "blue")
    assert validate_answer(question(COLOURS, True), ("green",)) == ("green",)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "wants a list of one or more of"),
        ("red", "wants a list of one or more of"),
        (None, "wants a list of one or more of"),
        (["red", "purple"], "'purple' is not one of"),
        (["red", 1], "1 is not one of"),
        (["red", "red"], "each option may be picked once"),
    ],
)
def test_a_bad_checkbox_answer_is_refused(answer: object, message: str) -> None:
    with pytest.raises(BadAnswer, match=message) as e:
        validate_answer(question(COLOURS, True), answer)
    assert e.value.code == "bad_answer"


# -- QuestionBook ---------------------------------------------------------------


def test_an_asked_question_is_pending_until_answered(book: QuestionBook) -> None:
    asked = book.ask("hm1nd", "deploy now?", ["yes", "no"], False)
    assert asked.id == 1
    assert asked.form == "radio"
    assert book.pending() == [asked]
    answered = book.answer(asked.id, "yes", "operator")
    assert (answered.answer, answered.answered_by) == ("yes", "operator")
    assert answered.answered_at == 1_700_000_002.0
    assert book.pending() == []
    assert book.get(asked.id) == answered


def test_every_form_survives_closing_and_reopening_the_database(db: Path) -> None:
    first = open_store(db)
    book = QuestionBook(first, Clock())
    text = book.answer(book.ask("hm1nd", "why?", None, False).id, "because", "operator")
    radio = book.answer(book.ask("hm1nd", "one", ["a", "b"], False).id, "b", "operator")
    boxes = book.answer(book.ask("alice", "some", ["a", "b", "c"], True).id, ["c", "a"], "operator")
    waiting = book.ask("hm1nd", "later?", ["x", "y"], True)
    first.close()
    again = QuestionBook(open_store(db))
    assert [again.get(q.id) for q in (text, radio, boxes)] == [text, radio, boxes]
    assert again.get(boxes.id).answer == ("a", "c")
    assert again.pending() == [waiting]


def test_a_question_is_answered_once_and_the_first_answer_is_kept(book: QuestionBook) -> None:
    asked = book.ask("hm1nd", "colour?", list(COLOURS), False)
    book.answer(asked.id, "red", "operator")
    with pytest.raises(AlreadyAnswered) as raised:
        book.answer(asked.id, "blue", "operator")
    assert raised.value.code == "already_answered"
    assert raised.value.message == (
        "question 1 was already answered by operator at 2023-11-14 22:13:22Z"
    )
    assert book.get(asked.id).answer == "red"


def test_a_second_book_on_another_connection_cannot_answer_again(db: Path) -> None:
    one, two = open_store(db), open_store(db)
    try:
        first, second = QuestionBook(one), QuestionBook(two)
        asked = first.ask("hm1nd", "go?", None, False)
        first.answer(asked.id, "yes", "operator")
        with pytest.raises(AlreadyAnswered):
            second.answer(asked.id, "no", "operator")
    finally:
        one.close()
        two.close()


def test_a_bad_answer_changes_nothing(book: QuestionBook) -> None:
    asked = book.ask("hm1nd", "colour?", list(COLOURS), True)
    with pytest.raises(BadAnswer):
        book.answer(asked.id, ["mauve"], "operator")
    assert book.get(asked.id) == asked
    assert book.pending() == [asked]


def test_a_bad_question_stores_nothing(book: QuestionBook) -> None:
    with pytest.raises(BadQuestion):
        book.ask("hm1nd", "pick", ["one"], False)
    assert book.pending() == []


def test_the_asker_must_be_an_agent(book: QuestionBook) -> None:
    with pytest.raises(BadName):
        book.ask("Nobody Here", "q", None, False)


def test_an_unknown_question_is_a_clear_error(book: QuestionBook) -> None:
    with pytest.raises(UnknownQuestion, match="no question with id 9"):
        book.answer(9, "x", "operator")
    with pytest.raises(BadRequest, match="question id must be an integer"):
        book.get("9")


def test_answered_lists_the_newest_answers_first(book: QuestionBook) -> None:
    ids = [book.ask("hm1nd", f"q{i}", None, False).id for i in range(4)]
    for qid in (ids[2], ids[0], ids[3]):
        book.answer(qid, "ok", "operator")
    assert [q.id for q in book.answered(2)] == [ids[3], ids[0]]
    assert [q.id for q in book.answered(50)] == [ids[3], ids[0], ids[2]]
    with pytest.raises(BadRequest, match="limit"):
        book.answered(0)


def test_to_wire_names_the_form_and_lists_the_answer(book: QuestionBook) -> None:
    asked = book.ask("hm1nd", "which?", list(COLOURS), True)
    wire = book.answer(asked.id, ["blue", "red"], "operator").to_wire()
    assert wire == {
        "id": 1,
        "asker": "hm1nd",
        "question": "which?",
        "options": ["red", "green", "blue"],
        "multi": True,
        "form": "checkbox",
        "answer": ["red", "blue"],
        "answered_by": "operator",
        "created_at": 1_700_000_001.0,
        "answered_at": 1_700_000_002.0,
    }
    assert book.ask("hm1nd", "why?", None, False).to_wire()["form"] == "text"


# -- the cap on open questions ----------------------------------------------------


def test_an_asker_with_too_many_open_questions_is_refused_until_one_is_answered(
    conn: Database,
) -> None:
    book = QuestionBook(conn, Clock(), max_pending=3)
    asked = [book.ask("hm1nd", f"question {i}?", None, False) for i in range(3)]
    with pytest.raises(QuotaExceeded, match="already has 3 questions waiting") as err:
        book.ask("hm1nd", "one too many?", None, False)
    assert err.value.code == "quota"
    assert len(book.pending()) == 3  # the refused question was not stored
    # Another asker has its own allowance.
    book.ask("alice", "mine?", None, False)
    book.answer(asked[0].id, "yes", "operator")
    assert book.ask("hm1nd", "now?", None, False).question == "now?"


def test_the_default_cap_on_open_questions_is_twenty(book: QuestionBook) -> None:
    for i in range(MAX_PENDING_PER_ASKER):
        book.ask("hm1nd", f"q{i}", None, False)
    with pytest.raises(QuotaExceeded, match="the limit is 20"):
        book.ask("hm1nd", "q20", None, False)
