"""The metric per output (edgeopt.validate.metrics), data for several inputs (edgeopt.data.datasets) and the output
matching of a converted model (edgeopt.validate.accuracy.output_order). No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.data.datasets import check_against_input, load_dataset
from edgeopt.data.tensors import IOSpec
from edgeopt.errors import DataError, InputError
from edgeopt.validate.accuracy import compare, output_order
from edgeopt.validate.metrics import metric_setting, resolve_metrics
from edgeopt.vocabulary import AccuracyMetric as M

CLS, REG2, SEG = IOSpec("cls", (None, 10)), IOSpec("reg", (None, 2)), IOSpec("seg", (None, 8, 8, 3))


def test_auto_scores_class_outputs_by_top1_or_agreement_and_the_rest_by_snr() -> None:
    rng = np.random.default_rng(0)
    soft = rng.random((5, 2))
    soft /= soft.sum(1, keepdims=True)
    assert resolve_metrics(M.AUTO, [CLS, REG2, SEG], labelled=True) == (M.TOP1, M.AGREEMENT, M.SNR)
    assert resolve_metrics(M.AUTO, [CLS, SEG], labelled=False) == (M.AGREEMENT, M.SNR)
    # (N, 2): class scores only when the float model's rows are probabilities
    assert resolve_metrics(M.AUTO, [REG2], False, [rng.standard_normal((5, 2))]) == (M.SNR,)
    assert resolve_metrics(M.AUTO, [REG2], False, [soft]) == (M.AGREEMENT,)
    assert resolve_metrics(M.AUTO, [IOSpec("y", (None, 1))], labelled=False) == (M.SNR,)


def test_settings_per_output_and_what_does_not_fit() -> None:
    assert resolve_metrics({"seg": M.COSINE}, [CLS, SEG], True) == (M.TOP1, M.COSINE)
    assert resolve_metrics((M.AGREEMENT, M.MAX_ABS), [CLS, SEG], True) == (M.AGREEMENT, M.MAX_ABS)
    with pytest.raises(InputError, match=r"metric top1 does not fit output 'seg' of shape \(N, 8, 8, 3\)"):
        resolve_metrics(M.TOP1, [SEG], True)
    with pytest.raises(InputError, match="needs labels"):
        resolve_metrics(M.TOP1, [CLS], False)
    with pytest.raises(InputError, match=r"output\(s\) mask, which the model does not have"):
        resolve_metrics({"mask": M.SNR}, [CLS, SEG], True)
    with pytest.raises(InputError, match=r"3 metric\(s\) given for 2 output"):
        resolve_metrics((M.SNR,) * 3, [CLS, SEG], True)
    assert metric_setting(["snr"]) is M.SNR
    assert metric_setting(["seg=cosine", "cls=top1"]) == {"seg": M.COSINE, "cls": M.TOP1}
    with pytest.raises(InputError, match="unknown metric"):
        metric_setting(["psnr"])


def test_compare_scores_every_output_and_keeps_the_primary_on_top() -> None:
    rng = np.random.default_rng(1)
    ref = [rng.random((40, 10)), rng.standard_normal((40, 8, 8, 3))]
    out = [ref[0] + 1e-3 * rng.standard_normal(ref[0].shape), ref[1] + 0.01 * rng.standard_normal(ref[1].shape)]
    labels = ref[0].argmax(1)
    res = compare(out, ref, labels, "float", (M.TOP1, M.SNR), ("cls", "seg"))
    cls, seg = res.outputs
    assert res.metric == "top1" and res.value == cls.value == 100.0 and res.drop == 0.0
    assert seg.metric is M.SNR and 35 < seg.value < 45 and seg.drop is None and seg.cosine > 0.999
    assert seg.max_abs == pytest.approx(float(np.max(np.abs(out[1] - ref[1]))))


def test_outputs_are_matched_by_signature_key_even_when_shapes_agree() -> None:
    want = [IOSpec("a", (None, 4)), IOSpec("b", (None, 4))]
    # a converter that put Keras output 1 first: its signature still says output_1
    assert output_order(["output_1", "output_0"], [(3, 4), (3, 4)], want) == [1, 0]
    assert output_order(["b", "a"], [(3, 4), (3, 4)], want) == [1, 0]
    assert output_order(["t0", "t1"], [(3, 2), (3, 4)], [IOSpec("a", (None, 4)), IOSpec("b", (None, 2))]) == [1, 0]


INPUTS = (IOSpec("image", (None, 8, 8, 1)), IOSpec("extra", (None, 4)))


def test_several_inputs_by_name_or_default_names_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    img, ext = rng.random((6, 8, 8, 1)), rng.random((6, 4))
    np.savez(tmp_path / "named.npz", extra=ext, image=img, y=np.arange(6))
    np.savez(tmp_path / "order.npz", img, ext)  # arr_0, arr_1
    for name in ("named.npz", "order.npz"):
        ds = check_against_input(load_dataset(tmp_path / name, "eval", inputs=INPUTS), INPUTS[0].shape, "eval", INPUTS)
        assert [k for k, _ in ds.inputs] == ["image", "extra"]
        batch = ds.batch
        assert isinstance(batch, dict) and np.allclose(batch["image"], img) and np.allclose(batch["extra"], ext)
        assert batch["image"].dtype == np.float32
    assert load_dataset(tmp_path / "named.npz", "eval", inputs=INPUTS).y is not None


def test_several_inputs_bad_data_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "stray.npz", img=rng.random((6, 8, 8, 1)), extra=rng.random((6, 4)))
    with pytest.raises(DataError, match=r"array\(s\) img match no model input \(the model's inputs: image, extra\)"):
        load_dataset(tmp_path / "stray.npz", "eval", inputs=INPUTS)
    np.savez(tmp_path / "counts.npz", image=rng.random((6, 8, 8, 1)), extra=rng.random((5, 4)))
    with pytest.raises(DataError, match="different sample counts"):
        load_dataset(tmp_path / "counts.npz", "eval", inputs=INPUTS)
    np.savez(tmp_path / "shape.npz", image=rng.random((6, 8, 8)), extra=rng.random((6, 4)))
    with pytest.raises(DataError, match="for input 'image'"):
        load_dataset(tmp_path / "shape.npz", "eval", inputs=INPUTS)
    np.save(tmp_path / "one.npy", rng.random((6, 4)))
    with pytest.raises(DataError, match="a .npy holds one array and the model has 2 inputs"):
        load_dataset(tmp_path / "one.npy", "eval", inputs=INPUTS)
