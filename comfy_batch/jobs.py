"""Jobs from a CSV: one row, one run of an API-format workflow with some inputs changed.

Columns (a header row is required; empty cells keep the workflow's value):

- ``id``: the job's name (its output folder, its key in the manifest); unique. Without
  it, a row is keyed by its content and named after its line and instruction.
- ``image``: a local image file (relative to the CSV's folder unless absolute), uploaded
  and set on the workflow's one first-frame node: a Load Image node, or an AID Example
  Frame node (the bundled workflows' frame), which the prompt then replaces by a Load Image
  of the upload. Only files Pillow opens and checks as PNG, JPEG, WebP, GIF, BMP or TIFF are
  uploaded; rows naming anything else are refused.
- ``instruction``: set on every ``instruction``/``instructions`` input of the AID nodes;
  an input fed by a String primitive gets the text through that primitive.
- ``states``: future states, one a line in a quoted cell or separated by `` | ``; set on
  every ``states`` input of the AID nodes, replacing a link from Predict Future States.
- ``seed``: set on every ``noise_seed`` input (core Random Noise: the sampling's noise) and
  every ``seed`` input of the AID nodes (or the Int primitive feeding it); in the demo
  workflow that includes AID Demo Scene's seed, which picks the scene.
- ``NODE.INPUT``: any input of any node, NODE being the node's id (``"7"``), its title
  (``Karras Scheduler``, as in the workflow's ``_meta.title``) or its class
  (``KarrasScheduler``) when only one node has it. A path given to a Load Image node's
  ``image`` is uploaded like the ``image`` column.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_batch.names import safe_name

SHORTHANDS = ("image", "instruction", "states", "seed")
LOAD_IMAGE = "LoadImage"
# The extension's node for the frames shipped with it; an uploaded image replaces it by a
# Load Image (both give the IMAGE on output 0).
EXAMPLE_FRAME = "AIDExampleFrame"
FIRST_FRAME_NODES = (LOAD_IMAGE, EXAMPLE_FRAME)
# Primitive nodes whose "value" feeds a linked input: a shorthand edits them instead.
PRIMITIVES = {"PrimitiveString", "PrimitiveStringMultiline", "PrimitiveInt", "PrimitiveFloat"}
SHORTHAND_INPUTS = {
    "instruction": ("instruction", "instructions"),
    "states": ("states",),
    "seed": ("seed", "noise_seed"),
}
# Inputs a shorthand sets on any node, not only on the AID nodes.
ANY_NODE_INPUTS = {"noise_seed"}


# What ComfyUI's Load Image reads, as Pillow names the formats.
IMAGE_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF"}


class JobsError(ValueError):
    """The CSV or the workflow cannot be run; the message lists every problem found."""


@dataclass(frozen=True)
class Target:
    """One input of one node of the workflow."""

    node_id: str
    input_name: str


@dataclass
class Job:
    """One CSV row.

    Attributes:
        line: the row's line number in the CSV (for messages).
        key: manifest key (the ``id`` column, or a hash of the row).
        name: safe output-folder name.
        values: {target: value} to set, uploads not yet included.
        uploads: {target: local image path} to upload first.
        label: short text for progress lines.
    """

    line: int
    key: str
    name: str
    values: dict[Target, Any] = field(default_factory=dict)
    uploads: dict[Target, Path] = field(default_factory=dict)
    label: str = ""

    def prompt(self, workflow: dict, uploaded: dict[Target, str]) -> dict:
        """The workflow with this job's values (and uploaded image names) set."""
        prompt = copy.deepcopy(workflow)
        for target, value in {**self.values, **uploaded}.items():
            node = prompt[target.node_id]
            if node["class_type"] == EXAMPLE_FRAME and target in uploaded:
                node.update(class_type=LOAD_IMAGE, inputs={},
                            _meta={"title": "Load Image (the batch's image)"})
            node["inputs"][target.input_name] = value
        return prompt


def load_workflow(path: Path) -> dict:
    """An API-format workflow ({id: {class_type, inputs}}), refusing the UI format."""
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        raise JobsError(f"cannot read workflow {path}: {problem}") from None
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        raise JobsError(
            f"{path} is a UI-format workflow; the API needs the API format: in ComfyUI use "
            "Workflow > Export (API), or take the copy in workflows/api/"
        )
    if not isinstance(workflow, dict) or not workflow or not all(
        isinstance(node, dict) and "class_type" in node and isinstance(node.get("inputs"), dict)
        for node in workflow.values()
    ):
        raise JobsError(f"{path} is not an API-format workflow ({{id: {{class_type, inputs}}}})")
    return workflow


def image_problem(source: bytes | Path) -> str | None:
    """Why ``source`` (a file's bytes or its path) is not an image to upload, in Pillow's
    words, or None if it is one.

    Pillow (which ComfyUI itself needs) is imported here, so that the rest of the client
    stays standard library only.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            kind = image.format
            image.verify()
    except UnidentifiedImageError:
        return "not an image (Pillow does not recognise it)"
    except OSError as problem:
        if problem.errno is not None:
            return f"cannot read it ({problem.strerror})"
        return f"not a valid image ({_one_line(problem)})"
    except Exception as problem:  # Pillow raises many kinds for a broken file
        return f"not a valid image ({_one_line(problem)})"
    if kind not in IMAGE_FORMATS:
        return f"a {kind} file, not one of {', '.join(sorted(IMAGE_FORMATS))}"
    return None


def _one_line(problem: Exception) -> str:
    return " ".join(str(problem).split())[:200] or type(problem).__name__


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


class WorkflowTargets:
    """Finds the inputs CSV columns name."""

    def __init__(self, workflow: dict):
        self.workflow = workflow

    def describe(self, node_id: str) -> str:
        node = self.workflow[node_id]
        title = node.get("_meta", {}).get("title")
        return f"node {node_id} ({node['class_type']}{f', {title!r}' if title else ''})"

    def node(self, reference: str) -> str:
        """A node id from an id, a title or a class type."""
        if reference in self.workflow:
            return reference
        for attribute in ("title", "class_type"):
            matches = [
                node_id for node_id, node in self.workflow.items()
                if (node.get("_meta", {}).get("title") if attribute == "title"
                    else node["class_type"]) == reference
            ]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                listed = ", ".join(self.describe(m) for m in matches)
                raise KeyError(f"{len(matches)} nodes have the {attribute} {reference!r} "
                               f"({listed}); use the node id instead")
        known = "; ".join(self.describe(node_id) for node_id in self.workflow)
        raise KeyError(f"no node with id, title or class {reference!r}; the workflow has {known}")

    def column(self, column: str) -> Target:
        """``NODE.INPUT`` → its target (input names never contain a dot; titles may)."""
        reference, dot, input_name = column.rpartition(".")
        if not dot or not reference or not input_name:
            raise KeyError(f"column {column!r} is neither one of {', '.join(SHORTHANDS)}, 'id' "
                           "nor NODE.INPUT (node id, title or class, a dot, an input name)")
        node_id = self.node(reference)
        inputs = self.workflow[node_id]["inputs"]
        if input_name not in inputs:
            raise KeyError(f"{self.describe(node_id)} has no input {input_name!r}; its inputs: "
                           f"{', '.join(inputs)}")
        return Target(node_id, input_name)

    def shorthand(self, name: str) -> list[Target]:
        """Where a shorthand column goes (see the module docstring)."""
        if name == "image":
            loaders = [n for n, node in self.workflow.items()
                       if node["class_type"] in FIRST_FRAME_NODES]
            if len(loaders) != 1:
                listed = ", ".join(self.describe(n) for n in loaders) or "none"
                raise KeyError(f"the 'image' column needs exactly one Load Image or AID Example "
                               f"Frame node, the workflow has {len(loaders)} ({listed}); use "
                               "columns NODE.image of Load Image nodes instead")
            return [Target(loaders[0], "image")]
        targets: list[Target] = []
        for node_id, node in self.workflow.items():
            for input_name in SHORTHAND_INPUTS[name]:
                if input_name not in node["inputs"] or not (
                        node["class_type"].startswith("AID") or input_name in ANY_NODE_INPUTS):
                    continue
                value = node["inputs"][input_name]
                source = self.workflow.get(str(value[0])) if _is_link(value) else None
                if name != "states" and source is not None and \
                        source["class_type"] in PRIMITIVES and "value" in source["inputs"]:
                    target = Target(str(value[0]), "value")
                else:
                    target = Target(node_id, input_name)
                if target not in targets:
                    targets.append(target)
        if not targets:
            inputs = " or ".join(repr(i) for i in SHORTHAND_INPUTS[name])
            raise KeyError(f"the {name!r} column has nowhere to go: no node of the workflow "
                           f"has an input {inputs} it sets")
        return targets


def convert(value: str, current: Any) -> Any:
    """A CSV cell as the type of the value it replaces (bool, int, float or text)."""
    text = value.strip()
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {value!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if _is_link(current):  # replacing a link: a number if it reads as one, else text
        try:
            number = json.loads(text)
        except ValueError:
            return value
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) \
            else value
    return value


def states_text(cell: str) -> str:
    """"a | b" or "a\\nb" → "a\\nb"."""
    parts = re.split(r"\s+\|\s+|\r?\n", cell)
    return "\n".join(part.strip() for part in parts if part.strip())


def read_jobs(csv_path: Path, workflow: dict) -> list[Job]:
    """Every row of the CSV as a Job, or JobsError listing every bad column and row."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames or []
            rows = [(reader.line_num, row) for row in reader]
    except OSError as problem:
        raise JobsError(f"cannot read jobs file {csv_path}: {problem}") from None
    except UnicodeDecodeError as problem:
        raise JobsError(f"jobs file {csv_path} is not UTF-8 text (byte {problem.start}: "
                        f"{problem.reason}); save it as a UTF-8 CSV") from None
    if not header:
        raise JobsError(f"{csv_path} has no header row; the first line names the columns")

    targets = WorkflowTargets(workflow)
    problems: list[str] = []
    columns: dict[str, list[Target]] = {}
    for column in header:
        name = (column or "").strip()
        if name == "id":
            continue
        try:
            columns[column] = (targets.shorthand(name) if name in SHORTHANDS
                               else [targets.column(name)])
        except KeyError as problem:
            problems.append(f"column {column!r}: {problem.args[0]}")
    if problems:
        raise JobsError(f"{csv_path}: " + "\n  ".join(["columns do not fit the workflow:",
                                                      *problems]))

    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # blank line
        row_problems: list[str] = []
        job = Job(line=line, key="", name="")
        for column, column_targets in columns.items():
            cell = row.get(column)
            if cell is None or not cell.strip():
                continue
            shorthand = column.strip() if column.strip() in SHORTHANDS else None
            for target in column_targets:
                node = workflow[target.node_id]
                if node["class_type"] in FIRST_FRAME_NODES and target.input_name == "image":
                    path = Path(cell.strip()).expanduser()
                    path = path if path.is_absolute() else csv_path.parent / path
                    if not path.is_file():
                        row_problems.append(f"{column}: image file {str(path)!r} does not exist")
                    else:
                        problem = image_problem(path)
                        if problem:
                            row_problems.append(f"{column}: refusing to upload {str(path)!r}: "
                                                f"{problem}")
                    job.uploads[target] = path
                    continue
                text = states_text(cell) if shorthand == "states" else cell
                try:
                    job.values[target] = convert(text, node["inputs"][target.input_name])
                except ValueError as problem:
                    row_problems.append(f"{column}: {problem}")
        identifier = (row.get("id") or "").strip()
        content = json.dumps({k: v for k, v in row.items() if k}, sort_keys=True)
        job.key = identifier or "row-" + hashlib.sha256(content.encode()).hexdigest()[:16]
        instruction = (row.get("instruction") or "").strip()
        job.label = identifier or instruction[:40] or f"line {line}"
        job.name = safe_name(identifier) if identifier else safe_name(
            f"line{line:04d}_{instruction[:40]}" if instruction else f"line{line:04d}")
        if job.key in seen:
            if identifier:
                row_problems.append(f"id {identifier!r} is also used on line {seen[job.key]}")
            else:
                continue  # the same row twice: one job
        seen[job.key] = line
        names = {other.name for other in jobs}
        base, index = job.name, 2
        while job.name in names:  # two ids made the same safe name ("a/b", "a_b")
            job.name, index = f"{base}-{index}", index + 1
        if row_problems:
            problems.append(f"line {line}: " + "; ".join(row_problems))
        jobs.append(job)
    if problems:
        raise JobsError(f"{csv_path}: " + "\n  ".join(["bad rows:", *problems]))
    return jobs
