"""Text normalisation shared by exact and MinHash dedup, vectorised over an Arrow column.

Two documents that differ only in what normalisation removes (case, runs of whitespace,
punctuation, the value of numbers) hash to the same exact-dedup key and produce the same
shingles. Every step runs in Arrow's C++ kernels (RE2 regexes) on a whole partition at once.

    from dedup.normalize import Normalization, normalize
    normalize(pa.array(["Profit  ROSE 12.5 pct!"]), Normalization(strip_punctuation=True, digits_to_zero=True))
    # -> ["profit rose 0 0 pct"]
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.stage import StageParams

# Unicode punctuation (P*) and symbols (S*): "$", "%", "+", "©" as well as ".,;:!?'"-".
PUNCTUATION = r"[\p{P}\p{S}]+"
DIGITS = r"\p{Nd}+"
# Every character Python's str.split() splits on: RE2's \s is only [\t\n\f\r ]; \p{Z} adds NBSP
# and the other separators; \x0b, \x1c-\x1f and \x85 are the control characters it counts.
WHITESPACE = r"[\s\p{Z}\x0b\x1c-\x1f\x85]+"
PUNCTUATION_OR_WHITESPACE = r"[\p{P}\p{S}\s\p{Z}\x0b\x1c-\x1f\x85]+"


class Normalization(StageParams):
    """Which differences between two texts do not count."""

    lowercase: bool = Field(True, description="compare case-insensitively")
    collapse_whitespace: bool = Field(True, description="runs of whitespace -> one space, trimmed")
    strip_punctuation: bool = Field(False, description="Unicode punctuation and symbols -> space")
    digits_to_zero: bool = Field(False, description="each run of digits -> '0' (12.5 -> 0.0)")


def normalize(texts: pa.Array | pa.ChunkedArray, norm: Normalization) -> pa.Array:
    """`texts` normalised by `norm`; nulls become empty strings."""
    out = pc.fill_null(texts, "")
    if norm.lowercase:
        out = pc.utf8_lower(out)
    if norm.digits_to_zero:
        out = pc.replace_substring_regex(out, DIGITS, "0")
    if norm.strip_punctuation and norm.collapse_whitespace:  # one pass: runs of both -> " "
        out = pc.utf8_trim_whitespace(pc.replace_substring_regex(out, PUNCTUATION_OR_WHITESPACE, " "))
    elif norm.strip_punctuation:
        out = pc.replace_substring_regex(out, PUNCTUATION, " ")
    elif norm.collapse_whitespace:
        out = pc.utf8_trim_whitespace(pc.replace_substring_regex(out, WHITESPACE, " "))
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks() if out.num_chunks != 1 else out.chunk(0)
    return out
