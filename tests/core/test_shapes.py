"""factorize, suggest_shape, full_bond_dims, n_params."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpo


def _largest_prime_factor(n: int) -> int:
    largest, p = 1, 2
    while p * p <= n:
        while n % p == 0:
            largest, n = p, n // p
        p += 1
    return max(largest, n) if n > 1 else largest


@pytest.mark.parametrize("n", [1, 2, 3, 7, 97, 768, 3072, 30522, 50257, 2**20, 9973 * 2])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_factorize_known_sizes(n, k):
    f = mpo.factorize(n, k)
    assert len(f) == k and math.prod(f) == n and all(d >= 1 for d in f)
    assert list(f) == sorted(f)


def test_factorize_examples():
    assert mpo.factorize(768, 5) == (3, 4, 4, 4, 4)
    assert mpo.factorize(97, 3) == (1, 1, 97)
    assert mpo.factorize(30522, 3) == (2, 3, 5087)
    assert mpo.factorize(50257, 3) == (1, 29, 1733)  # 50257 = 29 * 1733
    assert mpo.factorize(1, 4) == (1, 1, 1, 1)


@given(n=st.integers(1, 10**7), k=st.integers(1, 8))
def test_factorize_product_count_and_balance(n, k):
    f = mpo.factorize(n, k)
    assert len(f) == k and math.prod(f) == n
    # balanced: the greedy "largest prime into the smallest factor" keeps max/min within the
    # largest prime factor (the last prime a factor received found it the smallest)
    assert max(f) <= min(f) * _largest_prime_factor(n)


@given(a=st.integers(0, 12), b=st.integers(0, 6), k=st.integers(1, 6))
def test_factorize_balanced_for_smooth_numbers(a, b, k):
    n = 2**a * 3**b
    f = mpo.factorize(n, k)
    assert math.prod(f) == n
    if a + b >= k:  # enough prime factors for every slot
        assert min(f) >= 2
    assert max(f) <= 3 * min(f)


@given(m=st.integers(1, 5000), n=st.integers(1, 5000), k=st.integers(1, 7))
def test_suggest_shape_both_layouts_multiply_out(m, n, k):
    for layout in ("balanced", "chain"):
        rows, cols = mpo.suggest_shape((m, n), k, layout=layout)
        assert len(rows) == len(cols) == k
        assert math.prod(rows) == m and math.prod(cols) == n
    rows, cols = mpo.suggest_shape((m, n), k, layout="chain")
    if k >= 3:
        assert set(rows[1:-1]) == set(cols[1:-1]) == {1}
    if k >= 2:  # a = smallest divisor of M with a*a >= M, b = M / a
        a, b = rows[0], rows[-1]
        assert a * b == m and a * a >= m
        assert not any(m % d == 0 and d * d >= m for d in range(1, a))


def test_paper_chain_shapes():
    assert mpo.suggest_shape((768, 768), 5, layout="chain") == ((32, 1, 1, 1, 24),) * 2
    rows, cols = mpo.suggest_shape((3072, 768), 5, layout="chain")
    assert rows == (64, 1, 1, 1, 48) and cols == (32, 1, 1, 1, 24)
    assert mpo.suggest_shape((768, 3072), 3, layout="chain") == ((32, 1, 24), (64, 1, 48))
    assert mpo.suggest_shape((97, 1), 2, layout="chain") == ((97, 1), (1, 1))
    assert mpo.suggest_shape((768, 768), 5) == ((3, 4, 4, 4, 4), (4, 4, 4, 4, 3))


def test_full_bond_dims_and_n_params():
    assert mpo.full_bond_dims((3, 4, 4, 4, 4), (4, 4, 4, 4, 3)) == (1, 12, 192, 192, 12, 1)
    assert mpo.full_bond_dims((32, 1, 1, 24), (32, 1, 1, 24)) == (1, 576, 576, 576, 1)
    assert mpo.full_bond_dims((5,), (7,)) == (1, 1)
    assert mpo.n_params((5,), (7,)) == 35
    assert mpo.n_params((2, 5), (3, 6), (1, 4, 1)) == 144
    # OPF chain: each 1x1 middle core adds d**2 parameters
    base = mpo.n_params((32, 24), (32, 24))
    assert mpo.n_params((32, 1, 24), (32, 1, 24)) == base + 576**2
