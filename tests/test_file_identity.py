"""Content identities of model files and folders (what evaluation shards and benchmark rows
are reused by)."""

from __future__ import annotations

from aid_model.evaluate.identity import file_identity


def test_a_folder_retrained_with_the_same_shapes_is_told_apart(tmp_path):
    """A diffusers folder retrained in place keeps its names and sizes; its identity must
    still change, or stale results would be taken for the new model's."""
    model = tmp_path / "unet"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.safetensors").write_bytes(bytes(range(256)) * 16)
    before = file_identity(model)
    (model / "weights.safetensors").write_bytes(bytes(reversed(range(256))) * 16)
    after = file_identity(model)
    assert after != before and after["files"] == before["files"] == 2
    # The path is not part of it: a copy has the same identity.
    copy = tmp_path / "copy"
    copy.mkdir()
    for part in model.iterdir():
        (copy / part.name).write_bytes(part.read_bytes())
    assert file_identity(copy) == after


def test_a_large_file_is_known_by_its_size_and_both_ends(tmp_path):
    weights = tmp_path / "big.safetensors"
    payload = bytearray(3 << 20)
    weights.write_bytes(bytes(payload))
    first = file_identity(weights)
    payload[-1] = 1  # a change in the last MiB
    weights.write_bytes(bytes(payload))
    assert file_identity(weights) != first
    assert file_identity(None) is None
