import numpy as np
import pytest

from hwgen.fixed import QFormat, bits_for, frac_for_range, frac_min_mse, requantize, shift_round


def test_format_range():
    f = QFormat(8, 4)
    assert (f.min_int, f.max_int) == (-128, 127)
    assert f.max_value == 127 / 16 and f.min_value == -8.0


@pytest.mark.parametrize("width", [0, 63, 2.5])
def test_format_width_wrong(width):
    with pytest.raises(ValueError, match="Format width must be an integer"):
        QFormat(width, 0)


def test_quantize_saturates_both_ends():
    f = QFormat(4, 1)
    assert f.quantize([100.0, -100.0, 3.5, -4.0, -4.5]).tolist() == [7, -8, 7, -8, -8]


def test_quantize_rounds_half_up():
    f = QFormat(8, 0)
    assert f.quantize([0.5, 1.5, -0.5, -1.5, 2.49]).tolist() == [1, 2, 0, -1, 2]


def test_shift_round_ties_and_negative_shift():
    assert shift_round([2, 6, -2, -6, 5, -5], 2).tolist() == [1, 2, 0, -1, 1, -1]
    assert shift_round([3, -3], -2).tolist() == [12, -12]
    assert shift_round([7], 0).tolist() == [7]


def test_requantize_saturates_after_rounding():
    to = QFormat(4, 0)
    assert requantize([28, 29, -33, -34], 2, to).tolist() == [7, 7, -8, -8]
    # rounding 7.5 up to 8 overflows Q4.0 and saturates to 7
    assert requantize([30], 2, to).tolist() == [7]


def test_requantize_matches_float_rounding():
    rng = np.random.default_rng(1)
    q = rng.integers(-2**20, 2**20, 10000)
    to = QFormat(16, 3)
    exp = to.saturate(np.floor(q / 2**7 + 0.5).astype(np.int64))
    assert np.array_equal(requantize(q, 10, to), exp)


def test_bits_for():
    assert bits_for(-128, 127) == 8
    assert bits_for(-129, 0) == 9
    assert bits_for(0, 128) == 9
    assert bits_for(0, 0) == 1


def test_frac_for_range_never_saturates():
    for peak in [0.01, 0.3, 0.999, 1.0, 1.5, 7.99, 8.0, 100.0]:
        for width in [4, 8, 16]:
            f = QFormat(width, frac_for_range(peak, width))
            assert f.max_value >= peak
            assert QFormat(width, f.frac + 1).max_value < peak


def test_frac_min_mse_clips_outliers():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 0.1, 100000), [4.0]])
    width = 6
    chosen = frac_min_mse(values, width)
    assert chosen > frac_for_range(4.0, width)
