"""The Keras callbacks `ml.train` adds to Keras' own: exact resumption, time-boxed runs, wall time, the
multi-head monitor and the EMA swap that survives early stopping. Imports Keras (load it after the data)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import keras
import numpy as np


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Keras' swap, which also keeps the average in the model when training stops early (--stop-after,
    --patience): Keras finalizes the average only after the last planned epoch, and fit() then copies the
    optimizer's copy into the model, which the swap had left holding the raw weights."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.model.stop_training:
            self._finalize_ema_values()


class ReseedLayers(keras.callbacks.Callback):
    """Sets each layer's random state (dropout masks) at the start of epoch e to a function of (seed, e), as
    the data stream is: the backup does not hold that state, so a resumed run would otherwise draw other masks."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        generators = [g for layer in self.model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]
        for index, generator in enumerate(generators):
            state = np.array([self.seed * 7919 + index, epoch << 20], dtype=generator.state.dtype)
            generator.state.assign(state)


class StopAfter(keras.callbacks.Callback):
    """Ends training after global epoch N (the LR schedule still spans all --epochs)."""

    def __init__(self, last_epoch: int):
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.last_epoch:
            self.model.stop_training = True


class WallClock(keras.callbacks.Callback):
    """Accumulates training wall time across interrupted and resumed runs in `path` (wall_seconds.json)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        self.mark = time.time()

    def on_epoch_end(self, epoch, logs=None):
        total = json.loads(self.path.read_text())["seconds"] if self.path.exists() else 0.0
        self.path.write_text(json.dumps({"seconds": round(total + time.time() - self.mark, 1)}))


class MeanAccuracy(keras.callbacks.Callback):
    """Adds `val_mean_accuracy` (mean over heads) so multi-task runs keep one best checkpoint."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = names

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and all(f"val_{h}_accuracy" in logs for h in self.names):
            logs["val_mean_accuracy"] = float(np.mean([logs[f"val_{h}_accuracy"] for h in self.names]))


def best_logged(log: Path, column: str) -> float | None:
    """The highest value of `column` in a CSVLogger file (None without one)."""
    if not log.is_file():
        return None
    with open(log, newline="") as handle:
        values = [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]
    return max(values) if values else None


def training_callbacks(
    out: Path,
    phase: str,
    *,
    seed: int,
    heads: list[str],
    monitor: str,
    patience: int,
    stop_after: int | None,
    ema: float,
) -> list[keras.callbacks.Callback]:
    """The callbacks of one fit phase, in the order they must run (see the comment on the EMA swap)."""
    single = len(heads) == 1
    cbs: list[keras.callbacks.Callback] = [ReseedLayers(seed), WallClock(out / "wall_seconds.json")]
    if not single:
        cbs.append(MeanAccuracy(heads))
    # The backup is taken before the EMA swap (raw weights, so --resume continues training them); the
    # checkpoint, the log's val_* and last.keras see the averaged weights. The stopping callbacks run before
    # the swap so that it knows when an epoch is the last one.
    cbs.append(keras.callbacks.BackupAndRestore(str(out / "backup" / phase), delete_checkpoint=False))
    if patience > 0:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience))
    if stop_after:
        cbs.append(StopAfter(stop_after))
    if ema:
        cbs.append(AveragedWeights(swap_on_epoch=True))
    cbs += [
        # The best epoch so far (an earlier phase or invocation) is the bar a new best.keras must beat.
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_logged(out / "log.csv", monitor),
        ),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "tb"), write_graph=False, profile_batch=0),
    ]
    return cbs
