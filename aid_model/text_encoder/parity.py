"""Measure the text encoder against open_clip's goldens (the numbers in docs/text-encoder.md).

    python -m aid_model.text_encoder.parity tests/fixtures/clip-text [--threads 1]

The fixture folder holds the weights in OpenCLIP's layout, the tokenizer, the open_clip
model config and ``golden.safetensors`` (see its golden.md); the SD 2.x single-file layout
is the same tensors under ``cond_stage_model.model.``, written to a temporary folder here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .encoder import TextEncoding
from .load import load_text_encoder

LAYOUTS = ("openclip_text.safetensors", "sd2_single_file_text.safetensors", "transformers folder")
SD2_PREFIX = "cond_stage_model.model."  # where v2-1_768-ema-pruned.safetensors keeps the tower


def _outputs(encoding: TextEncoding) -> dict[str, torch.Tensor]:
    projected = encoding.projected
    return {
        "embeddings": encoding.hidden_states[0],
        "penultimate_hidden_raw": encoding.hidden_states[-2],
        "penultimate_ln_final": encoding.penultimate,
        "last_hidden_raw": encoding.hidden_states[-1],
        "last_hidden_ln_final": encoding.last,
        "pooled_unprojected": encoding.pooled,
        "text_embeds": projected,
        "text_embeds_normalized": projected / projected.norm(dim=-1, keepdim=True),
    }


def golden_errors(fixture_dir: str | Path) -> dict[str, dict[str, float]]:
    """Max abs error of every output vs the goldens, per weight layout.

    Returns:
        ``{layout: {output name: max abs error}}``; ``token_ids`` counts differing ids.
    """
    fixture_dir = Path(fixture_dir)
    golden = load_file(str(fixture_dir / "golden.safetensors"))
    with safe_open(str(fixture_dir / "golden.safetensors"), framework="pt") as handle:
        strings = json.loads(handle.metadata()["clip_text_golden"])["strings"]
    config = json.loads((fixture_dir / "openclip_model_config.json").read_text())
    heads = config["text_cfg"]["heads"]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        openclip = load_file(str(fixture_dir / LAYOUTS[0]))
        sd2 = Path(folder) / "sd2" / LAYOUTS[1]
        sd2.parent.mkdir()
        save_file({SD2_PREFIX + key: value for key, value in openclip.items()}, str(sd2))
        files = {LAYOUTS[0]: fixture_dir / LAYOUTS[0], LAYOUTS[1]: sd2}
        for layout in LAYOUTS:
            if layout == "transformers folder":
                encoder = load_text_encoder(folder)
            else:
                encoder = load_text_encoder(files[layout], tokenizer_dir=fixture_dir,
                                            num_heads=heads)
                if layout == LAYOUTS[0]:
                    encoder.save_pretrained(folder)
            encoding = encoder.encode_all(strings)
            errors = {"token_ids": float((encoding.token_ids != golden["token_ids"]).sum())}
            for name, output in _outputs(encoding).items():
                errors[name] = (output - golden[name]).abs().max().item()
            results[layout] = errors
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = golden_errors(args.fixture_dir)
    names = list(next(iter(results.values())))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32")
    print("| output | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for name in names:
        cells = " | ".join(f"{errors[name]:.3g}" for errors in results.values())
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
