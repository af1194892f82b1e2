#!/usr/bin/python3
"""Recurrent layers as PyTorch exports them (torch.onnx.export, opset 14), against torch's own
outputs: an EasyOCR-style recogniser (convolutions, then two bidirectional batch-first LSTMs
with Linear layers between), a two-layer batch-first GRU keyword spotter (PyTorch's GRU is
ONNX's linear_before_reset=1) and a bidirectional ReLU RNN, with the initial states the
exporter computes from Shape/Expand. Each case is written in the backend-test layout and run by
engine-conformance on oneDNN's primitives and with AXSTREAM_ENGINE_REFERENCE=1.

usage: torch_exports.py ENGINE_CONFORMANCE OUTDIR   (exit 77 when python3-torch is missing)
"""
import os
import subprocess
import sys

import numpy as np

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed (it exports the models)")
    sys.exit(77)
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402


class EasyOcrStyle(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
            torch.nn.Conv2d(32, 64, 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2))
        self.pool = torch.nn.AdaptiveAvgPool2d((None, 1))
        self.rnn1 = torch.nn.LSTM(64, 48, bidirectional=True, batch_first=True)
        self.lin1 = torch.nn.Linear(96, 48)
        self.rnn2 = torch.nn.LSTM(48, 48, bidirectional=True, batch_first=True)
        self.lin2 = torch.nn.Linear(96, 48)
        self.classes = torch.nn.Linear(48, 97)

    def forward(self, x):
        columns = self.pool(self.features(x).permute(0, 3, 1, 2)).squeeze(3)  # N, W, C
        y = self.lin1(self.rnn1(columns)[0])
        y = self.lin2(self.rnn2(y)[0])
        return self.classes(y)


class KeywordSpotter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(40, 64, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(64, 12)

    def forward(self, x):
        y, h = self.gru(x)
        return self.fc(y[:, -1]), h


class ReluRnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(10, 16, nonlinearity="relu", bidirectional=True)

    def forward(self, x):
        return self.rnn(x)


def write_case(out, name, model, x):
    model.eval()
    case = os.path.join(out, name)
    os.makedirs(os.path.join(case, "test_data_set_0"), exist_ok=True)
    path = os.path.join(case, "model.onnx")
    torch.onnx.export(model, (x,), path, opset_version=14, input_names=["x"])
    with torch.no_grad():
        outputs = model(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    graph = onnx.load(path).graph
    tensors = [("input_0", x.numpy(), "x")] + [
        (f"output_{i}", o.numpy(), vi.name) for i, (o, vi) in enumerate(zip(outputs, graph.output))]
    for file, array, tensor_name in tensors:
        with open(os.path.join(case, "test_data_set_0", file + ".pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.ascontiguousarray(array), tensor_name)
                    .SerializeToString())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    conformance, out = sys.argv[1:]
    torch.manual_seed(0)
    import warnings
    warnings.filterwarnings("ignore")  # the exporter's notes on batch_first and shape inference
    write_case(out, "easyocr_style_two_bidirectional_lstms", EasyOcrStyle(), torch.rand(2, 1, 32, 100))
    write_case(out, "keyword_spotter_two_layer_gru", KeywordSpotter(), torch.randn(3, 49, 40))
    write_case(out, "bidirectional_relu_rnn", ReluRnn(), torch.randn(7, 2, 10))
    failed = False
    for reference in (False, True):
        env = dict(os.environ, AXSTREAM_PRINT_GRAPH="1")
        if reference:
            env["AXSTREAM_ENGINE_REFERENCE"] = "1"
        run = subprocess.run([conformance, out], capture_output=True, text=True, env=env,
                             timeout=120)
        label = "reference kernels" if reference else "oneDNN"
        print(f"{label}:\n{run.stdout}", end="")
        if run.returncode != 0 or "3 of 3 cases pass" not in run.stdout:
            print(f"FAIL ({label}): expected 3 of 3 cases to pass\n{run.stderr[-2000:]}")
            failed = True
        # Each layer runs on the oneDNN primitive that expresses it (the graphs print to stderr).
        for primitive in ("lstm_forward", "lbr_gru_forward", "vanilla_rnn_forward"):
            used = f"[oneDNN {primitive}" in run.stderr
            if used == reference:
                print(f"FAIL ({label}): oneDNN {primitive} {'ran' if used else 'did not run'}")
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
