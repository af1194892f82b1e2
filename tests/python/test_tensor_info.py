"""TensorInfo as documented: constructible, numpy.pad-compatible padding, size and
unpadded_shape, and the doc's quantise/pad and depad/dequantise snippets literally."""

import numpy as np
import pytest

import axelera.runtime as axr
from axelera.runtime import TensorInfo


def test_doc_quantise_and_pad_snippet_gives_the_padded_shape():
    input = TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
    src = np.zeros(input.unpadded_shape, dtype=np.float32)
    quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
    padded = np.pad(quant, input.padding, constant_values=input.zero_point)
    assert input.unpadded_shape == (1, 224, 224, 2)
    assert padded.shape == input.shape == (1, 230, 240, 3)
    assert padded.dtype == np.int8
    assert padded.nbytes == input.size


def test_doc_quantise_snippet_with_scale_and_zero_point():
    input = TensorInfo((1, 4, 4, 4), padding=[(0, 0), (0, 0), (0, 0), (0, 1)], scale=0.5,
                       zero_point=-3)
    src = np.array([0.0, 1.0, -1.0, 100.0, -100.0, 0.26], dtype=np.float32)
    src = np.resize(src, input.unpadded_shape).astype(np.float32)
    quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
    padded = np.pad(quant, input.padding, constant_values=input.zero_point)
    assert padded.shape == (1, 4, 4, 4)
    assert list(padded[0, 0, 0]) == [-3, -1, -5, -3]  # 0, 1, -1 then the pad (zero point)
    assert padded[0, 0, 1, 0] == 127 and padded[0, 0, 1, 1] == -128  # saturated
    assert np.all(padded[..., 3] == -3)


def test_doc_depad_and_dequantise_snippet_gives_the_unpadded_values():
    output = TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
    out = np.zeros(output.shape, dtype=np.int8)
    depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
    dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
    assert depadded.shape == output.unpadded_shape == (1, 1, 1, 1000)
    assert dequant.shape == (1, 1, 1, 1000) and dequant.dtype == np.float32
    assert output.size == 1024


def test_depad_and_dequantise_with_scale_and_zero_point():
    output = TensorInfo((1, 1, 1, 8), padding=[(0, 0), (0, 0), (0, 0), (0, 3)], scale=0.25,
                        zero_point=2)
    out = np.arange(8, dtype=np.int8).reshape(output.shape)
    depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
    dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
    np.testing.assert_array_equal(dequant.ravel(), [-0.5, -0.25, 0.0, 0.25, 0.5])


def test_defaults_are_int8_unnamed_unpadded_unit_scale():
    info = TensorInfo((2, 3))
    assert info.shape == (2, 3) and isinstance(info.shape, tuple)
    assert info.dtype == np.int8 and isinstance(info.dtype, np.dtype)
    assert info.name == ""
    assert info.padding == [(0, 0), (0, 0)]
    assert info.scale == 1.0 and info.zero_point == 0
    assert info.unpadded_shape == (2, 3)
    assert info.size == 6


def test_size_counts_bytes_of_the_dtype():
    assert TensorInfo((1, 10), dtype=np.float32).size == 40
    assert TensorInfo([1, 2, 2], dtype="int32").size == 16


def test_float16_is_numpys_half_and_bfloat16_which_numpy_lacks_is_invalid_argument():
    info = TensorInfo((1, 10), dtype=np.float16)
    assert info.dtype == np.float16 and info.size == 20
    with pytest.raises(axr.InvalidArgument, match="expected a numpy dtype, got 'bfloat16' .numpy has no bfloat16."):
        TensorInfo((1, 10), dtype="bfloat16")


def test_shape_list_becomes_tuple_and_padding_pairs_become_tuples():
    info = TensorInfo([1, 8], padding=[[0, 0], [1, 2]])
    assert info.shape == (1, 8)
    assert info.padding == [(0, 0), (1, 2)]
    assert all(isinstance(p, tuple) for p in info.padding)
    assert info.unpadded_shape == (1, 5)


def test_fields_keyword_constructible_and_comparable():
    a = TensorInfo(shape=(1, 4), dtype=np.int8, name="x", padding=[(0, 0), (0, 1)], scale=0.5,
                   zero_point=-1)
    b = TensorInfo((1, 4), np.int8, "x", [(0, 0), (0, 1)], 0.5, -1)
    assert a == b
    assert "x" in repr(a)


def test_padding_with_wrong_rank_is_invalid_argument():
    with pytest.raises(axr.InvalidArgument, match="padding"):
        TensorInfo((1, 4), padding=[(0, 1)])


def test_padding_larger_than_the_dimension_is_invalid_argument():
    with pytest.raises(axr.InvalidArgument, match="padding"):
        TensorInfo((1, 4), padding=[(0, 0), (3, 3)])
    with pytest.raises(ValueError):
        TensorInfo((1, 4), padding=[(0, 0), (-1, 0)])
