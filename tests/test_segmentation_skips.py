"""Every segmentation skip reason: reported in skipped.jsonl naming the file, counted
in the summary, never silent (--strict, the lost-most-of-a-split rule); masks
never resized except with --max-side, and then by nearest neighbour."""

from __future__ import annotations

import numpy as np
import pytest

from cocoprep.segconvert import convert_segmentation
from conftest import photo_jpeg, run_cli
from seg_builders import H, VOID, W, model_garden_records, pairs_tree, png_bytes, skipped_lines, write


def _break(src, stem: str, how: str) -> str:
    """Spoil one mask of a pairs tree; the detail its skip must carry."""
    mask = src / "masks" / f"{stem}.png"
    if how == "corrupt":
        mask.write_bytes(mask.read_bytes()[:60])
        return f"{stem}.png: PNG data does not decode"
    if how == "size":
        mask.write_bytes(png_bytes(np.zeros((H // 2, W // 2), np.uint8)))
        return (f"mask {stem}.png is {W // 2}x{H // 2}, image {stem}.jpg is {W}x{H} (masks are "
                "never resized to fit)")
    if how == "value":
        ids = np.zeros((H, W), np.uint8)
        ids[2:4, 2:5] = 7
        ids[5, 5] = 9
        mask.write_bytes(png_bytes(ids))
        return (f"{stem}.png: value(s) 7, 9 in 7 pixel(s) are neither classes (values 0..2) "
                "nor void (255)")
    if how == "jpeg":
        mask.write_bytes(photo_jpeg(H, W))
        return (f"{stem}.png: a JPEG mask (lossy: its edges hold values no class has); masks "
                "must be PNG")
    if how == "rgb":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = 200
        from PIL import Image

        Image.fromarray(rgb, "RGB").save(mask)
        return (f"{stem}.png: an RGB colour mask, but this layout's masks hold class ids (a "
                "grey or palette PNG) and it has no colour table")
    mask.unlink()
    (src / "images" / f"{stem}.jpg").rename(src / "images" / f"{stem}_moved.jpg")
    return ""


@pytest.mark.parametrize("how, reason", [
    ("corrupt", "corrupt_mask"), ("jpeg", "corrupt_mask"), ("size", "mask_size_mismatch"),
    ("value", "unknown_mask_value"), ("rgb", "unknown_mask_value")])
def test_a_bad_mask_is_a_reported_skip_naming_it(tmp_path, how, reason):
    pairs_tree(tmp_path / "src", n=4)
    detail = _break(tmp_path / "src", "img_1", how)
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", "--workers", "1")
    assert code == 0, output
    assert f"  skipped 1 ({reason} 1)" in output
    (line,) = skipped_lines(tmp_path / "out")
    assert (line["reason"], line["file"], line["image_id"]) == (reason, "img_1.png", "img_1")
    assert line["detail"].startswith(detail)
    assert len(model_garden_records(tmp_path / "out", "train")) == 3
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "strict", "--strict",
                           "-q")
    assert code == 1
    assert output.strip() == (f"Error: --strict: 1 item(s) skipped; reasons are listed in "
                              f"{tmp_path / 'strict' / 'skipped.jsonl'}")


def test_an_image_without_mask_and_a_mask_without_image_are_skips(tmp_path):
    pairs_tree(tmp_path / "src", n=4)
    _break(tmp_path / "src", "img_2", "unpair")
    write(tmp_path / "src" / "masks" / "orphan.png", png_bytes(np.zeros((H, W), np.uint8)))
    manifest = convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    assert manifest.skipped == {"missing_file": 1, "missing_mask": 1}
    lines = {(d["reason"], d["file"]): d["detail"] for d in skipped_lines(tmp_path / "out")}
    assert lines == {
        ("missing_mask", "img_2_moved.jpg"):
            f"no mask img_2_moved.png in {tmp_path / 'src' / 'masks'}",
        ("missing_file", "orphan.png"):
            f"mask orphan.png has no image orphan.* in {tmp_path / 'src' / 'images'}",
    }


def test_losing_most_of_a_split_fails_after_writing(tmp_path):
    pairs_tree(tmp_path / "src", n=3)
    for stem in ("img_0", "img_1"):
        _break(tmp_path / "src", stem, "value")
    code, output = run_cli("convert", tmp_path / "src", "-o", tmp_path / "out", "-q")
    assert code == 1
    assert output.strip().startswith(
        "Error: split 'train': 2 of 3 images skipped (unknown_mask_value 2); the masks hold "
        "values the label map does not name: are the class names complete (classes.txt, "
        "--classes, the colour table)? [output written to")
    assert (tmp_path / "out" / "manifest.json").is_file()
    code, _ = run_cli("convert", tmp_path / "src", "-o", tmp_path / "ok", "-q", "--allow-partial")
    assert code == 0


def test_max_side_resizes_the_mask_by_nearest_neighbour_only(tmp_path):
    expected = pairs_tree(tmp_path / "src", n=2)
    convert_segmentation(tmp_path / "src", tmp_path / "out", max_side=W // 2, workers=1,
                         quiet=True)
    for name, (image, mask) in model_garden_records(tmp_path / "out", "train").items():
        assert image.shape[:2] == mask.shape == (H // 2, W // 2)
        # each stored pixel takes the source pixel under its centre: odd rows and columns
        np.testing.assert_array_equal(mask, expected[name[:-4]][1::2, 1::2])


def test_a_mask_of_the_upright_size_turns_an_exif_rotated_image(tmp_path):
    """The image checks' EXIF rule: a stored 40x30 picture whose orientation says it
    is 30x40 upright matches a 30x40 mask; the stored image is turned."""
    from io import BytesIO

    from PIL import Image

    im = Image.open(BytesIO(photo_jpeg(H, W)))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    write(tmp_path / "src" / "images" / "a.jpg", buf.getvalue())
    ids = np.zeros((W, H), np.uint8)
    ids[:5] = 1
    write(tmp_path / "src" / "masks" / "a.png", png_bytes(ids))
    (tmp_path / "src" / "classes.txt").write_text("bg\nx\n")
    manifest = convert_segmentation(tmp_path / "src", tmp_path / "out", workers=1, quiet=True)
    assert manifest.counters.get("images_rotated") == 1
    ((image, mask),) = model_garden_records(tmp_path / "out", "train").values()
    assert image.shape[:2] == mask.shape == (W, H)
    np.testing.assert_array_equal(mask, ids)
    assert VOID not in mask


def test_remote_paths_are_refused_before_anything_is_read(tmp_path):
    code, output = run_cli("convert", "gs://bucket/voc", "-o", tmp_path / "out", "--task",
                           "segmentation")
    assert code == 2
    assert output.strip() == ("Error: SRC/-o: expected local paths for segmentation (remote "
                              "ones are not supported yet), found 'gs://bucket/voc'")
