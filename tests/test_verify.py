"""cocoprep verify: intact outputs pass; each kind of damage is named (file, record
index, image id) with exit code 1."""

from __future__ import annotations

import shutil
import struct
from functools import partial
from pathlib import Path

import pytest

from cocoprep import schema
from cocoprep.records import BuildResult, DetectionExample, EncodedImage, ObjectAnnotation
from cocoprep.framing import crc32c, masked_crc32c, scan_records
from cocoprep.verify import verify
from conftest import invoke, run_cli
from verify_builders import (
    DET_TRAIN, DetBuilder, DetItem, encoded, write_classification, write_detection,
)

TRAIN0 = "train.tfrecord-00000-of-00002"
TRAIN1 = "train.tfrecord-00001-of-00002"


run = partial(run_cli, "verify", "--quiet")


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of every record, from the framing."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        out.append((pos, length))
        pos += 12 + length + 4
    return out


@pytest.fixture(scope="module")
def det_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("det") / "out"
    write_detection(out)
    return out


@pytest.fixture
def det(det_out, tmp_path) -> Path:
    """A fresh copy of the intact detection output, free to damage."""
    copy = tmp_path / "out"
    shutil.copytree(det_out, copy)
    return copy


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_masked_crc_matches_what_tensorflow_wrote(det):
    data = (det / TRAIN0).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert struct.unpack("<I", data[8:12])[0] == masked_crc32c(data[:8])
    assert struct.unpack("<I", data[12 + length:16 + length])[0] == masked_crc32c(
        data[12:12 + length])


def test_intact_detection_output_passes(det):
    code, out = run(str(det))
    assert code == 0, out
    assert out.strip() == "OK: 6 examples in 3 shards (splits train 4, val 2)"


def test_intact_classification_output_with_label_offset_passes(tmp_path):
    write_classification(tmp_path / "cls", offset=1)
    code, out = run(str(tmp_path / "cls"))
    assert code == 0, out
    assert out.strip() == "OK: 10 examples in 3 shards (splits train 7, val 3)"


def test_classification_label_beyond_labels_txt_is_named(tmp_path):
    # written with offset 1 but the manifest claims 0: label 3 ('fish' + 1) is not in labels.txt
    write_classification(tmp_path / "cls", offset=1)
    manifest = (tmp_path / "cls" / "manifest.json")
    manifest.write_text(manifest.read_text().replace('"label_offset": 1', '"label_offset": 0'))
    code, out = run(str(tmp_path / "cls"))
    assert code == 1
    assert "label 3 is not in labels.txt" in out
    assert "label 1 is 'dog' in labels.txt but the record says 'cat'" in out


def test_flipped_byte_inside_a_record_names_file_and_index_and_reading_goes_on(det):
    shard = det / TRAIN1  # records 0 and 1 of this shard: images 103 and 104
    (offset, length), _ = record_offsets(shard)
    data = bytearray(shard.read_bytes())
    data[offset + 12 + length // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN1}: record 0: corrupted record data at offset 0 (CRC mismatch)" in out
    assert f"{TRAIN1}: sha256 differs from manifest.json" in out
    assert not any(line.startswith(f"{TRAIN1}: record 1") for line in out.splitlines())
    assert out.strip().splitlines()[-1].startswith("FAILED")


def test_flipped_byte_in_a_later_record_names_that_index(det):
    shard = det / TRAIN0
    _, (offset, length) = record_offsets(shard)
    data = bytearray(shard.read_bytes())
    data[offset + 12 + 5] ^= 0x80
    shard.write_bytes(bytes(data))
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN0}: record 1: corrupted record data at offset {offset}" in out


def test_scan_continues_past_a_bad_data_checksum(det):
    shard = det / TRAIN0
    (offset, length), _ = record_offsets(shard)
    data = bytearray(shard.read_bytes())
    data[offset + 12] ^= 0xFF
    shard.write_bytes(bytes(data))
    framed = list(scan_records(shard))
    assert [f.index for f in framed] == [0, 1]
    assert framed[0].data is None and "CRC" in framed[0].problem
    assert framed[1].data is not None


def test_truncated_shard_names_file_and_index(det):
    shard = det / TRAIN0
    data = shard.read_bytes()
    shard.write_bytes(data[:-40])
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN0}: record 1: truncated: record of" in out
    assert f"{TRAIN0}: 1 records, manifest says 2" in out
    assert f"{TRAIN0}: size {len(data) - 40} bytes != manifest's {len(data)}" in out


def test_shard_cut_inside_a_header(det):
    shard = det / TRAIN0
    _, (offset, _) = record_offsets(shard)
    shard.write_bytes(shard.read_bytes()[:offset + 5])
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN0}: record 1: truncated: the file ends inside the header" in out


def test_corrupted_length_header_stops_the_shard(det):
    shard = det / TRAIN0
    data = bytearray(shard.read_bytes())
    data[2] ^= 0x10
    shard.write_bytes(bytes(data))
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN0}: record 0: corrupted length header at offset 0" in out


def test_deleted_shard_is_named(det):
    (det / TRAIN1).unlink()
    code, out = run(str(det))
    assert code == 1
    assert f"{TRAIN1}: missing (listed in manifest.json)" in out


def test_extra_shard_file_is_named(det):
    shutil.copy(det / TRAIN0, det / "test.tfrecord-00000-of-00001")
    code, out = run(str(det))
    assert code == 1
    assert "test.tfrecord-00000-of-00001: extra shard file, not listed in manifest.json" in out


def test_manifest_count_mismatch_is_named(det):
    m = det / "manifest.json"
    m.write_text(m.read_text().replace('"num_examples": 2,\n      "num_objects": 2',
                                       '"num_examples": 3,\n      "num_objects": 2'))
    code, out = run(str(det))
    assert code == 1
    assert "manifest.json: split val: 2 examples read, manifest says 3" in out


class BadBuilder(DetBuilder):
    """Writes what convert never would: boxes outside [0, 1], min > max, an unknown
    label, a wrong stored size, a format that lies."""

    def build(self, split, item):
        if item.image_id == 104:
            img = encoded(item.width, item.height, seed=1)
            objs = (
                ObjectAnnotation(0.1, 0.1, 1.25, 0.5, 1, "person"),
                ObjectAnnotation(0.6, 0.1, 0.4, 0.3, 3, "car"),
                ObjectAnnotation(0.1, 0.1, 0.2, 0.2, 7, "bird"),
            )
            ex = DetectionExample(img, "104.jpg", "104", objs)
            return BuildResult(schema.encode_detection(ex), 3, {"person": 1, "car": 1})
        if item.image_id == 201:
            img = encoded(64, 64, seed=2)
            lying = EncodedImage(img.data, "png", 64, 60, img.sha256)
            ex = DetectionExample(lying, "201.jpg", "201", ())
            return BuildResult(schema.encode_detection(ex), 0, {})
        return super().build(split, item)


def test_bad_boxes_labels_and_sizes_are_named(tmp_path):
    out = tmp_path / "bad"
    write_detection(out, builder=BadBuilder())
    code, text = run(str(out))
    assert code == 1
    where = f"{TRAIN1}: record 1 (image 104): "
    assert where + "object 0: box outside [0, 1] (xmax 1.25)" in text
    assert where + "object 1: box min > max (xmin 0.6, xmax 0.4, ymin 0.1, ymax 0.3)" in text
    assert where + "object 2: class label 7 is not in label_map.pbtxt" in text
    val = "val.tfrecord-00000-of-00001: record 0 (image 201): "
    assert val + "image: format says 'png' but the bytes are jpeg" in text


def test_stored_size_must_match_decoded_size(tmp_path):
    class SizeBuilder(DetBuilder):
        def build(self, split, item):
            img = encoded(item.width, item.height, seed=3)
            wrong = EncodedImage(img.data, "jpeg", item.width, item.height + 1, img.sha256)
            ex = DetectionExample(wrong, "x.jpg", str(item.image_id), ())
            return BuildResult(schema.encode_detection(ex), 0, {})

    out = tmp_path / "size"
    write_detection(out, train=DET_TRAIN[:1], val=(DetItem(201, 32, 24, ()),), train_shards=1,
                    builder=SizeBuilder())
    code, text = run(str(out))
    assert code == 1
    assert ("train.tfrecord-00000-of-00001: record 0 (image 101): image: decoded size 64x48 "
            "!= stored width x height 64x49") in text


def test_glob_without_manifest_checks_records(tmp_path, det_out):
    code, out = run(str(det_out / "*.tfrecord-*"))
    assert code == 0, out
    assert out.strip() == "OK: 6 examples in 3 shards (splits train 4, val 2)"
    bad = tmp_path / "bad"
    write_detection(bad, builder=BadBuilder())
    (bad / "manifest.json").unlink()
    code, out = run(str(bad / "train.*"))
    assert code == 1
    assert f"{bad / TRAIN1}: record 1 (image 104): object 0: box outside [0, 1]" in out
    assert "label_map" not in out  # labels need the manifest


def test_glob_matching_nothing_is_an_error(tmp_path):
    code, out = run(str(tmp_path / "*.tfrecord"))
    assert code == 2
    assert "Error:" in out and "no file matches" in out


def test_directory_without_manifest_is_an_error(tmp_path):
    code, out = run(str(tmp_path))
    assert code == 2
    assert "Error:" in out and "no manifest here" in out


def test_missing_label_map_is_named(det):
    (det / "label_map.pbtxt").unlink()
    code, out = run(str(det))
    assert code == 1
    assert "label_map.pbtxt: missing (named in manifest.json); labels not checked" in out


def test_masks_are_decoded_and_checked(tmp_path):
    items = (DetItem(101, 40, 30, ((0.1, 0.1, 0.5, 0.5, 1, False),), masks=True),)
    out = tmp_path / "m"
    write_detection(out, train=items, val=items, train_shards=1)
    code, text = run(str(out))
    assert code == 0, text

    class BadMask(DetBuilder):
        def build(self, split, item):
            from verify_builders import mask_png
            img = encoded(40, 30, seed=1)
            obj = ObjectAnnotation(0.1, 0.1, 0.5, 0.5, 1, "person", mask_png=mask_png(20, 30, (0, 0, 5, 5)))
            ex = DetectionExample(img, "a.jpg", "7", (obj,), with_masks=True)
            return BuildResult(schema.encode_detection(ex), 1, {"person": 1})

    write_detection(out, train=items, val=items, train_shards=1, builder=BadMask())
    code, text = run(str(out))
    assert code == 1
    assert ("record 0 (image 7): object 0: mask: decoded size 20x30 != stored width x height "
            "40x30") in text


@pytest.mark.slow
def test_workers_give_the_same_report(det):
    (det / TRAIN1).write_bytes((det / TRAIN1).read_bytes()[:-10])
    one = verify(det, workers=1, quiet=True)
    two = verify(det, workers=2, quiet=True)
    assert one.problems == two.problems and len(one.problems) >= 2
    assert one.summary() == two.summary()


def test_real_convert_and_split_outputs_of_the_fixtures_pass(tmp_path):
    from verify_builders import convert_fixture_coco, split_fixture_imgs

    coco = convert_fixture_coco(tmp_path / "coco", "--masks", "--num-shards", "2")
    code, out = run(str(coco))
    assert code == 0, out
    assert out.strip() == "OK: 10 examples in 4 shards (splits train 7, val 3)"
    imgs = split_fixture_imgs(tmp_path / "imgs", "--label-offset", "1")
    code, out = run(str(imgs))
    assert code == 0, out
    assert out.strip() == "OK: 40 examples in 2 shards (splits train 32, val 8)"


def test_glob_with_an_empty_shard_first_still_checks_the_rest(tmp_path, det_out):
    shutil.copytree(det_out, tmp_path / "d")
    (tmp_path / "d" / "a.tfrecord-00000-of-00001").write_bytes(b"")
    code, out = run(str(tmp_path / "d" / "*.tfrecord-*"))
    assert code == 0, out
    assert out.strip() == "OK: 6 examples in 4 shards (splits a 0, train 4, val 2)"


def test_glob_of_files_that_hold_no_records_is_an_error(tmp_path):
    (tmp_path / "x.tfrecord").write_bytes(b"")
    code, out = run(str(tmp_path / "*.tfrecord"))
    assert code == 2
    assert "Error:" in out and "no readable record with those keys" in out


@pytest.mark.slow
def test_worker_processes_keep_tensorflow_notices_off_the_terminal(det_out):
    """With --workers > 1 every worker imports TensorFlow; its C++ start-up lines
    (oneDNN, CUDA stubs) must not reach the terminal, as in-process."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "cocoprep", "verify", str(det_out),
                           "--workers", "2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: 6 examples in 3 shards"), proc.stdout
    for noise in ("oneDNN", "I0000", "E0000", "cuda"):
        assert noise not in proc.stderr, proc.stderr


def test_split_without_examples_fails(tmp_path):
    write_detection(tmp_path / "out", val=())
    code, out = run(str(tmp_path / "out"))
    assert code == 1
    assert "split val: no examples" in out and "FAILED: 1 problem(s)" in out


def test_detection_split_without_objects_is_a_warning(tmp_path):
    no_boxes = tuple(DetItem(i, 32, 24, ()) for i in (301, 302))
    write_detection(tmp_path / "out", val=no_boxes)
    result = invoke("verify", "--quiet", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Warning: split val: 2 examples but no objects" in result.stderr
    assert "Warning" not in result.stdout and result.stdout.startswith("OK: 6 examples")


