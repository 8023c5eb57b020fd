"""A tokenizer for the synthetic world: CLIP's byte-level BPE format with merges that spell
the world's words, so the miniature loads through the same ``load_text_encoder`` and
``OpenCLIPTokenizer`` as OpenCLIP ViT-H's real tokenizer does.

The vocabulary is small (the 512 byte symbols, one token per merge, two specials) instead
of CLIP's 49,408, which keeps the miniature's embedding table tiny. Ids follow CLIP's
conventions: id 0 is "!" (open_clip's padding), start/end-of-text are the last two ids.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

from aid_model.atomic import atomic_write_file

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
WORD_END = "</w>"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for bytes 0..255, in CLIP's
    vocabulary order: printable Latin-1 bytes stand for themselves, the rest are moved to
    code points from 256 on."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbol_of = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in symbol_of:
            symbol_of[byte] = chr(256 + shifted)
            shifted += 1
    return [symbol_of[byte] for byte in printable] + [
        symbol_of[byte] for byte in range(256) if byte not in printable
    ]


def word_merges(word: str) -> list[tuple[str, str]]:
    """Left-to-right merges that build ``word</w>`` from its byte symbols."""
    symbols = [*word[:-1], word[-1] + WORD_END]
    merges = []
    built = symbols[0]
    for symbol in symbols[1:]:
        merges.append((built, symbol))
        built += symbol
    return merges


def apply_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE as CLIP applies it: repeatedly merge the lowest-ranked adjacent pair."""
    symbols = [*word[:-1], word[-1] + WORD_END]
    while len(symbols) > 1:
        pairs = [
            (ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(symbols))
        ]
        rank, index = min(pairs)
        if rank == len(ranks):
            break
        symbols[index : index + 2] = [symbols[index] + symbols[index + 1]]
    return symbols


def order_merges(words: list[str], max_rounds: int = 50) -> list[tuple[str, str]]:
    """Merges under which every word is one token.

    BPE applies the lowest-ranked pair present, so a merge of one word (r+i of "right")
    can cut into another ("triangle"). Words that do not come out whole have their chains
    moved to the front, until every word is one token.
    """
    for word in words:
        if not word or not word.isascii() or any(c.isspace() for c in word):
            raise ValueError(f"demo vocabulary words are non-empty ASCII without spaces: {word!r}")
    chains = {word: word_merges(word) for word in words}
    order = list(words)
    for _ in range(max_rounds):
        merges: list[tuple[str, str]] = []
        for word in order:
            merges.extend(m for m in chains[word] if m not in merges)
        ranks = {merge: rank for rank, merge in enumerate(merges)}
        broken = [w for w in order if len(apply_bpe(w, ranks)) != 1]
        if not broken:
            return merges
        order = broken + [w for w in order if w not in broken]
    raise ValueError(f"could not order merges so that {broken} are single tokens")


def write_tokenizer(folder: str | Path, words: Iterable[str], context_length: int = 77) -> Path:
    """Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    vocab = symbols + [s + WORD_END for s in symbols]
    merges = order_merges(sorted(set(words)))
    known = set(vocab)
    for left, right in merges:
        if left + right not in known:
            vocab.append(left + right)
            known.add(left + right)
    vocab += [START_OF_TEXT, END_OF_TEXT]
    _write_text(folder / "vocab.json", json.dumps({t: i for i, t in enumerate(vocab)}))
    lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in merges]
    _write_text(folder / "merges.txt", "\n".join(lines) + "\n")
    special = {
        "bos_token": START_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "pad_token": "!",
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": context_length,
        "padding_side": "right",
        "truncation_side": "right",
        "do_lower_case": True,
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    _write_text(folder / "tokenizer_config.json", json.dumps(config, indent=2))
    _write_text(folder / "special_tokens_map.json", json.dumps(special, indent=2))
    return folder


def _write_text(path: Path, text: str) -> None:
    atomic_write_file(path, lambda target: target.write_text(text, encoding="utf-8"))


def vocabulary_size(folder: str | Path) -> int:
    return len(json.loads((Path(folder) / "vocab.json").read_text()))
