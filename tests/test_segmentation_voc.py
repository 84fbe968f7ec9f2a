"""Pascal VOC segmentation (VOCdevkit palette masks) and its tool exports (CVAT
"Segmentation mask 1.1", Datumaro): exact ids through the label map, void, the
split lists, and which task a devkit is."""

from __future__ import annotations

import numpy as np

from cocoprep.manifest import Manifest
from cocoprep.sources import find_task
from cocoprep.sources.segmentation import voc_colour
from cocoprep.sources.vocseg import VOC_CLASSES
from conftest import run_cli
from seg_builders import (
    CVAT_LABELS, H, VOID, W, cvat_tree, model_garden_records, rgb_png, skipped_lines, voc_tree,
    write,
)


def _masks(out, split) -> dict[str, np.ndarray]:
    return {name[:-4]: mask for name, (_, mask) in model_garden_records(out, split).items()}


def test_voc_colormap_is_the_devkit_palette():
    assert [voc_colour(i) for i in (0, 1, 2, 3, 15, 255)] == \
        [0x000000, 0x800000, 0x008000, 0x808000, 0xC08080, 0xE0E0C0]


def test_devkit_with_annotations_stays_detection_unless_asked(tmp_path):
    expected = voc_tree(tmp_path)
    assert find_task(tmp_path) == "detection"
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "det", "-q")
    assert code == 0, output
    assert Manifest.read(tmp_path / "det").task == "detection"
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--task",
                           "segmentation", "--workers", "1")
    assert code == 0, output
    assert "layout: Pascal VOC segmentation (VOC2012): splits train, val" in output
    manifest = Manifest.read(tmp_path / "out")
    # trainval (= train + val) is not written a second time; JPEGImages without a
    # mask are not part of the segmentation set
    assert {k: v.num_examples for k, v in manifest.splits.items()} == {"train": 2, "val": 1}
    assert manifest.skipped == {}
    got = {**_masks(tmp_path / "out", "train"), **_masks(tmp_path / "out", "val")}
    assert sorted(got) == sorted(expected)
    for i, mask in got.items():
        np.testing.assert_array_equal(mask, expected[i])  # indices, never palette colours
    assert (tmp_path / "out" / "labels.txt").read_text().splitlines() == list(VOC_CLASSES)


def test_a_tree_of_masks_only_needs_no_flag(tmp_path):
    expected = voc_tree(tmp_path, annotations=False)
    assert find_task(tmp_path) == "segmentation"
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "-q")
    assert code == 0, output
    for i, mask in _masks(tmp_path / "out", "train").items():
        np.testing.assert_array_equal(mask, expected[i])


def test_a_listed_id_without_mask_or_image_is_a_skip(tmp_path):
    voc_tree(tmp_path, annotations=False, train=("a", "b", "c", "e", "f"), val=("d",))
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (base / "SegmentationClass" / "b.png").unlink()
    (base / "JPEGImages" / "c.jpg").unlink()
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    lines = {(d["reason"], d["file"]): d["detail"] for d in skipped_lines(tmp_path / "out")}
    assert lines == {("missing_mask", "b.jpg"): f"no mask b.png in {base / 'SegmentationClass'}",
                     ("missing_file", "c.jpg"): f"no image c.* in {base / 'JPEGImages'}"}


def test_cvat_rgb_masks_through_labelmap(tmp_path):
    expected = cvat_tree(tmp_path)
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert "CVAT/Datumaro export segmentation" in output
    assert (tmp_path / "out" / "labels.txt").read_text().splitlines() == \
        [name for name, _ in CVAT_LABELS]
    got = _masks(tmp_path / "out", "default")
    assert sorted(got) == sorted(expected)
    for k, mask in got.items():
        np.testing.assert_array_equal(mask, expected[k])
        assert (mask == VOID).any()


def test_datumaro_empty_colours_are_the_voc_colormap(tmp_path):
    expected = cvat_tree(tmp_path, datumaro=True)
    assert "cat:::" in (tmp_path / "labelmap.txt").read_text()
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "-q")
    assert code == 0, output
    for k, mask in _masks(tmp_path / "out", "default").items():
        np.testing.assert_array_equal(mask, expected[k])


def test_a_colour_not_in_the_table_is_a_skip_naming_file_and_colour(tmp_path):
    cvat_tree(tmp_path, n=3)
    ids = np.zeros((H, W), np.uint8)
    ids[3:6, 3:6] = 1
    write(tmp_path / "SegmentationClass" / "frame_000001.png",
          rgb_png(ids, {0: 0x000000, 1: 0x010203}))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert "skipped 1 (unknown_mask_value 1)" in output
    (line,) = skipped_lines(tmp_path / "out")
    assert line["file"] == "frame_000001.png"
    assert line["detail"] == ("frame_000001.png: colour(s) (1, 2, 3) in 9 pixel(s) are not in "
                              "the colour table")


def test_the_fixture_converts_pixel_for_pixel(tmp_path):
    """fixtures/seg: every record's mask is its palette PNG's indices, void border
    included; trainval is not written twice; the image without a mask is not listed."""
    from PIL import Image

    from conftest import FIXTURES

    base = FIXTURES / "seg" / "VOCdevkit" / "VOC2012"
    code, output = run_cli("convert", FIXTURES / "seg", "-o", tmp_path / "out", "--workers", "2")
    assert code == 0, output
    manifest = Manifest.read(tmp_path / "out")
    lists = {s: (base / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split()
             for s in ("train", "val")}
    assert {k: v.num_examples for k, v in manifest.splits.items()} == \
        {s: len(ids) for s, ids in lists.items()}
    for split, ids in lists.items():
        got = _masks(tmp_path / "out", split)
        assert sorted(got) == sorted(ids)
        for i, mask in got.items():
            source = Image.open(base / "SegmentationClass" / f"{i}.png")
            assert source.mode == "P"
            np.testing.assert_array_equal(mask, np.asarray(source))
            assert (mask == VOID).any()


def test_two_devkit_years_name_their_splits(tmp_path):
    voc_tree(tmp_path, annotations=False, year="VOC2007", train=("a",), val=("b",))
    voc_tree(tmp_path, annotations=False, year="VOC2012", train=("c", "d"), val=("e",))
    code, output = run_cli("convert", tmp_path, "-o", tmp_path / "out", "-q")
    assert code == 0, output
    assert {k: v.num_examples for k, v in Manifest.read(tmp_path / "out").splits.items()} == \
        {"train2007": 1, "val2007": 1, "train2012": 2, "val2012": 1}
