"""Read segmentation records with the Model Garden's own `segmentation_input.Decoder`
and `Parser` (run with a venv holding `tf-models-official`, as
bench_reader_mg.py is) and check that every mask it prepares equals the stored PNG.

Usage:
    /work/venv-mg/bin/python benchmarks/mg_segmentation_check.py 'OUT/*.tfrecord-*'
"""

from __future__ import annotations

import glob
import io
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from official.vision.dataloaders import segmentation_input
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cocoprep import schema  # noqa: E402  (pure Python: fine in the Model Garden's venv)

MASK_KEY = schema.keys_of(schema.SEGMENTATION, ("class_mask",))["class_mask"]


def main() -> None:
    files = sorted(glob.glob(sys.argv[1]))
    decoder = segmentation_input.Decoder()
    parser = segmentation_input.Parser(output_size=[128, 128], resize_eval_groundtruth=False,
                                       groundtruth_padded_size=[1024, 1024], ignore_label=255)
    n = 0
    for raw in tf.data.TFRecordDataset(files):
        decoded = decoder.decode(raw)
        stored = tf.train.Example.FromString(raw.numpy()).features.feature[MASK_KEY]
        want = np.asarray(Image.open(io.BytesIO(stored.bytes_list.value[0])))
        image, label = parser._prepare_image_and_label(decoded)
        np.testing.assert_array_equal(tf.reshape(label, image.shape[:2]).numpy(), want)
        parser._parse_eval_data(decoded)
        n += 1
    print(f"Model Garden Decoder + Parser: {n} records read, every mask equal to the stored PNG")


if __name__ == "__main__":
    main()
