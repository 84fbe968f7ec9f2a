"""The writer side of the TFRecord framing: the same bytes as TensorFlow's writer."""

from __future__ import annotations

import hashlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from cocoprep.framing import RecordWriter


def tf_bytes(records: list[bytes], path) -> bytes:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path.read_bytes()


def ours(records: list[bytes]) -> tuple[bytes, RecordWriter]:
    buf = io.BytesIO()
    writer = RecordWriter(buf)
    for record in records:
        writer.write(record)
    return buf.getvalue(), writer


def test_records_are_byte_identical_to_tensorflows_writer(tmp_path):
    records = [b"", b"x", bytes(range(256)) * 300, b"\0" * 70_000]
    data, writer = ours(records)
    assert data == tf_bytes(records, tmp_path / "tf.tfrecord")
    assert writer.size_bytes == len(data)
    assert writer.sha256() == hashlib.sha256(data).hexdigest()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=6))
def test_any_records_match_tensorflow(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("tf") / "r.tfrecord"
    assert ours(records)[0] == tf_bytes(records, path)
