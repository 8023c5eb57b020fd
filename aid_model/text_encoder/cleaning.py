"""open_clip's text cleaning, applied before BPE so token ids match `open_clip.tokenize`.

open_clip cleans every string as ``whitespace_clean(basic_clean(text)).lower()``:
``ftfy.fix_text``, HTML unescape twice, strip, collapse whitespace runs to one space,
Python ``str.lower()``. transformers' CLIP tokenizer does none of the first three and
lowercases with Rust's rules (Greek final sigma differs), so we clean first.

`ftfy` is optional. Without it a fallback reproduces what ``ftfy.fix_text`` does to single
characters (checked character by character against ftfy 6.3.1 over the whole BMP):
control characters removed, line breaks unified, C1 controls read as Windows-1252, curly
quotes uncurled, Latin ligatures and full/half-width forms expanded, NFC; and, as ftfy,
HTML entities unescaped until none is left unless the text contains "<". What it does not
do: ftfy's mojibake repair (``cafÃ©`` stays as it is instead of becoming ``café``) and
ftfy's upper-case entities (``&EACUTE;``).
"""

from __future__ import annotations

import html
import re
import unicodedata

try:
    import ftfy
except ImportError:  # optional dependency, see the module docstring
    ftfy = None

FTFY_AVAILABLE: bool = ftfy is not None

_WHITESPACE = re.compile(r"\s+")

# Characters ftfy.fix_text deletes: C0 controls other than tab/newline/form feed/CR, DEL,
# deprecated format characters, the byte order mark, interlinear annotation marks.
_REMOVED = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]")
_SINGLE_QUOTES = re.compile("[\u02bc\u2018-\u201b]")
_DOUBLE_QUOTES = re.compile("[\u201c-\u201f]")
# Ligatures ftfy splits. NFKC gives the same letters for all but U+FB05, whose NFKC form
# is "st" while ftfy keeps the long s.
_LIGATURES = re.compile("[\u0132\u0133\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb04\ufb06]")
_SPECIAL_LIGATURES = {"\u0149": "'n", "\ufb05": "\u017ft"}
# Full-width ASCII, half-width katakana/hangul and full/half-width signs, plus the
# ideographic space: ftfy maps each to its NFKC form.
_WIDTH = re.compile("[\u3000\uff01-\uffee]")
_C1_CONTROLS = re.compile("[\x80-\x9f]")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029]")
_ENTITY = re.compile(r"&#?\w{0,8};")


def _c1_as_cp1252(match: re.Match[str]) -> str:
    # A C1 control in text is nearly always a Windows-1252 byte decoded as Latin-1;
    # the five bytes cp1252 leaves undefined stay as they are.
    char = match.group()
    try:
        return bytes([ord(char)]).decode("cp1252")
    except UnicodeDecodeError:
        return char


def _nfkc(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group())


def _unescape_entity(match: re.Match[str]) -> str:
    return html.unescape(match.group())


def fix_text_fallback(text: str) -> str:
    """The character-level part of ``ftfy.fix_text``, for when ftfy is not installed."""
    # ftfy unescapes semicolon-terminated entities until none is left, unless the text
    # looks like HTML (contains "<"); open_clip's own two unescapes follow in clean_text.
    if "<" not in text:
        for _ in range(8):
            unescaped = _ENTITY.sub(_unescape_entity, text)
            if unescaped == text:
                break
            text = unescaped
    text = _LINE_BREAKS.sub("\n", text)
    text = _REMOVED.sub("", text)
    text = _C1_CONTROLS.sub(_c1_as_cp1252, text)
    text = _SINGLE_QUOTES.sub("'", text)
    text = _DOUBLE_QUOTES.sub('"', text)
    for ligature, letters in _SPECIAL_LIGATURES.items():
        text = text.replace(ligature, letters)
    text = _LIGATURES.sub(_nfkc, text)
    text = _WIDTH.sub(_nfkc, text)
    return unicodedata.normalize("NFC", text)


def clean_text(text: str, use_ftfy: bool | None = None) -> str:
    """Clean one string exactly as open_clip's tokenizer does before BPE.

    Args:
        text: raw instruction or state text.
        use_ftfy: True requires ftfy, False forces the fallback, None uses ftfy when it
            is importable.

    Returns:
        The cleaned, lower-cased text, e.g. ``"  Hello,\\tWORLD &amp; co "`` →
        ``"hello, world & co"``.
    """
    if use_ftfy is None:
        use_ftfy = FTFY_AVAILABLE
    if use_ftfy and ftfy is None:
        raise ImportError(
            "use_ftfy=True but the ftfy package is not installed; `pip install ftfy` "
            "or pass use_ftfy=None to fall back to the built-in cleaning"
        )
    text = ftfy.fix_text(text) if use_ftfy else fix_text_fallback(text)
    # open_clip unescapes twice so doubly-escaped entities ("&amp;amp;") come out plain too.
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()
