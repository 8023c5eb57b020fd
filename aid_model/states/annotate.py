"""Annotating many first frames with states, through the cache, resumably.

``annotate`` is the one loop: it hashes each frame, serves rows the cache already holds,
sends the rest to the model a batch at a time, and appends every new row to the cache
as soon as it exists. Killing it loses at most the batch in flight; running it again
with the same arguments continues where it stopped.

Datasets proper come with the training code; until then a dataset is a CSV file with a
header and two columns, ``image`` (a path, relative to the CSV's folder unless absolute)
and ``instruction``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aid_model.states.cache import CachedStates, StateCache, make_key
from aid_model.states.images import ImageInput, image_sha256, load_image

if TYPE_CHECKING:
    from aid_model.states.prompter import StatePrompter

CSV_COLUMNS = ("image", "instruction")


@dataclass(frozen=True)
class StateSample:
    """One first frame and its instruction. ``source`` names it in the cache and in errors."""

    image: ImageInput
    instruction: str
    source: str = ""


@dataclass
class AnnotationResult:
    """The rows for every sample, in sample order, and where they came from."""

    rows: list[CachedStates] = field(default_factory=list)
    cached: int = 0  # served from the cache file
    generated: int = 0  # written by the model in this run

    @property
    def fallbacks(self) -> int:
        """Rows whose answer held no states, so the instruction stands in for all of them."""
        return sum(row.used_fallback for row in self.rows)


def annotate(
    prompter: StatePrompter,
    samples: Sequence[StateSample],
    cache: StateCache,
    *,
    num_states: int = 4,
    batch_size: int = 4,
    progress: bool = True,
) -> AnnotationResult:
    """States for every sample, generating only those the cache lacks.

    Each generated row is appended (and flushed) to ``cache`` as soon as its batch is
    done. Samples repeating an (image, instruction) pair are generated once. With
    ``progress``, a tqdm bar on stderr counts samples, cached ones included.
    """
    from tqdm.auto import tqdm

    rows: list[CachedStates | None] = [None] * len(samples)
    pending: dict[tuple, list[int]] = {}  # cache key → sample indices waiting for it
    pending_frames: list[tuple[tuple, object, StateSample]] = []
    result = AnnotationResult()

    with tqdm(total=len(samples), desc="states", unit="frame", disable=not progress) as bar:

        def flush() -> None:
            if not pending_frames:
                return
            predictions = prompter.predict(
                [frame for _, frame, _ in pending_frames],
                [sample.instruction for _, _, sample in pending_frames],
                num_states,
                batch_size=batch_size,
            )
            for (key, _, sample), prediction in zip(pending_frames, predictions, strict=True):
                row = CachedStates(
                    image_sha256=key[0],
                    instruction=sample.instruction,
                    model_id=prompter.model_id,
                    num_states=num_states,
                    template_version=prompter.template_version,
                    states=prediction.states,
                    raw_text=prediction.raw_text,
                    num_found=prediction.num_found,
                    warnings=prediction.warnings,
                    source=sample.source,
                )
                cache.add(row)
                result.generated += 1
                for index in pending.pop(key):
                    rows[index] = _under_own_source(row, samples[index], cache)
                    bar.update(1)
            pending_frames.clear()

        for index, sample in enumerate(samples):
            frame = load_image(sample.image)
            key = make_key(
                image_sha256(frame),
                sample.instruction,
                prompter.model_id,
                num_states,
                prompter.template_version,
            )
            cached = cache.get(key)
            if cached is not None:
                rows[index] = _under_own_source(cached, sample, cache)
                result.cached += 1
                bar.update(1)
                continue
            if key in pending:
                pending[key].append(index)  # a repeat of a pair already in this batch
                continue
            pending[key] = [index]
            pending_frames.append((key, frame, sample))
            if len(pending_frames) >= batch_size:
                flush()
        flush()

    result.rows = [row for row in rows if row is not None]
    return result


def _under_own_source(row: CachedStates, sample: StateSample, cache: StateCache) -> CachedStates:
    """``row`` for ``sample``; when the sample has another source than the row (two samples
    sharing an image and instruction), an alias row with the same states is appended under
    the sample's own source, once, so joins by sample id find every sample."""
    if not sample.source or sample.source == row.source:
        return row
    alias = replace(row, source=sample.source)
    if not cache.has_source(row.key, sample.source):
        cache.add(alias)
    return alias


def read_csv_samples(path: str | Path) -> list[StateSample]:
    """The samples of a CSV dataset (columns ``image``, ``instruction``), every image checked.

    Raises before any model work if a column is missing, an instruction is empty or an
    image file does not exist, naming the CSV line, so a long run cannot fail halfway.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"dataset CSV {str(csv_path)!r} does not exist")
    samples: list[StateSample] = []
    problems: list[str] = []
    # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark.
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"dataset CSV {str(csv_path)!r} is not UTF-8 text (byte {error.start}: "
                         f"{error.reason}); expected columns image,instruction") from None
    with io.StringIO(text, newline="") as file:
        reader = csv.DictReader(file)
        found = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in CSV_COLUMNS if name not in found]
        if missing:
            raise ValueError(
                f"dataset CSV {str(csv_path)!r} lacks column(s) {', '.join(missing)}; its header "
                f"has {found or 'nothing'}. The first line must name the columns: image,instruction"
            )
        reader.fieldnames = found
        for row in reader:
            line = reader.line_num
            image_field = (row.get("image") or "").strip()
            instruction = " ".join((row.get("instruction") or "").split())
            if not image_field:
                problems.append(f"line {line}: empty image path")
                continue
            image_path = Path(image_field).expanduser()
            if not image_path.is_absolute():
                image_path = csv_path.parent / image_path
            if not image_path.is_file():
                problems.append(f"line {line}: image {str(image_path)!r} does not exist")
            if not instruction:
                problems.append(f"line {line}: empty instruction")
            samples.append(StateSample(image_path, instruction, source=image_field))
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"dataset CSV {str(csv_path)!r} has bad rows: {shown}{more}")
    if not samples:
        raise ValueError(f"dataset CSV {str(csv_path)!r} has a header but no rows")
    return samples
