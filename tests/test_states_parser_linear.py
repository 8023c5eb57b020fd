"""The state parser on degenerate model output: linear time, bounded by the harness.

Runs in a child process so that a regression (a pattern that backtracks) fails the test
at the wall-clock limit instead of hanging the suite; the child measures its own CPU time,
which other jobs on a busy machine do not inflate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Line starts that make a label pattern try every way to share the spaces after them.
DEGENERATE_HEADS = [
    "State", "Step", "the initial state", "- State", "Initial", "Final state", "State #",
    "State 1", "State 1 (initial", "**State", "### 2.", "1", "(1", "[", "- ", "the", "#",
]
CHILD = """
import json, sys, time
from aid_model.states import parse_states
heads = json.loads(sys.argv[1])
run = 1_000_000 // len(heads)
answers = {
    "each head, then a long run of spaces": "\\n".join(h + " " * run + "!" for h in heads),
    "one line": " ".join(h + " " * run for h in heads) + "!",
    "tabs and odd spaces": "\\n".join(h + "\\t\\u00a0\\u2003" * (run // 3) + "x" for h in heads),
}
seconds = {}
for name, answer in answers.items():
    started = time.process_time()
    parsed = parse_states(answer, 3, "pour water")
    seconds[name] = time.process_time() - started
    assert len(parsed.states) == 3, parsed
print(json.dumps({"seconds": seconds, "sizes": {k: len(v) for k, v in answers.items()}}))
"""


def test_a_megabyte_of_degenerate_answer_parses_in_well_under_a_second() -> None:
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(DEGENERATE_HEADS)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parse_states did not finish 1 MB of degenerate text in 60 s (backtracking)")
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert all(size >= 1_000_000 for size in result["sizes"].values()), result["sizes"]
    for name, seconds in result["seconds"].items():
        assert seconds < 1.0, f"{name}: {seconds:.2f} s of CPU for 1 MB"


def test_labels_with_wide_spacing_still_read_as_labels() -> None:
    from aid_model.states import parse_states

    answer = "State   1 :   an empty glass\nState #  2 -  a full glass"
    assert parse_states(answer, 2, "x").states == ["an empty glass", "a full glass"]
    answer = "1.   Initial   state   (start) :   the cup is empty\n2. Final state: it is full"
    assert parse_states(answer, 2, "x").states == ["the cup is empty", "it is full"]
