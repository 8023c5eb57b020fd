"""Training and evaluation data: the paper's datasets and your own, as T-frame clips.

    from aid_model.data import build_dataset, collate_clips
    dataset = build_dataset({"name": "ssv2", "root": "data/ssv2", "split": "train"})
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_clips, sampler=...)

Every item follows the contract in ``aid_model.data.sample`` (frames (T, 3, H, W) in
[−1, 1], instruction, states, num_reference_frames, sample_id, fps). One module per
concept: ``decode`` (reading frames), ``clips`` (which frames, to a tensor), ``records``
(what a dataset reader finds), one reader module per dataset (``read_ssv2``, …),
``states`` (the state-cache join), ``base`` (``ClipDataset``, the one dataset: reading,
skipping, determinism), ``build`` (the config factory). See docs/datasets.md.

    dataset = ClipDataset(read_ssv2("data/ssv2", "validation"), size=256, max_samples=2048)

Names are resolved lazily so importing this package stays light.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

_EXPORTS = {
    "SAMPLE_KEYS": "aid_model.data.sample",
    "collate_clips": "aid_model.data.sample",
    "make_sample": "aid_model.data.sample",
    "build_dataset": "aid_model.data.build",
    "DATASET_NAMES": "aid_model.data.build",
    "dataset_options": "aid_model.data.build",
    "ClipDataset": "aid_model.data.base",
    "SkipReport": "aid_model.data.base",
    "export_first_frames": "aid_model.data.base",
    "ClipRecord": "aid_model.data.records",
    "RecordSet": "aid_model.data.records",
    "EmptyDatasetError": "aid_model.data.records",
    "DecodeError": "aid_model.data.decode",
    "read_ssv2": "aid_model.data.ssv2",
    "read_bridge": "aid_model.data.bridge",
    "read_epic100": "aid_model.data.epic",
    "read_ucf101": "aid_model.data.ucf101",
    "read_generic": "aid_model.data.generic",
    "UCF101_CAPTIONS": "aid_model.data.ucf101_captions",
    "read_state_texts": "aid_model.data.states",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model.data", _EXPORTS, globals())
