"""The image check agrees with TensorFlow's decoder on a seeded corpus of damaged files.

For every file: cocoprep writes it (as-is or converted) exactly when
`tf.io.decode_image` decodes it at the size the annotation says, and whatever is
written decodes in TensorFlow. `benchmarks/fuzz_images.py` runs the same on a
larger corpus.
"""

from __future__ import annotations

import collections
import hashlib

import pytest

from cocoprep import images
from cocoprep.errors import ItemSkipped
from image_fuzz import corpus, tf_decodes

SEED, COUNT = 15, 400


@pytest.fixture(scope="module")
def samples():
    return corpus(COUNT, seed=SEED)


def _verdict(sample):
    try:
        return images.prepare_image(sample.data, orientation="mismatch",
                                    expected_size=sample.size)
    except ItemSkipped as e:
        return e


@pytest.mark.slow
def test_cocoprep_writes_exactly_what_tensorflow_decodes(samples):
    disagree, written_bad, outcomes = [], [], collections.Counter()
    for sample in samples:
        theirs = tf_decodes(sample.data, sample.size)
        result = _verdict(sample)
        ours = not isinstance(result, ItemSkipped)
        outcomes[(sample.damage, ours)] += 1
        if ours != theirs:
            disagree.append(f"{sample.name}: tf {theirs}, cocoprep "
                            f"{'writes it' if ours else result.detail}")
        if ours and not tf_decodes(result.data, (result.width, result.height)):
            written_bad.append(sample.name)
    assert disagree == []
    assert written_bad == []
    # The corpus is worth something only if damage both passes and fails.
    for damage in ("flip", "flip_data", "dup", "remove", "move", "insert"):
        assert outcomes[(damage, True)] and outcomes[(damage, False)], (damage, outcomes)
    assert outcomes[("none", True)] and not outcomes[("none", False)]


def test_the_corpus_is_the_same_every_time():
    first = [hashlib.sha256(s.data).hexdigest() for s in corpus(40, seed=SEED)]
    again = [hashlib.sha256(s.data).hexdigest() for s in corpus(40, seed=SEED)]
    assert first == again
    assert len(set(first)) > 30  # and not one file many times


def test_skip_reasons_are_deterministic_and_carry_no_addresses(samples):
    reasons = [r.detail for r in map(_verdict, samples) if isinstance(r, ItemSkipped)]
    again = [r.detail for r in map(_verdict, samples) if isinstance(r, ItemSkipped)]
    assert reasons == again
    assert len(reasons) > COUNT // 4
    assert not [r for r in reasons if " at 0x" in r or "object at" in r or "\n" in r]
