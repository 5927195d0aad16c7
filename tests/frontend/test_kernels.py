"""Kernel pieces against straightforward Python transcriptions of the C integer routines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from microspeech.frontend.kernels import _filterbank_sqrt


def c_sqrt(num: int) -> int:
    """filterbank.c Sqrt64 (with its Sqrt32 shortcut): digit-by-digit root, then round up."""
    if num == 0:
        return 0
    wide = num >> 32 != 0
    width = 64 if wide else 32
    max_bit_number = (width - num.bit_length()) | 1
    bit = 1 << (width - 1 - max_bit_number)
    res = 0
    for _ in range((width - 1 - max_bit_number) // 2 + 1):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    if num > res and res != (0xFFFFFFFF if wide else 0xFFFF):
        res += 1
    return res


def as_int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@hsettings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.integers(0, 2**32 - 1),
        st.integers(2**32 - 2**20, 2**32 + 2**20),
        st.integers(0, 2**64 - 1),
        st.integers(2**62 - 10, 2**62 + 10),
        st.integers(2**64 - 2**33, 2**64 - 1),
        st.integers(0, 2**20).map(lambda r: r * r + (r if r % 2 else r + 1)),
    )
)
def test_filterbank_sqrt_matches_c(num):
    assert _filterbank_sqrt(as_int64(num)) == c_sqrt(num)
