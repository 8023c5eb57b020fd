"""State prompting through a real (tiny, random) LLaVA: loading, chat template, generation.

No vision-language model can be downloaded in tests, so each run builds a LLaVA with a
2-layer Llama, a 2-layer CLIP vision tower and a word-level tokenizer, saves it with
save_pretrained and loads it back through StatePrompter.from_pretrained, the path users
take. Its answers are random words, so every state must fall back to the instruction.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aid_model.cli import main
from aid_model.states import (
    TEMPLATE_VERSION,
    StateCache,
    StatePrompter,
    StateSample,
    annotate,
)

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
# Words the random model can emit. No digits and no list markers, so its answers hold no
# states and the parser's fallback must take over.
WORDS = [
    "USER:",
    "ASSISTANT:",
    "the",
    "a",
    "cup",
    "water",
    "table",
    "hand",
    "drawer",
    "pen",
    "is",
    "on",
    "in",
    "into",
    "of",
    "open",
    "closed",
    "empty",
    "full",
    "half",
    "pour",
    "picture",
    "video",
    "instruction",
]
MAX_NEW_TOKENS = 6
# Larger than transformers' 0.02 so the random model's answers depend on the frame and
# the prompt, which the batching test needs to mean anything.
INIT_RANGE = 0.2


def build_tiny_llava(folder: Path) -> Path:
    """Save a random LLaVA (Llama text model, CLIP vision tower) with its processor."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {word: index for index, word in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<image>"],
    )
    # The shape of LLaVA-1.5's template: "USER: <image> prompt ASSISTANT:".
    chat_template = (
        "{% for message in messages %}{{ message['role'] | upper }}: "
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<image> "
        "{% elif item['type'] == 'text' %}{{ item['text'] }} {% endif %}"
        "{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=chat_template,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
            projection_dim=16,
            initializer_range=INIT_RANGE,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"],
            initializer_range=INIT_RANGE,
        ),
        image_token_index=vocab["<image>"],
        image_seq_length=4,
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    # A random model often stops at once; never letting it emit special tokens makes its
    # answers exactly max_new_tokens words long, whatever the weights.
    model.generation_config.suppress_tokens = [vocab[token] for token in SPECIAL_TOKENS]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def prompter(llava_dir: Path) -> StatePrompter:
    return StatePrompter.from_pretrained(
        llava_dir, dtype="float32", device="cpu", max_new_tokens=MAX_NEW_TOKENS
    )


def frame(seed: int, size: tuple[int, int] = (24, 20)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


INSTRUCTIONS = ["pour water into the cup", "open the drawer", "pick up the pen"]


# --- loading, chat template and generation --------------------------------------------


def test_random_model_answers_fall_back_to_the_instruction(prompter: StatePrompter) -> None:
    predictions = prompter.predict([frame(0), frame(1)], INSTRUCTIONS[:2], num_states=4)

    vocabulary = set(WORDS)
    for prediction, instruction in zip(predictions, INSTRUCTIONS[:2], strict=True):
        # The real generate → decode path ran: only new words, bounded, no prompt echo.
        words = prediction.raw_text.split()
        assert len(words) == MAX_NEW_TOKENS
        assert set(words) <= vocabulary
        # Gibberish holds no states: all four are the instruction, and the user is told.
        assert prediction.states == [instruction] * 4
        assert prediction.used_fallback
        assert any("no states found" in warning for warning in prediction.warnings)


def test_predict_states_gives_exactly_s_states_per_frame(prompter: StatePrompter) -> None:
    for num_states in (1, 3, 6):
        states = prompter.predict_states([frame(0), frame(1)], INSTRUCTIONS[:2], num_states)
        assert [len(frame_states) for frame_states in states] == [num_states, num_states]


def test_single_frame_and_shared_instruction_are_accepted(prompter: StatePrompter) -> None:
    as_tensor_batch = np.stack([np.asarray(frame(0)), np.asarray(frame(1))]) / 255.0
    assert prompter.predict_states(frame(0), "open the drawer", 2) == [["open the drawer"] * 2]
    # A (frames, H, W, C) float batch in [0, 1], as ComfyUI hands images over.
    assert len(prompter.predict_states(as_tensor_batch, "open the drawer", 2)) == 2


def test_batched_answers_equal_one_at_a_time(prompter: StatePrompter) -> None:
    # Prompts of different lengths are padded; with padding on the wrong side a batched
    # answer would differ from the same prompt answered alone.
    frames = [frame(0), frame(1), frame(2)]
    batched = prompter.predict(frames, INSTRUCTIONS, 4, batch_size=3)
    alone = prompter.predict(frames, INSTRUCTIONS, 4, batch_size=1)

    assert [p.raw_text for p in batched] == [p.raw_text for p in alone]
    # The answers depend on the input, so the comparison above is not vacuous.
    assert len({p.raw_text for p in alone}) > 1


def test_prompt_is_the_template_in_the_models_chat_format(
    prompter: StatePrompter, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}
    generate = prompter.model.generate

    def spy(**inputs):
        seen.update(inputs)
        return generate(**inputs)

    monkeypatch.setattr(prompter.model, "generate", spy)
    prompter.predict([frame(0), frame(1)], ["pour water", "pour water into the cup"], 4)

    tokenizer = prompter.processor.tokenizer
    rows = [tokenizer.convert_ids_to_tokens(ids) for ids in seen["input_ids"].tolist()]
    for row in rows:
        assert row[-1] == "ASSISTANT:"  # the generation prompt closes every prompt
        assert row.count("<image>") == 4  # (16 / 8)² patches, the CLS token dropped
        assert "USER:" in row
    assert rows[0][0] == "<pad>" and rows[1][0] != "<pad>"  # the shorter one padded left
    assert seen["generation_config"].do_sample is False
    assert seen["generation_config"].max_new_tokens == MAX_NEW_TOKENS


# --- errors a user can make ---------------------------------------------------------------


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "llava-onevision"
    with pytest.raises(FileNotFoundError, match=r"llava-onevision.*does not exist"):
        StatePrompter.from_pretrained(missing)


def test_folder_without_processor_is_refused_before_weights_load(
    llava_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "weights-only"
    bare.mkdir()
    shutil.copy(llava_dir / "config.json", bare / "config.json")
    # Unreadable weights: the processor error can only come first if they are never read.
    (bare / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="could not load a processor"):
        StatePrompter.from_pretrained(bare, device="cpu")


def test_folder_without_chat_template_is_refused(llava_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no-template"
    shutil.copytree(llava_dir, folder)
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        StatePrompter.from_pretrained(folder, device="cpu")


def test_custom_code_needs_trust_remote_code(tmp_path: Path) -> None:
    folder = tmp_path / "custom-vlm"
    folder.mkdir()
    config = {
        "model_type": "my_custom_vlm",
        "auto_map": {"AutoModelForImageTextToText": "modeling_custom.CustomVLM"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        StatePrompter.from_pretrained(folder, device="cpu")


def test_text_only_model_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="'bert' model, which is not an image-text-to-text"):
        StatePrompter.from_pretrained(folder, device="cpu")


def test_bad_dtype_lists_the_choices(llava_dir: Path) -> None:
    with pytest.raises(ValueError, match="'float8' is not one of bfloat16, float16, float32"):
        StatePrompter.from_pretrained(llava_dir, dtype="float8", device="cpu")


def test_mismatched_counts_are_refused(prompter: StatePrompter) -> None:
    with pytest.raises(ValueError, match="2 images but 3 instructions"):
        prompter.predict([frame(0), frame(1)], INSTRUCTIONS, 4)


# --- cache and dataset annotation -----------------------------------------------------


def count_generate_calls(prompter: StatePrompter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap prompter.generate; the returned list grows by the batch size at every call."""
    calls: list[int] = []
    generate = prompter.generate

    def counted(frames, instructions, num_states):
        calls.append(len(frames))
        return generate(frames, instructions, num_states)

    monkeypatch.setattr(prompter, "generate", counted)
    return calls


def samples_on_disk(folder: Path, count: int) -> list[StateSample]:
    samples = []
    for index in range(count):
        path = folder / f"frame{index}.png"
        frame(index).save(path)
        samples.append(StateSample(path, INSTRUCTIONS[index % 3], source=path.name))
    return samples


def test_second_run_generates_nothing(
    prompter: StatePrompter, llava_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = samples_on_disk(tmp_path, 3)
    cache_path = tmp_path / "states.jsonl"
    calls = count_generate_calls(prompter, monkeypatch)

    first = annotate(prompter, samples, StateCache(cache_path), batch_size=2, progress=False)
    assert (first.generated, first.cached, sum(calls)) == (3, 0, 3)

    calls.clear()
    second = annotate(prompter, samples, StateCache(cache_path), batch_size=2, progress=False)
    assert calls == []
    assert (second.generated, second.cached) == (0, 3)
    assert [row.states for row in second.rows] == [row.states for row in first.rows]

    rows = [json.loads(line) for line in cache_path.read_text().splitlines()]
    assert len(rows) == 3
    assert rows[0]["model_id"] == prompter.model_id == llava_dir.name  # the folder's name
    assert rows[0]["template_version"] == TEMPLATE_VERSION
    assert rows[0]["num_states"] == 4 and rows[0]["num_found"] == 0


def test_cache_key_holds_s_and_the_image_content(
    prompter: StatePrompter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = samples_on_disk(tmp_path, 1)
    cache_path = tmp_path / "states.jsonl"
    annotate(prompter, samples, StateCache(cache_path), progress=False)
    calls = count_generate_calls(prompter, monkeypatch)

    # The same pixels saved in another format are the same frame: no new generation.
    frame(0).save(tmp_path / "same.bmp")
    same = [StateSample(tmp_path / "same.bmp", samples[0].instruction)]
    assert annotate(prompter, same, StateCache(cache_path), progress=False).cached == 1
    # Another S is another question.
    other_s = annotate(prompter, samples, StateCache(cache_path), num_states=3, progress=False)
    assert other_s.generated == 1 and len(other_s.rows[0].states) == 3
    assert sum(calls) == 1


def test_repeated_pairs_are_generated_once(
    prompter: StatePrompter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = samples_on_disk(tmp_path, 1)[0]
    calls = count_generate_calls(prompter, monkeypatch)
    result = annotate(
        prompter, [sample, sample, sample], StateCache(tmp_path / "s.jsonl"), progress=False
    )
    assert sum(calls) == 1
    assert len(result.rows) == 3 and result.generated == 1


def test_interrupted_run_resumes_where_it_stopped(
    prompter: StatePrompter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = samples_on_disk(tmp_path, 4)
    cache_path = tmp_path / "states.jsonl"
    generate = prompter.generate
    calls: list[int] = []

    def dies_on_third_batch(frames, instructions, num_states):
        calls.append(len(frames))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return generate(frames, instructions, num_states)

    monkeypatch.setattr(prompter, "generate", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        annotate(prompter, samples, StateCache(cache_path), batch_size=1, progress=False)
    assert len(cache_path.read_text().splitlines()) == 2  # rows before the kill are on disk
    # A kill in the middle of a write leaves half a line behind.
    with cache_path.open("a") as file:
        file.write('{"image_sha256": "ab')

    monkeypatch.setattr(prompter, "generate", generate)
    calls = count_generate_calls(prompter, monkeypatch)
    cache = StateCache(cache_path)
    assert (len(cache), cache.skipped_lines) == (2, 1)
    resumed = annotate(prompter, samples, cache, batch_size=1, progress=False)

    assert (resumed.cached, resumed.generated, sum(calls)) == (2, 2, 2)
    reread = StateCache(cache_path)
    assert (len(reread), reread.skipped_lines) == (4, 1)


# --- the command line -----------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_states_for_one_image(
    llava_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = tmp_path / "first.png"
    frame(0).save(image)
    argv = ["states", "--model", str(llava_dir), "--image", str(image)]
    code, out, err = run_cli(
        [*argv, "--instruction", "open the drawer", "--num-states", "3", "--device", "cpu"],
        capsys,
    )
    assert code == 0
    assert out.splitlines() == ["1. open the drawer", "2. open the drawer", "3. open the drawer"]
    assert "warning: no states found" in err


def test_cli_annotates_a_csv_dataset_and_resumes(
    llava_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "frames").mkdir()
    frame(0).save(tmp_path / "frames" / "a.png")
    frame(1).save(tmp_path / "frames" / "b.png")
    dataset = tmp_path / "data.csv"
    dataset.write_text(
        'image,instruction\nframes/a.png,open the drawer\nframes/b.png,"pour, then stir"\n'
    )
    out_path = tmp_path / "out" / "states.jsonl"
    argv = ["states", "--model", str(llava_dir), "--dataset", str(dataset), "--out", str(out_path)]

    code, out, _ = run_cli([*argv, "--device", "cpu"], capsys)
    assert code == 0
    assert "2 generated, 0 from the cache; 2 fell back to the instruction" in out
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [row["source"] for row in rows] == ["frames/a.png", "frames/b.png"]
    assert rows[1]["states"] == ["pour, then stir"] * 4

    code, out, _ = run_cli([*argv, "--device", "cpu"], capsys)
    assert code == 0 and "0 generated, 2 from the cache" in out


def test_cli_reports_a_missing_image_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = tmp_path / "data.csv"
    dataset.write_text("image,instruction\nmissing.png,open the drawer\n")
    argv = ["states", "--model", str(tmp_path / "no-model"), "--dataset", str(dataset)]
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "s.jsonl")], capsys)
    assert code == 1
    assert "line 2: image" in err and "missing.png" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "d.csv"], "--dataset needs --out"),
        (["--image", "a.png"], "--image needs --instruction"),
        (["--dataset", "d.json", "--out", "s.jsonl"], "only CSV files"),
        (["--image", "a.png", "--instruction", "x", "--num-states", "0"], "at least 1"),
    ],
)
def test_cli_usage_errors(extra: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(["states", "--model", "m", *extra], capsys)
    assert code == 2 and message in err
