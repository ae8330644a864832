"""A digits CNN written in PyTorch and trained here (scikit-learn's 8x8 digits), for the tests of PyTorch in.

`digits_torch_cnn(folder)` gives its ONNX export (torch's own exporter, through `edgeopt.from_torch`), the torch
float model's top-1 on the held-out half and that half as an eval .npz: what an integration test of a target
(edge-server today; mobile-cpu, nrf52840 once ONNX -> TFLite lands) needs. Needs torch (the `torch` extra).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

EPOCHS = 12


@cache
def trained_digits_cnn() -> tuple[Any, np.ndarray, np.ndarray, float]:
    """(the trained nn.Module in eval mode, x_test (N, 1, 8, 8) float32, y_test, torch top-1 in %); trained once
    per process, seeded."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)  # seeded and steady on a shared 2-core machine
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # NCHW, values in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    half = len(x) // 2
    model = DigitsCnn(nn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[:half]), torch.from_numpy(y[:half])
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(half)
        for i in range(0, half, 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    x_test, y_test = x[half:], y[half:]
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    return model, x_test, y_test, float(100.0 * np.mean(pred == y_test))


def DigitsCnn(nn: Any) -> Any:  # noqa: N802 - a factory: torch is imported by the caller, never at module import
    """Conv-BN-ReLU stem, a depthwise-separable block with Hardswish and a residual add, a strided conv, global
    mean, Linear."""

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                    nn.Hardswish())
            self.pw = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
            self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                                      nn.ReLU())
            self.head = nn.Linear(32, 10)

        def forward(self, x: Any) -> Any:
            h = self.stem(x)
            h = nn.functional.relu(h + self.pw(self.dw(h)))  # residual add
            return self.head(self.down(h).mean(dim=(2, 3)))

    return Net()


def digits_torch_cnn(folder: Path) -> tuple[Path, float, Path]:
    """(the trained CNN exported to folder/digits_cnn.onnx, the torch float model's top-1 in %, folder/eval.npz
    with the held-out x (N, 1, 8, 8) and y)."""
    import torch

    import edgeopt

    model, x_test, y_test, top1 = trained_digits_cnn()
    folder = Path(folder)
    onnx_path = edgeopt.from_torch(model, (torch.from_numpy(x_test[:2]),), folder / "digits_cnn.onnx",
                                   input_names=["image"], output_names=["logits"])
    eval_npz = folder / "eval.npz"
    np.savez(eval_npz, x=x_test, y=y_test)
    return onnx_path, top1, eval_npz
