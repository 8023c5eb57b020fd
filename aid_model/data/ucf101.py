"""UCF-101: .avi videos in one folder per class, the official train/test lists, and one
sentence per class as the instruction (``ucf101_captions``)."""

from __future__ import annotations

from pathlib import Path

from aid_model.data.records import (
    ClipRecord,
    EmptyDatasetError,
    RecordSet,
    not_text_error,
    split_name,
)
from aid_model.data.ucf101_captions import ucf101_caption

SPLITS = ("train", "test", "all")

LAYOUT = """\
  <root>/UCF-101/<ClassName>/v_<ClassName>_g<GG>_c<CC>.avi      (or <root>/<ClassName>/…)
  <root>/ucfTrainTestlist/trainlist01.txt, testlist01.txt, …  (needed for splits train/test;
      also found in <root>/UCF101TrainTestSplits-RecognitionTask/ucfTrainTestlist/)"""


def find_video_root(root: Path) -> Path:
    for folder in (root / "UCF-101", root / "UCF101", root):
        if folder.is_dir() and any(folder.glob("*/*.avi")):
            return folder
    raise EmptyDatasetError(
        f"ucf101: no class folders of .avi videos under {str(root)!r}. Expected layout:\n{LAYOUT}"
    )


def find_split_file(root: Path, split: str, fold: int) -> Path:
    name = f"{split}list0{fold}.txt"
    for folder in (
        root / "ucfTrainTestlist",
        root / "UCF101TrainTestSplits-RecognitionTask" / "ucfTrainTestlist",
        root,
    ):
        if (folder / name).is_file():
            return folder / name
    raise EmptyDatasetError(
        f"ucf101: split {split!r} needs {name}, not found under {str(root)!r} (or use "
        f"split='all'). Expected layout:\n{LAYOUT}"
    )


def read_ucf101(root: str | Path, split: str = "train", *, fold: int = 1) -> RecordSet:
    """UCF-101 records; clips of T = 16 consecutive frames (stride 1), K = 1 (or 5), one
    sentence per class as the instruction.

    Sample id ``ucf101/<file stem>`` (``ucf101/v_ApplyEyeMakeup_g08_c01``). Splits: "train"
    and "test" from the official lists of fold ``fold`` (1–3; "validation" means "test",
    the set the paper evaluates on), or "all" videos found.
    """
    root = Path(root)
    if str(split).strip().lower() in ("validation", "val", "valid"):
        split = "test"
    split = split_name(split, SPLITS)
    if fold not in (1, 2, 3):
        raise ValueError(f"fold must be 1, 2 or 3, got {fold!r}")
    video_root = find_video_root(root)
    # Case-insensitive index: one class is "HandstandPushups" in the lists and
    # "HandStandPushups" in the file names.
    videos = {
        (path.parent.name.lower(), path.name.lower()): path
        for path in sorted(video_root.glob("*/*.avi"))
    }
    if split == "all":
        wanted = [(path.parent.name, path.name) for path in videos.values()]
    else:
        split_file = find_split_file(root, split, fold)
        try:
            lines = split_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise not_text_error(split_file, error, "a UCF-101 split list") from None
        wanted = []
        for line in lines:
            if line.strip():
                folder, _, name = line.split()[0].replace("\\", "/").rpartition("/")
                wanted.append((folder, name))
    records, dropped = [], []
    for folder, name in wanted:
        sample_id = f"ucf101/{Path(name).stem}"
        path = videos.get((folder.lower(), name.lower()))
        if path is None:
            dropped.append((sample_id, "video missing"))
            continue
        try:
            instruction = ucf101_caption(folder)
        except KeyError:
            dropped.append((sample_id, f"unknown class {folder!r}"))
            continue
        records.append(ClipRecord(sample_id, instruction, path))
    return RecordSet(
        name="ucf101",
        root=root,
        layout=LAYOUT,
        records=records,
        split=split,
        dropped=dropped,
        num_frames=16,
        stride=1,
        num_reference_frames=1,
    )
