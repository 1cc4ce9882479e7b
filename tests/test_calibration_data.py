"""Calibration data: the digits sample loads and batches; every kind of bad .npz is refused, naming the input."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import sample_file as sample
from workbench.calibration_data import (
    InputSpec,
    check_npz_headers,
    from_arrays,
    load_npz,
    model_inputs,
    random_data,
)
from workbench.errors import DataError


@pytest.fixture(scope="module")
def digits_inputs() -> list[InputSpec]:
    return model_inputs(sample("digits_mlp.onnx"))


@pytest.fixture()
def calib_array() -> np.ndarray:
    with np.load(sample("digits_calib.npz"), allow_pickle=False) as z:
        return z["input"].copy()


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory) -> Path:
    """Two inputs sharing symbolic dims: a [N, L] + b [N, L] -> y."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        "pair",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "L"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", "L"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L"])],
    )
    path = tmp_path_factory.mktemp("pair") / "pair.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def refused(path: Path, inputs, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        load_npz(path, inputs, **kwargs)
    return str(err.value)


# ---------------------------------------------------------------------------------------------- good data


def test_model_inputs_describe_the_digits_model(digits_inputs):
    assert [i.name for i in digits_inputs] == ["input"]
    (spec,) = digits_inputs
    assert spec.dtype == "float32"
    assert len(spec.shape) == 2 and spec.shape[1] == 64
    assert not isinstance(spec.shape[0], int), "the batch dimension is dynamic"


def test_the_digits_calibration_set_loads_with_its_statistics(digits_inputs, calib_array):
    data = load_npz(sample("digits_calib.npz"), digits_inputs)
    assert data.n_samples == calib_array.shape[0]
    assert not data.synthetic and data.source == "digits_calib.npz"
    np.testing.assert_array_equal(data.arrays["input"], calib_array)

    import pandas as pd

    table = pd.DataFrame(data.stats())
    row = table.set_index("input").loc["input"]
    assert row["min"] == pytest.approx(float(calib_array.min()))
    assert row["max"] == pytest.approx(float(calib_array.max()))
    assert row["mean"] == pytest.approx(float(calib_array.mean()), rel=1e-5)
    assert row["std"] == pytest.approx(float(calib_array.std()), rel=1e-5)
    assert row["shape"] == "x".join(map(str, calib_array.shape))


def test_batches_are_always_the_same_size(digits_inputs):
    data = load_npz(sample("digits_calib.npz"), digits_inputs)
    n = data.n_samples
    size = 100 if n % 100 else 96  # a size that does not divide n
    dropped = list(data.batches(size))
    assert {len(b["input"]) for b in dropped} == {size}
    plan = data.plan_batches(size)
    assert plan.n_batches == n // size and plan.dropped == n % size and "dropped" in plan.note
    padded = list(data.batches(size, remainder="pad"))
    assert {len(b["input"]) for b in padded} == {size}
    assert len(padded) == -(-n // size) and "padded" in data.plan_batches(size, "pad").note
    # every sample appears, the padding repeats the first ones
    np.testing.assert_array_equal(np.concatenate([b["input"] for b in padded])[:n], data.arrays["input"])
    # fewer samples than a batch: one batch of all of them
    assert [len(b["input"]) for b in data.batches(n + 10)] == [n]


def test_labels_are_accepted_only_when_asked_for(digits_inputs):
    test_file = sample("digits_test.npz")
    message = refused(test_file, digits_inputs)
    assert "'label'" in message and "not a model input" in message and "'input'" in message
    data = load_npz(test_file, digits_inputs, extra_keys=("label",))
    assert data.extras["label"].shape == (data.n_samples,)


def test_float64_data_is_cast_with_a_note(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "f64.npz"
    np.savez(path, input=calib_array.astype(np.float64))
    data = load_npz(path, digits_inputs)
    assert data.arrays["input"].dtype == np.float32
    assert any("float64" in n and "'input'" in n for n in data.notes)


def test_random_data_is_labelled_synthetic(digits_inputs):
    data = random_data(digits_inputs, {"input": (64,)}, n=8, seed=1)
    assert data.synthetic and "accuracy meaningless" in " ".join(data.notes)
    assert data.arrays["input"].shape == (8, 64) and data.arrays["input"].dtype == np.float32
    # static non-batch dims need no shape
    assert random_data(digits_inputs, None, n=3).arrays["input"].shape == (3, 64)


# ---------------------------------------------------------------------------------------------- bad data


def test_a_pickled_object_array_is_refused_before_loading(tmp_path, digits_inputs):
    path = tmp_path / "pickled.npz"
    np.savez(path, input=np.array([{"evil": i} for i in range(4)], dtype=object))  # pickles on write
    message = refused(path, digits_inputs)
    assert "'input'" in message and "objects" in message


def test_nan_and_inf_are_counted_per_input(tmp_path, digits_inputs, calib_array):
    bad = calib_array.copy()
    bad[5, 0] = bad[7, 3] = bad[9, 9] = np.nan
    bad[11, 1] = np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, input=bad)
    message = refused(path, digits_inputs)
    assert "'input'" in message and "3 NaN" in message and "1 Inf" in message and "sample 5" in message


def test_a_misnamed_array_is_refused_with_the_close_match(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "misnamed.npz"
    np.savez(path, inputs=calib_array)
    message = refused(path, digits_inputs)
    assert "'inputs'" in message and "Did you mean 'input'" in message


def test_a_missing_input_is_named(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "only_labels.npz"
    np.savez(path, label=np.arange(len(calib_array)))
    message = refused(path, digits_inputs, extra_keys=("label",))
    assert "no array for input 'input'" in message


def test_wrong_rank_and_wrong_static_dims_are_refused(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "rank3.npz"
    np.savez(path, input=calib_array.reshape(-1, 8, 8))
    message = refused(path, digits_inputs)
    assert "'input'" in message and "rank 3" in message
    path = tmp_path / "63.npz"
    np.savez(path, input=calib_array[:, :63])
    message = refused(path, digits_inputs)
    assert "'input'" in message and "dimension 1 must be 64" in message


def test_an_empty_array_is_refused(tmp_path, digits_inputs):
    path = tmp_path / "empty.npz"
    np.savez(path, input=np.zeros((0, 64), np.float32))
    assert "'input'" in (m := refused(path, digits_inputs)) and "empty" in m


def test_strings_and_integer_images_are_refused(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "str.npz"
    np.savez(path, input=np.array([["a"] * 64] * 4))
    assert "'input'" in (m := refused(path, digits_inputs)) and "dtype" in m
    path = tmp_path / "uint8.npz"
    np.savez(path, input=(calib_array * 255).astype(np.uint8))
    err = pytest.raises(DataError, load_npz, path, digits_inputs).value
    assert "'input'" in err.message and "uint8" in err.message and "preprocessing" in (err.hint or "")


def test_too_few_samples_are_refused(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "few.npz"
    np.savez(path, input=calib_array[:3])
    assert "'input'" in (m := refused(path, digits_inputs, min_samples=10)) and "3 sample" in m


def test_mismatched_sample_counts_across_inputs(tmp_path, pair_model):
    inputs = model_inputs(pair_model)
    path = tmp_path / "counts.npz"
    np.savez(path, a=np.ones((5, 4), np.float32), b=np.ones((6, 4), np.float32))
    message = refused(path, inputs)
    assert "'a': 5" in message and "'b': 6" in message and "input 'b'" in message


def test_shared_symbolic_dims_and_profile_bounds(tmp_path, pair_model):
    inputs = model_inputs(pair_model)
    path = tmp_path / "dims.npz"
    np.savez(path, a=np.ones((5, 4), np.float32), b=np.ones((5, 3), np.float32))
    assert "Input 'b'" in (m := refused(path, inputs)) and "'L'" in m
    path = tmp_path / "long.npz"
    np.savez(path, a=np.ones((5, 10), np.float32), b=np.ones((5, 10), np.float32))
    profile = {"a": ((1, 4), (8, 8)), "b": ((1, 4), (8, 8))}
    assert "Input 'a'" in (m := refused(path, inputs, profile=profile)) and "4..8" in m
    assert load_npz(path, inputs, profile={"a": ((1, 4), (8, 16)), "b": ((1, 4), (8, 16))}).n_samples == 5


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_a_member_declaring_an_absurd_size_is_refused_unread(tmp_path, digits_inputs, calib_array):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("input.npy", _npy_bytes(calib_array[:4]))
    raw = bytearray(path.read_bytes())
    central = raw.find(b"PK\x01\x02")
    raw[central + 24 : central + 28] = struct.pack("<I", 0xFFFFFFF0)  # declared uncompressed size: ~4 GiB
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).getinfo("input.npy").file_size == 0xFFFFFFF0
    message = refused(path, digits_inputs)
    assert "'input.npy'" in message and "4.00 GiB" in message and "limit" in message


def test_a_highly_compressed_archive_over_the_limit_is_refused(tmp_path, digits_inputs):
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, input=np.zeros((40_000, 64), np.float32))  # ~10 MiB of zeros in a few KiB
    assert path.stat().st_size < 100_000
    assert "limit" in refused(path, digits_inputs, max_bytes=1 << 20)


def test_an_npy_header_claiming_more_than_the_member_holds(tmp_path, digits_inputs):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 64)}
    )
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("input.npy", header.getvalue() + b"\0" * 256)
    message = refused(path, digits_inputs, max_bytes=1 << 40)
    assert "Input 'input'" in message and "corrupt" in message


def test_a_file_that_is_not_npz(tmp_path, digits_inputs):
    path = tmp_path / "data.npz"
    path.write_text("input,label\n1,2\n")
    assert "not an .npz" in refused(path, digits_inputs)


def test_in_memory_arrays_get_the_same_checks(digits_inputs, calib_array):
    bad = calib_array[:4].copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="'input'.*1 NaN"):
        from_arrays({"input": bad}, digits_inputs)
    assert from_arrays({"input": calib_array}, digits_inputs).n_samples == len(calib_array)


# ---------------------------------------------------------------------------------------------- headers only


def _damage_array_tail(path: Path) -> None:
    """Overwrites the last bytes of the (only) member's data, far from its .npy header: the zip directory and the
    header stay valid, the member's CRC no longer matches, so any read to the end of the array fails."""
    raw = bytearray(path.read_bytes())
    end = raw.find(b"PK\x01\x02")  # the central directory follows the member data
    raw[end - 64 : end] = bytes(255 - b for b in raw[end - 64 : end])
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_the_header_check_never_reads_the_arrays(tmp_path, digits_inputs, calib_array, save):
    """An app process checks calibration data before queueing a job; for a 2 GB set that check must not read the
    arrays. Proof here: the array data are damaged, the header check still passes (reading them would fail),
    and only load_npz (the job) finds the damage, naming file and input."""
    path = tmp_path / "damaged.npz"
    save(path, input=calib_array.astype(np.float64))
    _damage_array_tail(path)
    with pytest.raises(zipfile.BadZipFile):  # the damage is real: zipfile itself refuses the member
        with zipfile.ZipFile(path) as zf:
            zf.read("input.npy")

    headers = check_npz_headers(path, digits_inputs)
    assert headers.source == "damaged.npz" and headers.n_samples == calib_array.shape[0]
    assert headers.shapes == {"input": calib_array.shape} and headers.dtypes == {"input": "float64"}
    assert any("float64" in n and "float32" in n for n in headers.notes), "the cast loading will do is noted"

    err = pytest.raises(DataError, load_npz, path, digits_inputs).value
    assert "Input 'input' in 'damaged.npz'" in err.message and "damaged" in err.message
    assert "write the file again" in (err.hint or "")


def test_the_header_check_refuses_what_load_npz_refuses_with_the_same_message(
    tmp_path, pair_model, calib_array
):
    """Every refusal that headers can decide comes before any job with the words the job would have used."""
    digits = model_inputs(sample("digits_mlp.onnx"))
    pair = model_inputs(pair_model)
    cases = {
        "misnamed": (digits, {"inputs": calib_array}, {}),
        "rank": (digits, {"input": calib_array.reshape(-1, 8, 8)}, {}),
        "static-dim": (digits, {"input": calib_array[:, :63]}, {}),
        "strings": (digits, {"input": np.array([["a"] * 64] * 4)}, {}),
        "uint8": (digits, {"input": (calib_array * 255).astype(np.uint8)}, {}),
        "empty": (digits, {"input": np.zeros((0, 64), np.float32)}, {}),
        "few": (digits, {"input": calib_array[:3]}, {"min_samples": 10}),
        "objects": (digits, {"input": np.array([{"x": 1}] * 4, dtype=object)}, {}),
        "label-unasked": (digits, {"input": calib_array, "label": np.arange(len(calib_array))}, {}),
        "shared-dim": (pair, {"a": np.ones((5, 4), np.float32), "b": np.ones((5, 3), np.float32)}, {}),
        "counts": (pair, {"a": np.ones((5, 4), np.float32), "b": np.ones((6, 4), np.float32)}, {}),
        "profile": (
            pair,
            {"a": np.ones((5, 10), np.float32), "b": np.ones((5, 10), np.float32)},
            {"profile": {"a": ((1, 4), (8, 8)), "b": ((1, 4), (8, 8))}},
        ),
    }
    for case, (inputs, arrays, kwargs) in cases.items():
        path = tmp_path / f"{case}.npz"
        np.savez(path, **arrays)
        at_submit = pytest.raises(DataError, check_npz_headers, path, inputs, **kwargs).value
        in_job = pytest.raises(DataError, load_npz, path, inputs, **kwargs).value
        assert (at_submit.message, at_submit.hint) == (in_job.message, in_job.hint), case
        assert f"{case}.npz" in at_submit.message, case


def test_values_are_left_to_the_loader(tmp_path, calib_array):
    """NaN/Inf and integers that do not fit the model's type are in the data, not the headers: the header check
    accepts them, load_npz refuses them naming file and input."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT, name="cast")],
        "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = tmp_path / "ids.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    ids = model_inputs(model)

    wide = tmp_path / "wide.npz"
    np.savez(wide, ids=np.array([[1, 2, 3, 2**40]] * 3, np.int64))
    assert check_npz_headers(wide, ids).n_samples == 3
    err = pytest.raises(DataError, load_npz, wide, ids).value
    assert "Input 'ids' in 'wide.npz'" in err.message and "outside the range" in err.message and err.hint
    small = tmp_path / "small.npz"
    np.savez(small, ids=np.array([[1, 2, 3, 4]] * 3, np.int64))
    assert load_npz(small, ids).arrays["ids"].dtype == np.int32

    digits = model_inputs(sample("digits_mlp.onnx"))
    bad = calib_array.copy()
    bad[4, 2] = np.nan
    nan = tmp_path / "nan.npz"
    np.savez(nan, input=bad)
    assert check_npz_headers(nan, digits).n_samples == len(bad)
    assert "Input 'input' in 'nan.npz'" in (m := refused(nan, digits)) and "1 NaN" in m and "sample 4" in m


def test_the_preview_reads_values_of_a_small_set_and_only_headers_of_a_big_one(tmp_path, digits_inputs, calib_array):
    from workbench.calibration_data import preview_npz

    path = tmp_path / "calib.npz"
    np.savez(path, input=calib_array)
    small = preview_npz(path, digits_inputs)
    assert small.values_read and small.n_samples == len(calib_array)
    assert small.columns["min"] == [float(calib_array.min())] and small.columns["max"] == [float(calib_array.max())]

    # Over the limit: shapes and dtypes from the headers; damaged array data is not even noticed, proving no
    # value was read (the job that reads them says so, naming the input).
    _damage_array_tail(path)
    big = preview_npz(path, digits_inputs, max_read_bytes=calib_array.nbytes - 1)
    assert not big.values_read and big.n_samples == len(calib_array)
    assert big.columns == {"input": ["input"], "dtype": ["float32"], "shape": ["x".join(map(str, calib_array.shape))],
                           "samples": [len(calib_array)]}
    with pytest.raises(DataError, match="'input'"):
        preview_npz(path, digits_inputs)  # small enough to read: the damage is found
    # Header problems are refused whatever the size.
    np.savez(path, inputs=calib_array)
    with pytest.raises(DataError, match="'inputs'"):
        preview_npz(path, digits_inputs, max_read_bytes=0)
