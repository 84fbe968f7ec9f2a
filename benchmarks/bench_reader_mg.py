"""The equal-work reference with the Model Garden's own ops (tf-models-official), for
bench_reader_detection.py: TfExampleDecoder + random_horizontal_flip +
resize_and_crop_image (scale jitter 0.8-1.2, crop/pad to 640) + resize_and_crop_boxes,
boxes padded to 100, float 0..255, no normalisation, no anchors; batch 8.

The Model Garden needs an interpreter that can import `official`, kept out of the
project's venv. Both sides must run the same TensorFlow, so the venv used here sees the
project venv's packages (TensorFlow included) and adds tf-models-official without its
dependencies (it pins an older TensorFlow), plus the few modules its vision imports
need:

    python -m venv /work/venv-mg
    SP=$(/work/venv/bin/python -c "import site; print(site.getsitepackages()[0])")
    echo "$SP" > $(/work/venv-mg/bin/python -c "import site; print(site.getsitepackages()[0])")/project_venv.pth
    /work/venv-mg/bin/pip install --no-deps tf-models-official==2.20.0 tf-keras==2.21.0 \
        gin-config scipy opencv-python-headless matplotlib cycler kiwisolver
    /work/venv-mg/bin/pip install fonttools pyparsing contourpy python-dateutil

With that interpreter, bench_reader_detection.py runs this pipeline in its own process,
interleaved with cocoprep's (the comparison to report). Alone, on records that
bench_reader_detection.py converted:

    /work/venv-mg/bin/python benchmarks/bench_reader_mg.py benchmarks/data/reader_det_2000 3
"""

from __future__ import annotations

import glob
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE, BATCH, MAX_BOXES = 640, 8, 100


def pipeline(files):
    import tensorflow as tf
    from official.vision.dataloaders import tf_example_decoder
    from official.vision.ops import box_ops, preprocess_ops

    decoder = tf_example_decoder.TfExampleDecoder(include_mask=False)

    def parse(raw):
        data = decoder.decode(raw)
        image, boxes = data["image"], data["groundtruth_boxes"]
        image, boxes, _ = preprocess_ops.random_horizontal_flip(image, boxes)
        image, info = preprocess_ops.resize_and_crop_image(
            image, [SIZE, SIZE], padded_size=[SIZE, SIZE], aug_scale_min=0.8,
            aug_scale_max=1.2)
        boxes = box_ops.denormalize_boxes(boxes, info[0, :])
        boxes = preprocess_ops.resize_and_crop_boxes(boxes, info[2, :], info[1, :], info[3, :])
        classes = tf.cast(data["groundtruth_classes"], tf.int32)
        return {"image": image,
                "boxes": preprocess_ops.clip_or_pad_to_fixed_size(boxes, MAX_BOXES, 0),
                "classes": preprocess_ops.clip_or_pad_to_fixed_size(classes, MAX_BOXES, -1)}

    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.shuffle(1024, seed=0).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)


def main() -> None:
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(sys.argv[1], "train*.tfrecord*")))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for r in range(rounds):
        it = iter(pipeline(files))
        for _ in range(2):
            next(it)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        for batch in it:
            n += int(batch["image"].shape[0])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  round {r + 1}: Model Garden decoder+flip+resize_and_crop (TF {tf.__version__}) "
              f"{n / wall:6.1f} img/s, CPU {1000 * cpu / n:5.2f} ms/img  "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
