"""SHA-1 of many short byte strings at once, with numpy: datasketch's `sha1_hash32` in bulk.

A word 5-gram is ~30 bytes, one 64-byte SHA-1 block; hashing each with `hashlib` costs a
Python call per shingle, which dominates MinHash. Here the messages are padded into blocks
(FIPS 180-4, 5.1.1) as rows of a matrix and the 80 rounds of the compression function
(6.1.2) run on whole columns. Messages needing more than `MAX_BLOCKS` blocks go to hashlib.
The result for every message equals `struct.unpack("<I", hashlib.sha1(m).digest()[:4])[0]`.

    hashes = sha1_hash32_spans(buffer, starts, lengths)   # messages buffer[s:s+l], uint32
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

U32 = np.uint32
_K = (U32(0x5A827999), U32(0x6ED9EBA1), U32(0x8F1BBCDC), U32(0xCA62C1D6))
_H = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
MAX_BLOCKS = 4
CHUNK = 32768  # messages per batch: the working set stays in cache


def _rotl_into(x: np.ndarray, n: int, tmp: np.ndarray) -> None:
    np.left_shift(x, U32(n), out=tmp)
    x >>= U32(32 - n)
    x |= tmp


def _compress(state: list[np.ndarray], w: list[np.ndarray]) -> list[np.ndarray]:
    """One SHA-1 block for every column; `w` (16 rows) is consumed as the message schedule."""
    a, b, c, d, e = (s.copy() for s in state)
    f, tmp = np.empty_like(a), np.empty_like(a)
    for t in range(80):
        if t >= 16:  # W_t = ROTL1(W_t-3 ^ W_t-8 ^ W_t-14 ^ W_t-16), kept in a ring of 16
            x = w[t % 16]
            x ^= w[(t - 3) % 16]
            x ^= w[(t - 8) % 16]
            x ^= w[(t - 14) % 16]
            _rotl_into(x, 1, tmp)
        if t < 20:  # Ch(b, c, d)
            np.bitwise_xor(c, d, out=f)
            f &= b
            f ^= d
        elif t < 40 or t >= 60:  # Parity
            np.bitwise_xor(b, c, out=f)
            f ^= d
        else:  # Maj(b, c, d)
            np.bitwise_or(b, c, out=f)
            f &= d
            np.bitwise_and(b, c, out=tmp)
            f |= tmp
        # T = ROTL5(a) + f + e + K_t + W_t, built in e's array; then rotate the registers.
        e += f
        e += _K[t // 20]
        e += w[t % 16]
        np.left_shift(a, U32(5), out=tmp)
        e += tmp
        np.right_shift(a, U32(27), out=tmp)
        e += tmp
        _rotl_into(b, 30, tmp)
        a, b, c, d, e = e, a, b, c, d
    return [s + v for s, v in zip(state, (a, b, c, d, e))]


def _blocks(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """(16k, m) big-endian words of the padded messages: data, 0x80, zeros, bit length."""
    m = len(starts)
    mat = sliding_window_view(padded, 64 * k)[starts]  # a copy: one row per message
    mat *= np.arange(64 * k, dtype=np.int32)[None, :] < lengths[:, None].astype(np.int32)
    mat[np.arange(m), lengths] = 0x80
    mat[:, 64 * k - 4:] = (lengths * 8).astype(">u4").view(np.uint8).reshape(m, 4)
    return np.ascontiguousarray(mat.view(">u4").T, dtype=U32)


def _hash_group(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    words = _blocks(padded, starts, lengths, k)
    state = [np.full(len(starts), h, dtype=U32) for h in _H]
    for block in range(k):
        state = _compress(state, list(words[16 * block:16 * block + 16]))
    # sha1_hash32 reads the digest's first 4 bytes (H0, big-endian) as a little-endian integer.
    return state[0].byteswap()


def sha1_hash32_spans(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """sha1_hash32 of every message `buffer[starts[i]:starts[i] + lengths[i]]` (uint8 buffer)."""
    out = np.empty(len(starts), dtype=U32)
    padded = np.concatenate([buffer, np.zeros(64 * MAX_BLOCKS, dtype=np.uint8)])
    n_blocks = (lengths + 8) // 64 + 1
    raw = None
    for first in range(0, len(starts), CHUNK):
        s, ln, nb = starts[first:first + CHUNK], lengths[first:first + CHUNK], n_blocks[first:first + CHUNK]
        for k in np.unique(nb):
            sel = np.flatnonzero(nb == k)
            if k <= MAX_BLOCKS:
                out[first + sel] = _hash_group(padded, s[sel], ln[sel], int(k))
            else:
                raw = buffer.tobytes() if raw is None else raw
                out[first + sel] = [int.from_bytes(hashlib.sha1(raw[a:a + b]).digest()[:4], "little")
                                    for a, b in zip(s[sel].tolist(), ln[sel].tolist())]
    return out
