"""The phase loop: fit a number of steps, recording each step's loss terms and time."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from cocoprep.errors import InputError


def step_recorder(total: int = 0, desc: str = "", progress: bool = False,
                  terms: Sequence[str] = ()):
    """A Keras callback recording every step's own loss (`.losses`), each named
    loss term's (`.terms[name]`, from Keras's ``<name>_loss`` log) and end time
    (`.times`), with an optional tqdm bar.

    Keras logs the running mean since the epoch began; resetting the metrics
    before each step makes the logged value that step's loss.
    """
    import keras

    class StepRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses: list[float] = []
            self.times: list[float] = []
            self.terms: dict[str, list[float]] = {t: [] for t in terms}
            self._bar = None
            if progress:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="step", leave=False)

        def on_train_batch_begin(self, batch, logs=None):
            self.model.reset_metrics()

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.losses.append(float(logs["loss"]))
            for term, values in self.terms.items():
                values.append(float(logs[f"{term}_loss"]))
            self.times.append(time.perf_counter())
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(loss=f"{self.losses[-1]:.4f}")

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()

    return StepRecorder()


@dataclass(frozen=True)
class PhaseResult:
    name: str
    steps: int
    learning_rate: float
    unfrozen_layers: int
    losses: tuple[float, ...]
    seconds: float
    images_per_s: float | None
    terms: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    def to_json(self) -> dict:
        return {
            "name": self.name, "steps": self.steps, "learning_rate": self.learning_rate,
            "unfrozen_backbone_layers": self.unfrozen_layers,
            "initial_loss": json_number(self.initial_loss),
            "final_loss": json_number(self.final_loss),
            "terms": {t: {"initial": json_number(v[0]), "final": json_number(v[-1])}
                      for t, v in self.terms.items()},
            "seconds": round(self.seconds, 3),
            "images_per_s": None if self.images_per_s is None else round(self.images_per_s, 2),
        }


def json_number(v: float | None):
    """JSON-safe float (NaN/inf become strings, which json.dumps would reject strictly)."""
    if v is None:
        return None
    return v if math.isfinite(v) else str(v)


def train_phase(model, dataset, *, name: str, steps: int, learning_rate: float,
                 unfrozen: int, global_batch: int, progress: bool,
                 data: str = "DATA", terms: Sequence[str] = ()) -> PhaseResult:
    import tensorflow as tf

    recorder = step_recorder(steps, name, progress, terms)
    start = time.perf_counter()
    verify_hint = f"run `cocoprep verify {data}` to find the damaged file and record"
    try:
        # shuffle=False: the dataset is already shuffled (seeded) by cocoprep.load.
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[recorder],
                  shuffle=False)
    except tf.errors.DataLossError as e:
        # TensorFlow's message ("corrupted record at 12") names no file.
        text = str(getattr(e, "message", e))
        found = re.search(r"corrupted record at \d+|truncated record at \d+", text)
        what = found.group(0) if found else "a damaged record"
        raise InputError(data, "readable training records",
                         f"{what} in a shard ({verify_hint})") from None
    if not recorder.losses:
        raise InputError(data, "training records to read",
                         f"not one batch in {name} (the shards hold fewer records than "
                         f"manifest.json counts; {verify_hint})")
    seconds = time.perf_counter() - start
    times = recorder.times
    # The first step includes tracing/compilation; time the steady state after it.
    if len(times) >= 2 and times[-1] > times[0]:
        ips = (len(times) - 1) * global_batch / (times[-1] - times[0])
    else:
        ips = len(times) * global_batch / seconds if seconds > 0 else None
    return PhaseResult(name, steps, learning_rate, unfrozen, tuple(recorder.losses),
                       seconds, ips, {t: tuple(v) for t, v in recorder.terms.items()})
