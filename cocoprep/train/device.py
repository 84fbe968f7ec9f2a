"""Where and how the smoke-train runs: strategy, precision, XLA."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class DevicePlan:
    """How to place the training: strategy, precision and compilation.

    Attributes:
        device: ``"GPU"`` or ``"CPU"``.
        devices: the device names the strategy mirrors over (empty: the default
            strategy on the default device).
        strategy: ``"mirrored"`` or ``"default"``.
        precision: the Keras dtype policy, ``"mixed_float16"`` or ``"float32"``.
        xla: compile the train step with XLA (`jit_compile=True`).
    """

    device: str
    devices: tuple[str, ...]
    strategy: str
    precision: str
    xla: bool

    @property
    def num_replicas(self) -> int:
        return max(1, len(self.devices)) if self.strategy == "mirrored" else 1

    def describe(self) -> str:
        if self.strategy == "mirrored":
            where = f"{len(self.devices)} x {self.device} (MirroredStrategy)"
        else:
            where = f"{self.device} (default strategy)"
        return where


def choose_device(gpus: Sequence[str]) -> DevicePlan:
    """The device plan for the given GPU device names (a pure function).

    With any GPU: `MirroredStrategy` over all of them, `mixed_float16` and XLA
    (GPUs have fast float16 units; XLA fuses the many small ops of these
    backbones). Without: the default strategy on the CPU in float32 (CPUs gain
    nothing from float16, and XLA's compile time outweighs a short run there).
    """
    gpus = tuple(gpus)
    if gpus:
        return DevicePlan("GPU", gpus, "mirrored", "mixed_float16", True)
    return DevicePlan("CPU", (), "default", "float32", False)


def detect_gpus() -> list[str]:
    """Logical GPU device names TensorFlow sees (e.g. ``/device:GPU:0``)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


def make_strategy(plan: DevicePlan):
    import tensorflow as tf

    if plan.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(list(plan.devices))
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set the global Keras dtype policy for the block, then restore it."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
