import pytest

from tests.oracle import FLOATS, check, noncontig, rand


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)),
                                   ((), (3,)), ((0, 3), (1, 3))])
def test_mul_broadcast(dtype, sa, sb):
    check(lambda a, b: a * b, lambda a, b: a * b, [rand(*sa, dtype=dtype), rand(*sb, dtype=dtype)])


@pytest.mark.oracle
def test_noncontig_matmul():
    a = noncontig(rand(4, 5))
    check(lambda a, b: (a @ b).relu(), lambda a, b: (a @ b).relu(), [a, rand(5, 3)])
