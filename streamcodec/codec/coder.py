"""Arithmetic coding of symbol arrays with constriction's ANS coder, in independent sub-streams.

Each symbol comes with the index of the fixed categorical table it is coded with. Symbols are grouped by
table and each group is coded with one vectorised call, which is ~50x faster than one parametric model per
symbol. The array is split into ``substreams`` contiguous parts coded independently, so a frame's parts can
be coded in parallel; the split depends only on the symbol count and the part count, never on threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import constriction
import numpy as np

#: Identifies this coder and its table conventions in stream headers.
CODER_ID = 0x0101


class TableBank:
    """Fixed categorical models over symbols -R_k..R_k, one per table index k."""

    def __init__(self, tables: Sequence[np.ndarray]) -> None:
        self.radius = np.array([(len(t) - 1) // 2 for t in tables], dtype=np.int32)
        model = constriction.stream.model.Categorical
        self._models = [model(t, perfect=False) for t in tables]

    def __len__(self) -> int:
        return len(self._models)

    def clamp(self, symbols: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Clip each symbol into the support of its table."""
        r = self.radius[index]
        return np.clip(symbols, -r, r).astype(np.int32)

    def encode(self, symbols: np.ndarray, index: np.ndarray) -> bytes:
        """Code one sub-stream. ``symbols`` must already lie in their tables' supports."""
        order = np.argsort(index, kind="stable")
        shifted = (symbols[order] + self.radius[index[order]]).astype(np.int32)
        ends = np.cumsum(np.bincount(index, minlength=len(self)))
        coder = constriction.stream.stack.AnsCoder()
        start = 0
        for k, end in enumerate(ends):
            if end > start:
                coder.encode_reverse(shifted[start:end], self._models[k])
            start = end
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, index: np.ndarray) -> np.ndarray:
        """Decode one sub-stream coded by :meth:`encode` with the same ``index``."""
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        if len(words) == 0:
            words = np.zeros(0, dtype=np.uint32)
        coder = constriction.stream.stack.AnsCoder(words)
        counts = np.bincount(index, minlength=len(self))
        parts = []
        for k in range(len(self) - 1, -1, -1):
            if counts[k]:
                parts.append(np.asarray(coder.decode(self._models[k], int(counts[k])), dtype=np.int32))
        order = np.argsort(index, kind="stable")
        out = np.empty(len(index), dtype=np.int32)
        if parts:
            shifted = np.concatenate(parts[::-1])
            out[order] = shifted - self.radius[index[order]]
        return out


def split_points(n: int, substreams: int) -> list[tuple[int, int]]:
    """The [start, end) ranges of ``substreams`` near-equal contiguous parts of ``n`` symbols."""
    bounds = np.linspace(0, n, substreams + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def encode_substreams(
    bank: TableBank, symbols: np.ndarray, index: np.ndarray, substreams: int, executor: Executor | None = None
) -> list[bytes]:
    """Code ``symbols`` as independent sub-streams (in parallel when an executor is given)."""
    parts = split_points(len(symbols), substreams)
    if executor is None:
        return [bank.encode(symbols[a:b], index[a:b]) for a, b in parts]
    return list(executor.map(lambda p: bank.encode(symbols[p[0] : p[1]], index[p[0] : p[1]]), parts))


def decode_substreams(
    bank: TableBank, chunks: Sequence[bytes], index: np.ndarray, executor: Executor | None = None
) -> np.ndarray:
    """Decode the sub-streams of :func:`encode_substreams` and join them."""
    parts = split_points(len(index), len(chunks))
    jobs = list(zip(chunks, parts))
    if executor is None:
        out = [bank.decode(c, index[a:b]) for c, (a, b) in jobs]
    else:
        out = list(executor.map(lambda j: bank.decode(j[0], index[j[1][0] : j[1][1]]), jobs))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)
