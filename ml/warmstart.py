"""Rebuild a trainable Keras FeedNet from a shipped artifact's TFLite file, to fine-tune it.

Artifacts ship TFLite only (float or int8), with each BatchNorm folded into its convolution. This
reads the (dequantized) kernels and biases back into the folded FeedNet
(`build_feednet(..., batch_norm=False)`), which computes the same function as the artifact up to int8
rounding. `python -m ml.train --init-from ml/artifacts/ferplus ...` starts from it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ml.card import CARD_NAME, load_card

CONV = re.compile(r"s(\d+)_c(\d+)_")


class WarmStartError(ValueError):
    """The artifact cannot seed a FeedNet (not a FeedNet, an ensemble, an unreadable file)."""


def _dequantized(interpreter, detail: dict) -> np.ndarray:
    values = interpreter.get_tensor(detail["index"])
    q = detail["quantization_parameters"]
    if values.dtype == np.float32 or not len(q["scales"]):
        return values.astype(np.float32)
    shape = [1] * values.ndim
    shape[q["quantized_dimension"]] = -1
    scales, zeros = q["scales"].reshape(shape), q["zero_points"].reshape(shape)
    return ((values.astype(np.float32) - zeros) * scales).astype(np.float32)


def _rescale_folded(interpreter) -> bool:
    """True when the first convolution reads the input itself (or its QUANTIZE), with no MUL in between."""
    inputs = {detail["index"] for detail in interpreter.get_input_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "QUANTIZE" and set(op["inputs"]) & inputs:
            inputs |= set(op["outputs"])
        elif op["op_name"] == "CONV_2D":
            return bool(set(op["inputs"]) & inputs)
    return False


def folded_weights(
    tflite_file: Path,
) -> tuple[dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """{(stage, conv): (kernel HWIO, bias)} and the (kernel, bias) of the softmax head.

    Each CONV_2D op names its kernel and bias tensors (inputs 1 and 2); the kernel's or the output's
    name carries the Keras layer (`s<stage>_c<conv>_`). The head is the last FULLY_CONNECTED op.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_file))
    interpreter.allocate_tensors()
    details = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    convs, head = {}, None
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        kernel = details[op["inputs"][1]]
        try:
            values = _dequantized(interpreter, kernel)
            bias_index = op["inputs"][2] if len(op["inputs"]) > 2 else -1
            # the converter drops an all-zero bias (inputs[2] == -1)
            bias = (
                _dequantized(interpreter, details[bias_index]) if bias_index >= 0 else np.zeros(len(values), np.float32)
            )
        except ValueError:  # a tensor computed at run time (not a constant): not a FeedNet export
            continue
        if op["op_name"] == "FULLY_CONNECTED":
            head = (values.T, bias)
            continue
        match = CONV.search(kernel["name"]) or CONV.search(details[op["outputs"][0]]["name"])
        if match and values.shape[1:3] == (3, 3):  # TFLite conv kernels are OHWI
            convs[tuple(map(int, match.groups()))] = (values.transpose(1, 2, 3, 0), bias)
    if not convs or head is None:
        raise WarmStartError(
            f"{tflite_file}: not a FeedNet export (found conv layers {sorted(convs)}, "
            f"{'a' if head else 'no'} dense head)"
        )
    if _rescale_folded(
        interpreter
    ):  # the converter folds Rescaling(1/255) into the first kernel; the model rescales itself
        kernel, bias = convs[(0, 0)]
        convs[(0, 0)] = (kernel * 255.0, bias)
    return {key: convs[key] for key in sorted(convs)}, head


def feednet_from_artifact(directory: str | Path):
    """The folded Keras FeedNet of a single-network artifact directory, with its weights."""
    from ml.models.feednet import build_feednet

    directory = Path(directory)
    if not (directory / CARD_NAME).is_file():
        raise WarmStartError(f"--init-from {directory}: no {CARD_NAME} there")
    card = load_card(directory)
    if card.ensemble:
        raise WarmStartError(f"--init-from {directory}: an ensemble of {len(card.files)} networks; pick one")
    if card.format not in ("tflite", "tflite-int8"):
        raise WarmStartError(f"--init-from {directory}: format {card.format!r}; only TFLite artifacts can seed a run")
    convs, (head_kernel, head_bias) = folded_weights(directory / card.file)
    stages = range(1 + max(stage for stage, _ in convs))
    widths = [convs[(stage, 0)][0].shape[-1] for stage in stages]
    counts = [sum(1 for s, _ in convs if s == stage) for stage in stages]
    model = build_feednet((48, 48, 1), head_kernel.shape[1], stage_widths=widths, stage_convs=counts, batch_norm=False)
    for (stage, conv), (kernel, bias) in convs.items():
        model.get_layer(f"s{stage}_c{conv}_conv").set_weights([kernel, bias])
    model.get_layer("probs").set_weights([head_kernel, head_bias])
    return model, card


def conv_names(model) -> list[str]:
    """The FeedNet's conv layers, input to output."""
    return [layer.name for layer in model.layers if CONV.match(layer.name) and layer.name.endswith("_conv")]


def feednet_shape(model) -> tuple[list[int], list[int]]:
    """(channels per stage, convs per stage) of a built FeedNet."""
    names = conv_names(model)
    stages = range(1 + max(int(CONV.match(name).group(1)) for name in names))
    widths = [model.get_layer(f"s{stage}_c0_conv").filters for stage in stages]
    counts = [sum(1 for name in names if name.startswith(f"s{stage}_")) for stage in stages]
    return widths, counts


def identity_kernel(channels: int) -> np.ndarray:
    """A 3x3 conv kernel (HWIO) that passes each channel through unchanged."""
    kernel = np.zeros((3, 3, channels, channels), np.float32)
    kernel[1, 1, np.arange(channels), np.arange(channels)] = 1.0
    return kernel


def reshape_feednet(model, stage_widths, stage_convs):
    """A folded FeedNet of the given shape, seeded from `model`'s weights.

    Narrower: each stage keeps its first `stage_convs[s]` convs, and each conv its `stage_widths[s]`
    output channels of largest L1 norm, with the matching input channels of the layer after it (and
    rows of the head). Dropping a conv is not function-preserving: the next conv reads the kept conv's
    (kept) channels in place of the dropped one's, so a narrowed net needs fine-tuning (with a
    teacher) to recover. No stage may be wider than the source's.

    Deeper: convs beyond a stage's source count are appended at the stage's end as identities
    (centre tap 1, bias 0). Their input is a ReLU output, never negative, so ReLU(identity) changes
    nothing: a deepened net computes the source's function and fine-tuning starts from its accuracy.
    """
    from ml.models.feednet import build_feednet

    target = build_feednet(
        (48, 48, 1),
        model.get_layer("probs").units,
        stage_widths=stage_widths,
        stage_convs=stage_convs,
        batch_norm=False,
    )
    source = set(conv_names(model))
    kept_inputs = np.arange(1)  # the grey channel
    for name in conv_names(target):
        layer = target.get_layer(name)
        if name not in source:
            stage = int(CONV.match(name).group(1))
            if layer.kernel.shape[2] != layer.filters or f"s{stage}_c0_conv" not in source:
                raise WarmStartError(f"cannot add {name}: a new conv must follow an existing one of its stage")
            layer.set_weights([identity_kernel(layer.filters), np.zeros(layer.filters, np.float32)])
            continue  # the channels pass through: kept_inputs still index them
        kernel, bias = model.get_layer(name).get_weights()
        filters, inputs = layer.filters, layer.kernel.shape[2]
        if filters > kernel.shape[3] or inputs > kernel.shape[2]:
            raise WarmStartError(
                f"cannot narrow {name}: target {inputs}->{filters} channels, source "
                f"{kernel.shape[2]}->{kernel.shape[3]}"
            )
        kept = np.sort(np.argsort(-np.abs(kernel).sum(axis=(0, 1, 2)), kind="stable")[:filters])
        layer.set_weights([kernel[:, :, kept_inputs][..., kept], bias[kept]])
        kept_inputs = kept
    head_kernel, head_bias = model.get_layer("probs").get_weights()
    target.get_layer("probs").set_weights([head_kernel[kept_inputs], head_bias])
    return target
