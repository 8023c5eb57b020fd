"""OpenCLIP-compatible tokenization on top of transformers' CLIP BPE tokenizer.

open_clip's `tokenize` gives, for every text, ``[SOT] + bpe(clean(text))[:75] + [EOT]``
padded with id 0 to 77 positions. transformers' `CLIPTokenizer` owns the same BPE
vocabulary and merges; this wrapper adds what it does not do the open_clip way:

* open_clip's cleaning (`cleaning.clean_text`) before BPE;
* pad id 0 whatever pad token the folder names (OpenAI tokenizer folders pad with EOT);
* ``split_special_tokens``: a literal "<|endoftext|>" or "!" (SD 2.x folders name "!"
  their pad token) in the text is BPE text, as for open_clip, never a special id;
* open_clip's own special-token spellings "<start_of_text>"/"<end_of_text>" written in
  the text become SOT/EOT ids, as open_clip's pre-tokenizing regex makes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import regex
import torch
from transformers import CLIPTokenizer, PreTrainedTokenizerBase

from .cleaning import clean_text

logger = logging.getLogger(__name__)

CONTEXT_LENGTH = 77
PAD_ID = 0  # open_clip pads with zeros (the id of "!"), not with EOT

# open_clip's pre-tokenizing pattern. Only its special-token alternatives matter here:
# scanning with the whole pattern finds them exactly where open_clip does (a literal
# "<end_of_text>" right after punctuation is swallowed by the punctuation run instead).
_OPENCLIP_PRETOKEN = regex.compile(
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_OPENCLIP_SPECIALS = ("<start_of_text>", "<end_of_text>")

TOKENIZER_FILES = ("vocab.json", "merges.txt")
TOKENIZER_JSON = "tokenizer.json"


class OpenCLIPTokenizer:
    """Turns texts into open_clip token ids, shape ``(N, context_length)`` int64.

    Args:
        tokenizer: a transformers CLIP BPE tokenizer (vocabulary of OpenCLIP ViT-H/14,
            which is OpenAI CLIP's: SOT 49406, EOT 49407).
        context_length: positions per text, 77 for every SD/CLIP text tower.
        use_ftfy: see `cleaning.clean_text` (None: ftfy when importable).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        context_length: int = CONTEXT_LENGTH,
        use_ftfy: bool | None = None,
    ) -> None:
        if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError(
                "the tokenizer names no start/end-of-text tokens (bos_token/eos_token); "
                "expected a CLIP tokenizer with <|startoftext|> and <|endoftext|>"
            )
        if context_length < 2:
            raise ValueError(f"context_length must hold SOT and EOT, got {context_length}")
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.use_ftfy = use_ftfy
        self.sot_id: int = tokenizer.bos_token_id
        self.eot_id: int = tokenizer.eos_token_id
        self.pad_id: int = PAD_ID

    @property
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce (49408 for ViT-H/14)."""
        return len(self.tokenizer)

    def _bpe(self, pieces: list[str]) -> list[list[int]]:
        if not pieces:
            return []
        # verbose=False: texts longer than 77 tokens are expected; we truncate ourselves.
        encoded = self.tokenizer(
            pieces, add_special_tokens=False, split_special_tokens=True, verbose=False
        )
        return encoded["input_ids"]

    def _split_specials(self, text: str) -> list[str | int]:
        """Cut a cleaned text at open_clip's literal special tokens (text pieces and ids)."""
        if not any(special in text for special in _OPENCLIP_SPECIALS):
            return [text]
        parts: list[str | int] = []
        start = 0
        for match in _OPENCLIP_PRETOKEN.finditer(text):
            token = match.group().lower()
            if token in _OPENCLIP_SPECIALS:
                parts.append(text[start : match.start()])
                parts.append(self.sot_id if token == _OPENCLIP_SPECIALS[0] else self.eot_id)
                start = match.end()
        parts.append(text[start:])
        return parts

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text after open_clip's cleaning, without SOT/EOT or truncation."""
        parts = self._split_specials(clean_text(text, self.use_ftfy))
        pieces = [part for part in parts if isinstance(part, str)]
        bpe_ids = iter(self._bpe(pieces))
        ids: list[int] = []
        for part in parts:
            ids.extend(next(bpe_ids) if isinstance(part, str) else [part])
        return ids

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids as `open_clip.tokenize(texts)` gives them.

        Args:
            texts: N strings; "" is valid (the null text of classifier-free guidance).

        Returns:
            int64 tensor ``(N, context_length)``: SOT, at most ``context_length - 2`` BPE
            ids (the rest is cut, as open_clip does), EOT, then pad id 0.
        """
        if isinstance(texts, str):
            raise TypeError(f"expected a list of strings, got one string {texts!r}; pass [text]")
        ids = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)
        keep = self.context_length - 2
        cut: list[tuple[str, int]] = []  # (text, tokens dropped)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] is {type(text).__name__}, expected str")
            encoded = self.encode(text)
            if len(encoded) > keep:
                cut.append((text, len(encoded) - keep))
            tokens = [self.sot_id, *encoded[:keep], self.eot_id]
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        if cut:  # once per call: a batch of long states is one warning, not one per text
            text, dropped = cut[0]
            others = f" (and {len(cut) - 1} more texts cut)" if len(cut) > 1 else ""
            logger.warning(
                "the text encoder reads %d tokens per text: %d tokens dropped from the end of "
                "%r%s; shorten the instruction or states to keep their ends",
                keep, dropped, text[:80] + ("…" if len(text) > 80 else ""), others)
        return ids

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the BPE tokenizer files into ``folder`` (loadable by `load_tokenizer`)."""
        self.tokenizer.save_pretrained(str(folder))


def has_tokenizer_files(folder: Path) -> bool:
    """True when ``folder`` holds a CLIP BPE tokenizer (vocab + merges, or tokenizer.json)."""
    return (folder / TOKENIZER_JSON).is_file() or all(
        (folder / name).is_file() for name in TOKENIZER_FILES
    )


def load_tokenizer(
    folder: str | Path,
    context_length: int = CONTEXT_LENGTH,
    use_ftfy: bool | None = None,
) -> OpenCLIPTokenizer:
    """Load the CLIP BPE tokenizer from a local folder; never touches the network.

    Args:
        folder: holds ``vocab.json`` + ``merges.txt`` or ``tokenizer.json`` (optionally
            ``tokenizer_config.json``), e.g. the ``tokenizer`` folder of an SD 2.x pipeline.
        context_length: positions per text.
        use_ftfy: see `cleaning.clean_text`.

    Raises:
        FileNotFoundError: the folder or its tokenizer files are missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"tokenizer folder {str(folder)!r} does not exist; pass tokenizer_dir= a folder "
            f"with {' + '.join(TOKENIZER_FILES)} (or {TOKENIZER_JSON}), e.g. the 'tokenizer' "
            "folder of an SD 2.x diffusers pipeline"
        )
    if not has_tokenizer_files(folder):
        found = sorted(path.name for path in folder.iterdir())[:12]
        raise FileNotFoundError(
            f"no CLIP tokenizer in {str(folder)!r}: expected {' + '.join(TOKENIZER_FILES)} or "
            f"{TOKENIZER_JSON}, found {found}; pass tokenizer_dir= the folder that has them"
        )
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    return OpenCLIPTokenizer(tokenizer, context_length=context_length, use_ftfy=use_ftfy)
