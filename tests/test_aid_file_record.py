"""What an AID file was trained with: recorded when saved, compared when loaded (refused when
shapes cannot match, one warning line when they can but the model differs); long texts
cut at 77 tokens are said once per call."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_aid_weights import CONFIG, tiny_unet, trained
from tiny_models import fixture_text_encoder

from aid_model.aid import AIDWeightsError, attach_aid, attach_aid_from_file, save_aid_weights
from aid_model.aid.weights import check_text_encoder, trained_with
from aid_model.text_encoder.identity import (
    read_text_encoder_identity,
    same_embedding,
    text_encoder_identity,
)


@pytest.fixture(scope="module")
def encoder(clip_text_fixture_dir):
    return fixture_text_encoder(clip_text_fixture_dir)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, encoder):
    path = tmp_path_factory.mktemp("aid") / "aid.safetensors"
    return save_aid_weights(trained(attach_aid(tiny_unet(), CONFIG)), path, encoder)


def test_the_file_records_the_text_encoder_and_the_unet_heads(saved, encoder,
                                                               clip_text_fixture_dir):
    record = trained_with(saved)
    assert record["unet_attention_heads"] == [2, 4] and record["unet_head_channels"] == 16
    identity = record["text_encoder"]
    vocab, width = encoder.text_model.embeddings.token_embedding.weight.shape
    assert (identity["vocab_size"], identity["width"]) == (vocab, width)
    # The file of the tower says the same without loading it, and so does its bf16 copy.
    assert same_embedding(identity, read_text_encoder_identity(
        clip_text_fixture_dir / "openclip_text.safetensors"))
    halved = fixture_text_encoder(clip_text_fixture_dir).to(torch.bfloat16)
    assert same_embedding(identity, text_encoder_identity(halved))


def test_the_same_text_encoder_passes_silently(saved, encoder, caplog):
    with caplog.at_level(logging.WARNING):
        check_text_encoder(saved, encoder)
        attach_aid_from_file(tiny_unet(), saved)
    assert not caplog.records


def test_another_width_is_refused(saved, encoder):
    other = dict(text_encoder_identity(encoder), width=1024)
    with pytest.raises(AIDWeightsError, match=r"width \d+, this one has width 1024"):
        check_text_encoder(saved, other)


def test_another_vocabulary_of_the_same_width_warns_in_one_line(saved, encoder, caplog):
    other = dict(text_encoder_identity(encoder), vocab_size=1234)
    with caplog.at_level(logging.WARNING):
        check_text_encoder(saved, other)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "vocabulary" in message and "1234" in message and "\n" not in message


def test_another_token_embedding_of_the_same_size_warns(saved, encoder, caplog,
                                                        clip_text_fixture_dir):
    other = fixture_text_encoder(clip_text_fixture_dir)
    with torch.no_grad():
        other.text_model.embeddings.token_embedding.weight.mul_(-1)
    with caplog.at_level(logging.WARNING):
        check_text_encoder(saved, other)
    assert len(caplog.records) == 1
    assert "token embedding differs" in caplog.records[0].getMessage()


def test_other_unet_heads_warn_naming_the_option(saved, caplog):
    with caplog.at_level(logging.WARNING):
        attach_aid_from_file(tiny_unet(num_attention_heads=(1, 2)), saved)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "--unet-head-channels 16" in message and "[1, 2]" in message


def test_files_without_the_record_load_as_before(saved, encoder, tmp_path, caplog):
    with safe_open(str(saved), framework="pt") as file:
        metadata = {k: v for k, v in file.metadata().items() if k != "aid_trained_with"}
    older = tmp_path / "older.safetensors"
    save_file(load_file(str(saved)), str(older), metadata=metadata)
    assert trained_with(older) is None
    with caplog.at_level(logging.WARNING):
        check_text_encoder(older, dict(text_encoder_identity(encoder), width=1024))
        attach_aid_from_file(tiny_unet(num_attention_heads=(1, 2)), older)
    assert not caplog.records


def test_long_texts_are_cut_with_one_warning_per_call(encoder, caplog):
    long = " ".join(["red"] * 100)  # 100 tokens, 75 kept
    with caplog.at_level(logging.WARNING):
        encoder.tokenize([long, "short", long + " blue"])
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "25 tokens dropped" in message and "1 more texts cut" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        encoder.tokenize(["short", "also short"])
    assert not caplog.records


def test_the_record_is_json_in_the_metadata(saved):
    with safe_open(str(saved), framework="pt") as file:
        assert json.loads(file.metadata()["aid_trained_with"])["text_encoder"]["width"] > 0
