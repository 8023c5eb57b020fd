"""UCF-101: .avi videos in one folder per class, the official train/test lists, and one
sentence per class as the instruction (``ucf101_captions``)."""

from __future__ import annotations

from pathlib import Path

from aid_model.data.base import ClipDataset, ClipRecord, EmptyDatasetError, split_name
from aid_model.data.ucf101_captions import ucf101_caption

SPLITS = ("train", "test", "all")
EVALUATION_SAMPLES = 2048  # the paper (after Seer): 2,048 samples of the test set

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


class UCF101Dataset(ClipDataset):
    """UCF-101 clips: T = 16 consecutive frames (stride 1), K = 1 (or 5), one sentence per
    class as the instruction.

    Sample id ``ucf101/<file stem>`` (``ucf101/v_ApplyEyeMakeup_g08_c01``). Splits: "train"
    and "test" from the official lists of fold ``fold`` (1–3; "validation" means "test",
    the set the paper evaluates on), or "all" videos found.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_frames: int = 16,
        stride: int | str = 1,
        size: int | tuple[int, int] = 256,
        num_reference_frames: int = 1,
        fold: int = 1,
        random_offset: bool | None = None,
        **options,
    ) -> None:
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
            lines = find_split_file(root, split, fold).read_text(encoding="utf-8").splitlines()
            wanted = []
            for line in lines:
                if line.strip():
                    relative = line.split()[0].replace("\\", "/")
                    folder, _, name = relative.rpartition("/")
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
        super().__init__(
            records,
            name="ucf101",
            root=root,
            layout=LAYOUT,
            num_frames=num_frames,
            stride=stride,
            size=size,
            num_reference_frames=num_reference_frames,
            split=split,
            random_offset=random_offset,
            dropped=dropped,
            **options,
        )
