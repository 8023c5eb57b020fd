"""The state parser and the prompt template, on answers written the way real models answer."""

from __future__ import annotations

import random

import pytest

from aid_model.states import TEMPLATE_VERSION, build_prompt, parse_states

INSTRUCTION = "pour water into the glass"
FULL_GLASS = [
    "An empty glass stands on a wooden table next to a bottle of water.",
    "A hand tilts the bottle and water starts to flow into the glass.",
    "The glass is half full of water and the bottle is still tilted.",
    "The glass is full of water and the bottle stands upright beside it.",
]

# Answers in the forms LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision and Qwen2-VL give, each
# carrying the same four states.
WELL_FORMED = {
    "plain numbered list (as asked)": "\n".join(
        f"{number}. {state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
    "preamble, bold labels, closing remark": (
        "Sure! Here are the four states of the video:\n\n"
        f"1. **Initial state:** {FULL_GLASS[0]}\n"
        f"2. **Intermediate state 1:** {FULL_GLASS[1]}\n"
        f"3. **Intermediate state 2:** {FULL_GLASS[2]}\n"
        f"4. **Final state:** {FULL_GLASS[3]}\n\n"
        "These states show the glass being filled with water step by step."
    ),
    "bold label outside the colon": "\n".join(
        f"{number}. **{label}**: {state}"
        for number, (label, state) in enumerate(
            zip(["Initial State", "Pouring", "Half Full", "Final State"], FULL_GLASS, strict=True),
            1,
        )
    ),
    "State N: lines": "\n".join(
        f"State {number}: {state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
    "initial / intermediate / final labels": (
        f"Initial state: {FULL_GLASS[0]}\n"
        f"Intermediate state 1: {FULL_GLASS[1]}\n"
        f"Intermediate state 2: {FULL_GLASS[2]}\n"
        f"Final state: {FULL_GLASS[3]}"
    ),
    "bold headings, state on the next line": "\n\n".join(
        f"**State {number}: {title}**\n{state}"
        for number, (title, state) in enumerate(
            zip(["Initial", "Pouring begins", "Halfway", "Final"], FULL_GLASS, strict=True), 1
        )
    ),
    "markdown headings with bullets below": "\n".join(
        f"### {number}. {title}\n- {state}"
        for number, (title, state) in enumerate(
            zip(
                ["Initial State", "Intermediate State", "Intermediate State", "Final State"],
                FULL_GLASS,
                strict=True,
            ),
            1,
        )
    ),
    "bullets": "\n".join(f"- {state}" for state in FULL_GLASS),
    "unicode bullets and closing prose": (
        "\n".join(f"• {state}" for state in FULL_GLASS) + "\n\nLet me know if you need more."
    ),
    "parenthesised numbers": "\n".join(
        f"({number}) {state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
    "numbers with a closing parenthesis, quoted states": "\n".join(
        f'{number}) "{state}"' for number, state in enumerate(FULL_GLASS, 1)
    ),
    "whole list on one line": " ".join(
        f"{number}. {state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
    "Step N - with a dash": "\n".join(
        f"Step {number} - {state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
    "inside a code fence": "```\n"
    + "\n".join(f"{number}. {state}" for number, state in enumerate(FULL_GLASS, 1))
    + "\n```",
    "Windows line ends and tabs": "\r\n".join(
        f"{number}.\t{state}" for number, state in enumerate(FULL_GLASS, 1)
    ),
}


@pytest.mark.parametrize("answer", WELL_FORMED.values(), ids=WELL_FORMED.keys())
def test_well_formed_answers_give_the_four_states_without_warnings(answer: str) -> None:
    parsed = parse_states(answer, 4, fallback=INSTRUCTION)
    assert parsed.states == FULL_GLASS
    assert parsed.warnings == []
    assert parsed.num_found == 4 and not parsed.used_fallback


def test_wrapped_continuation_line_joins_its_item() -> None:
    answer = (
        "1. An empty glass stands on a table.\n"
        "   A bottle of water is next to it.\n"
        "2. Water flows into the glass.\n"
        "3. The glass is full."
    )
    assert parse_states(answer, 3, INSTRUCTION).states == [
        "An empty glass stands on a table. A bottle of water is next to it.",
        "Water flows into the glass.",
        "The glass is full.",
    ]


def test_a_number_inside_a_sentence_is_not_a_list_marker() -> None:
    answer = (
        "1. A 1.5 litre bottle stands by an empty glass.\n"
        "2. The bottle, tilted 45 degrees, pours.\n"
        "3. The glass is full."
    )
    assert parse_states(answer, 3, INSTRUCTION).states == [
        "A 1.5 litre bottle stands by an empty glass.",
        "The bottle, tilted 45 degrees, pours.",
        "The glass is full.",
    ]


# --- more or fewer states than asked ----------------------------------------------------


def numbered(count: int) -> str:
    return "\n".join(f"{number}. The scene at moment {number}." for number in range(1, count + 1))


def test_more_states_keep_s_evenly_spread_with_first_and_last() -> None:
    parsed = parse_states(numbered(20), 4, INSTRUCTION)
    assert parsed.states == [
        "The scene at moment 1.",
        "The scene at moment 7.",
        "The scene at moment 14.",
        "The scene at moment 20.",
    ]
    assert parsed.num_found == 20
    assert parsed.warnings == ["the answer had 20 states, 4 wanted; kept 1, 7, 14, 20"]


def test_one_more_state_drops_a_middle_one() -> None:
    states = parse_states(numbered(5), 4, INSTRUCTION).states
    assert states[0] == "The scene at moment 1." and states[-1] == "The scene at moment 5."
    assert len(set(states)) == 4


def test_fewer_states_repeat_to_fill_with_a_warning() -> None:
    parsed = parse_states(numbered(2), 4, INSTRUCTION)
    assert parsed.states == ["The scene at moment 1."] * 2 + ["The scene at moment 2."] * 2
    assert parsed.warnings == [
        "the answer had only 2 states, 4 wanted; repeated to fill: 1, 1, 2, 2"
    ]


def test_one_state_asked_keeps_the_final_state() -> None:
    parsed = parse_states(numbered(4), 1, INSTRUCTION)
    assert parsed.states == ["The scene at moment 4."]


def test_two_states_asked_keep_start_and_end() -> None:
    assert parse_states(numbered(4), 2, INSTRUCTION).states == [
        "The scene at moment 1.",
        "The scene at moment 4.",
    ]


def test_unnumbered_lines_are_taken_as_states_with_a_warning() -> None:
    answer = "Here is what happens:\n" + "\n".join(FULL_GLASS)
    parsed = parse_states(answer, 4, INSTRUCTION)
    assert parsed.states == FULL_GLASS
    assert parsed.warnings == ["the answer had no numbered list; took its 4 lines as states"]


# --- nothing usable: the instruction stands in -------------------------------------------

UNUSABLE = {
    "empty": "",
    "whitespace": " \n\t\n ",
    "one prose line": "The glass will be filled with water from the bottle.",
    "a refusal": "I'm sorry, but I can't predict the future of this image.",
    "placeholders echoed from the prompt": "1. ...\n2. ...\n3. ...\n4. ...",
    "bare markers": "1.\n2.\n3.\n4.",
    "labels without text": "Initial state:\nIntermediate state:\nFinal state:",
    "random words (a random model)": "hand pour in hand drawer pen",
    "emoji only": "🥛 💧 🥛",
    "markdown rule and bold nothing": "---\n****\n***",
}


@pytest.mark.parametrize("answer", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_answers_fall_back_to_the_instruction(answer: str) -> None:
    parsed = parse_states(answer, 4, fallback=INSTRUCTION)
    assert parsed.states == [INSTRUCTION] * 4
    assert parsed.used_fallback
    assert (
        len(parsed.warnings) == 1 and "using the instruction for all 4 states" in parsed.warnings[0]
    )


def test_fallback_warning_quotes_the_answer() -> None:
    parsed = parse_states("I cannot help with that.", 3, INSTRUCTION)
    assert "'I cannot help with that.'" in parsed.warnings[0]


@pytest.mark.parametrize("answer", [None, 42, b"1. bytes"], ids=["None", "int", "bytes"])
def test_non_text_answers_fall_back(answer: object) -> None:
    assert parse_states(answer, 2, INSTRUCTION).states == [INSTRUCTION] * 2


# --- unicode ------------------------------------------------------------------------------


def test_full_width_numbers_and_chinese_states() -> None:
    answer = "１．玻璃杯是空的。\n２．水开始倒进杯子。\n３．杯子半满。\n４．杯子装满了水。"
    assert parse_states(answer, 4, INSTRUCTION).states == [
        "玻璃杯是空的。",
        "水开始倒进杯子。",
        "杯子半满。",
        "杯子装满了水。",
    ]


def test_zero_width_characters_and_odd_spaces_are_removed() -> None:
    answer = "1.\u200b An\u00a0empty glass.\n2. A\u2003full\ufeff glass."
    assert parse_states(answer, 2, INSTRUCTION).states == ["An empty glass.", "A full glass."]


def test_emoji_and_accents_survive_inside_states() -> None:
    answer = "1. Un verre vide 🥛 sur la table.\n2. Le verre est plein d'eau — fini."
    assert parse_states(answer, 2, INSTRUCTION).states == [
        "Un verre vide 🥛 sur la table.",
        "Le verre est plein d'eau — fini.",
    ]


def test_random_text_never_raises_and_always_gives_s_states() -> None:
    alphabet = [*"abc XYZ 0123456789.:)-*•#\n\t**__``()[]\"'“”", "１．", "é", "🥛", "\u200b"]
    rng = random.Random(0)
    for _ in range(300):
        answer = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        num_states = rng.randrange(1, 7)
        parsed = parse_states(answer, num_states, INSTRUCTION)
        assert len(parsed.states) == num_states
        assert all(isinstance(state, str) and state.strip() for state in parsed.states)


def test_bad_num_states_is_the_callers_error() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        parse_states("1. a", 0, INSTRUCTION)


# --- the prompt ---------------------------------------------------------------------------


def test_prompt_asks_for_exactly_s_numbered_lines() -> None:
    prompt = build_prompt("pour water\ninto the glass", 4)
    assert '"pour water into the glass"' in prompt  # a newline cannot break the format
    assert "exactly 4 numbered lines" in prompt
    assert "2 intermediate moments" in prompt
    assert prompt.endswith("1. ...\n2. ...\n3. ...\n4. ...")


@pytest.mark.parametrize(
    ("num_states", "moments"),
    [
        (1, "the end of the video"),
        (2, "the start (this frame) and the end"),
        (3, "1 intermediate moment while"),
    ],
)
def test_prompt_names_the_moments_for_any_s(num_states: int, moments: str) -> None:
    assert moments in build_prompt("open the drawer", num_states)


def test_template_version_is_set() -> None:
    assert TEMPLATE_VERSION.startswith("aid-states-v")
