"""Open Images `--masks`: the segmentation CSV joined to the box rows, each mask PNG
resized to its image by nearest neighbour (exact pixels), boxes without a mask
following --missing-masks, mask rows without a box as objects of their own, every
bad row or PNG skipped with its reason, a missing CSV or mask folder one Error line,
every layout, the same bytes for any worker count, and cocoprep.load's masks."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import cocoprep
from cocoprep.manifest import Manifest
from cocoprep.sources.openimagesmasks import match
from format_builders import (
    OID_FIFTYONE_BOX, OID_HEADER, OID_SEG_HEADER, OidMask, OidRow, boxes_px, convert,
    errors_of, examples, oid_fiftyone, oid_masks, oid_tree, skipped_lines, texts, tree_bytes,
    worker_counts_agree,
)

A, B = "000002b66c9c498e", "000002b97e5471a0"
SEG = "validation-annotations-object-segmentation.csv"
PERSON_A = (0.0125, 0.195312, 0.148438, 0.5875)      # default_oid_rows()[0]'s box
FACE_B = (0.1, 0.9, 0.2, 0.8)                        # default_oid_rows()[2]'s box


def _masks() -> list[OidMask]:
    return [OidMask(A, "/m/01g317", PERSON_A, "a8d0b2f2", size=(40, 30), seed=1),
            OidMask(B, "/m/0dzct", FACE_B, "20a9ec65", size=(333, 250), seed=2, bilevel=True),
            OidMask(A, "/m/0k4j", (0.3, 0.45, 0.05, 0.4), "6f1d0c3e", size=(64, 48), seed=3)]


def _resized(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour by each output pixel's centre, written out plainly."""
    h, w = pixels.shape
    rows = [int((i + 0.5) * h / height) for i in range(height)]
    cols = [int((j + 0.5) * w / width) for j in range(width)]
    return pixels[np.ix_(rows, cols)].astype(np.uint8)


def _box_fill(box_px, height: int, width: int) -> np.ndarray:
    x1, y1, x2, y2 = box_px
    out = np.zeros((height, width), np.uint8)
    out[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = 1
    return out


def _pngs(ex: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(m))) for m in ex["image/object/mask"]]


def test_masks_join_their_boxes_and_are_resized_exactly(tmp_path):
    rows = oid_tree(tmp_path / "oid", sizes={A: (160, 120), B: (96, 72)})
    masks = _masks()
    oid_masks(tmp_path / "oid", masks)
    out = tmp_path / "out"
    code, output = convert(tmp_path / "oid", out, "--masks")
    assert code == 0, output
    assert ("  note: --masks: validation: 2 mask(s) joined to their box rows, 1 mask row(s) "
            "without a box row written as objects of their own; boxes without a mask follow "
            "--missing-masks") in output.splitlines()
    got = examples(out, "validation")
    a, b = got[f"{A}.jpg"], got[f"{B}.jpg"]
    # A: its three box rows in CSV order, then the Car mask row of its own
    assert texts(a) == ["Person", "Car", "Person", "Car"]
    assert texts(a, "image/object/class/mid") == [r.mid for r in rows if r.image == A] + \
        ["/m/0k4j"]
    assert a["image/object/occluded"] == [0, 1, 0, -1]
    assert a["image/object/is_crowd"] == [0, 1, 0, 0]
    box = masks[2].box
    np.testing.assert_allclose(boxes_px(a)[3], (box[0] * 160, box[2] * 120, box[1] * 160,
                                                box[3] * 120), atol=0.01)
    pngs = _pngs(a)
    assert [p.shape for p in pngs] == [(120, 160)] * 4
    np.testing.assert_array_equal(pngs[0], _resized(masks[0].pixels(), 120, 160))
    np.testing.assert_array_equal(pngs[3], _resized(masks[2].pixels(), 120, 160))
    for k in (1, 2):  # no mask row: filled from the box, as in every format
        np.testing.assert_array_equal(pngs[k], _box_fill(boxes_px(a)[k], 120, 160))
    (face,) = _pngs(b)   # a 1-bit PNG larger than its image
    np.testing.assert_array_equal(face, _resized(masks[1].pixels(), 72, 96))
    assert Manifest.read(out).counters["masks_from_boxes"] == 2


def test_max_side_resizes_the_mask_with_its_image(tmp_path):
    oid_tree(tmp_path / "oid", sizes={A: (160, 120), B: (96, 72)})
    masks = _masks()
    oid_masks(tmp_path / "oid", masks)
    code, output = convert(tmp_path / "oid", tmp_path / "out", "--masks", "--max-side", "80")
    assert code == 0, output
    a = examples(tmp_path / "out", "validation")[f"{A}.jpg"]
    pngs = _pngs(a)
    assert pngs[0].shape == (60, 80)
    np.testing.assert_array_equal(pngs[0], _resized(masks[0].pixels(), 60, 80))


def test_load_gives_masks_aligned_with_their_boxes(tmp_path):
    oid_tree(tmp_path / "oid", sizes={A: (160, 120), B: (96, 72)})
    masks = _masks()
    oid_masks(tmp_path / "oid", masks)
    out = tmp_path / "out"
    code, output = convert(tmp_path / "oid", out, "--masks")
    assert code == 0, output
    seen = {}
    for e in cocoprep.load(out, "validation", shuffle=False).as_numpy_iterator():
        seen[e["source_id"].decode() if "source_id" in e else len(seen)] = e
    by_objects = {len(e["boxes"]): e for e in seen.values()}
    a, b = by_objects[4], by_objects[1]
    assert a["masks"].shape == (4, 120, 160) and b["masks"].shape == (1, 72, 96)
    np.testing.assert_array_equal(a["masks"][0], _resized(masks[0].pixels(), 120, 160))
    np.testing.assert_array_equal(b["masks"][0], _resized(masks[1].pixels(), 72, 96))
    for mask, (ymin, xmin, ymax, xmax) in zip(a["masks"], a["boxes"]):
        ys, xs = np.nonzero(mask)   # every mask lies within its own box, to the 4 px
        assert ys.min() >= ymin * 120 - 4 and ys.max() <= ymax * 120 + 4  # of a 30-row mask
        assert xs.min() >= xmin * 160 - 4 and xs.max() <= xmax * 160 + 4


def test_missing_masks_skip_image_is_the_one_rule(tmp_path):
    oid_tree(tmp_path / "oid")
    oid_masks(tmp_path / "oid", _masks())
    code, output = convert(tmp_path / "oid", tmp_path / "out", "--masks",
                           "--missing-masks", "skip-image", "--allow-partial")
    assert code == 0, output
    assert list(examples(tmp_path / "out", "validation")) == [f"{B}.jpg"]
    reasons = [s[0] for s in skipped_lines(tmp_path / "out") if s[3] == f"{A}.jpg"]
    assert reasons == ["no_mask", "missing_segmentation", "missing_segmentation",
                       "image_skipped", "image_skipped"]


def test_bad_rows_and_pngs_are_skipped_with_their_reason(tmp_path):
    oid_tree(tmp_path / "oid")
    good, missing, corrupt = (
        OidMask(A, "/m/01g317", PERSON_A, "00000001", seed=4),
        OidMask(A, "/m/0k4j", (0.5, 0.75, 0.25, 0.5), "00000002"),
        OidMask(B, "/m/0dzct", FACE_B, "00000003"))
    rows = [good, missing, corrupt,
            OidMask(A, "/m/09xyz", (0.1, 0.2, 0.1, 0.2), "00000004"),
            OidMask("ffff0000aaaa1111", "/m/01g317", (0.1, 0.2, 0.1, 0.2), "00000005"),
            OidMask(A, "/m/01g317", (0.3, 0.2, 0.1, 0.2), "00000006")]
    path = oid_masks(tmp_path / "oid", rows, write=False)
    rest = rows[0].line().split(",", 1)[1]
    path.write_text(path.read_text() + f"../escape.png,{rest}\n,{rest}\n")
    folder = tmp_path / "oid" / "masks" / "validation"
    good.write(folder)
    folder.joinpath(corrupt.name).write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "oid", out, "--masks", "--allow-partial")
    assert code == 0, output
    last = 5  # the box CSV's last line: mask rows' ids go on from there
    assert sorted(skipped_lines(out), key=lambda s: s[2]) == [
        ("missing_mask", 1, 3, f"{A}.jpg", f"mask {missing.name} is not in masks/validation/ "
         "(and subfolders)"),
        ("corrupt_mask", 2, 4, f"{B}.jpg", f"mask {corrupt.name} does not decode as an image "
         "(UnidentifiedImageError)"),
        ("unknown_category", A, last + 5, rows[3].name, f"{SEG} line 5: LabelName '/m/09xyz' is "
         "not in the class descriptions"),
        ("unknown_image", "ffff0000aaaa1111", last + 6, rows[4].name, f"{SEG} line 6: ImageID "
         "'ffff0000aaaa1111' has no row in validation-annotations-bbox.csv"),
        ("malformed_bbox", A, last + 7, rows[5].name, f"{SEG} line 7: BoxXMax < BoxXMin or "
         "BoxYMax < BoxYMin (0.3, 0.2, 0.1, 0.2)"),
        ("unsafe_path", A, last + 8, "../escape.png", f"{SEG} line 8: MaskPath "
         "'../escape.png' is not a file name"),
        ("missing_mask", A, last + 9, f"{A}.jpg", f"{SEG} line 9: MaskPath is empty"),
    ]
    a = examples(out, "validation")[f"{A}.jpg"]
    assert texts(a) == ["Person", "Person"]   # the Car lost its mask PNG
    np.testing.assert_array_equal(_pngs(a)[0], _resized(good.pixels(), 120, 160))


@pytest.mark.parametrize("remove, expected, found", [
    (SEG, "the object-segmentation CSV for --masks (validation-annotations-object-"
     "segmentation.csv beside the box CSV, or FiftyOne's validation/labels/segmentations.csv)",
     "none"),
    ("validation-masks", "the mask PNGs for --masks in masks/validation/ or validation-masks/ "
     "(FiftyOne: validation/labels/masks/)", "no such folder"),
])
def test_missing_csv_or_mask_folder_is_one_error_line(tmp_path, remove, expected, found):
    oid_tree(tmp_path / "oid")
    oid_masks(tmp_path / "oid", _masks())
    gone = tmp_path / "oid" / remove
    if gone.is_dir():
        for p in sorted(gone.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        gone.rmdir()
    else:
        gone.unlink()
    assert errors_of(tmp_path / "oid", tmp_path / "out", "--masks") == (2, [
        f"Error: {tmp_path / 'oid'}: expected {expected}, found {found}"])
    code, output = convert(tmp_path / "oid", tmp_path / "out2")   # boxes only: as before
    assert code == 0, output


def test_malformed_segmentation_csv_is_one_error_line(tmp_path):
    oid_tree(tmp_path / "oid")
    path = oid_masks(tmp_path / "oid", _masks())
    path.write_text("MaskPath,ImageID,LabelName\nx.png,a,/m/0k4j\n")
    assert errors_of(tmp_path / "oid", tmp_path / "out", "--masks") == (2, [
        f"Error: {path}: expected an Open Images segmentation CSV with the columns MaskPath, "
        "ImageID, LabelName, BoxXMin, BoxXMax, BoxYMin, BoxYMax, found the header "
        "'MaskPath,ImageID,LabelName'"])


def test_datumaro_and_fiftyone_layouts(tmp_path):
    oid_tree(tmp_path / "dm", datumaro=True)
    masks = _masks()
    oid_masks(tmp_path / "dm", masks, folder="masks/validation")
    code, output = convert(tmp_path / "dm", tmp_path / "o1", "--masks")
    assert code == 0, output
    a = examples(tmp_path / "o1", "validation")[f"{A}.jpg"]
    np.testing.assert_array_equal(_pngs(a)[0], _resized(masks[0].pixels(), 120, 160))
    fo = oid_fiftyone(tmp_path / "fo")
    mask = OidMask("abc", "/m/01g317", OID_FIFTYONE_BOX, "0c0ffee0", size=(20, 10))
    oid_masks(fo, [mask], folder="labels/masks")
    assert (fo / "labels" / "masks" / "A" / mask.name).is_file()   # FiftyOne: <0-F>/
    code, output = convert(tmp_path / "fo", tmp_path / "o2", "--masks")
    assert code == 0, output
    ex = examples(tmp_path / "o2", "validation")["abc.jpg"]
    np.testing.assert_array_equal(_pngs(ex)[0], _resized(mask.pixels(), 40, 80))


def test_same_bytes_for_any_worker_count_and_run(tmp_path):
    oid_tree(tmp_path / "oid")
    oid_masks(tmp_path / "oid", _masks())
    first = worker_counts_agree(tmp_path / "oid", tmp_path, "--masks")
    code, output = convert(tmp_path / "oid", tmp_path / "again", "--workers", "2",
                           "--num-shards", "2", "--masks")
    assert code == 0, output
    assert tree_bytes(tmp_path / "again") == tree_bytes(first)
    assert any(e.get("image/object/mask") for e in examples(first, "validation").values())


def test_match_pairs_equal_keys_in_file_order():
    boxes = np.array([[0, 1, 5, 5, 9, 9], [0, 1, 5, 5, 9, 9], [1, 1, 5, 5, 9, 9],
                      [0, 2, 5, 5, 9, 9]])
    masks = np.array([[0, 1, 5, 5, 9, 9], [0, 2, 5, 5, 9, 9], [0, 1, 5, 5, 9, 9],
                      [0, 1, 5, 5, 9, 9], [2, 1, 5, 5, 9, 9]])
    assert match(list(boxes.T), list(masks.T)).tolist() == [0, 3, 1, -1, -1]
    assert match(list(boxes[:0].T), list(masks.T)).tolist() == [-1] * 5


def test_the_readme_fixture(tmp_path):
    from conftest import FIXTURES
    from format_builders import fixture_counts

    lines, splits, skipped = fixture_counts("openimages", tmp_path, "--masks")
    assert ("  note: --masks: validation: 9 mask(s) joined to their box rows, 0 mask row(s) "
            "without a box row written as objects of their own; boxes without a mask follow "
            "--missing-masks") in lines
    assert splits == {"validation": (9, 20)} and skipped == {"unlisted_image": 1}
    assert Manifest.read(tmp_path / "out").counters["masks_from_boxes"] == 11
    got = examples(tmp_path / "out", "validation")["0000000000000065.jpg"]
    png = next((FIXTURES / "openimages" / "validation-masks").rglob(
        "0000000000000065_m01g317_*.png"))
    pixels = np.asarray(Image.open(png)) > 0
    person = _pngs(got)[texts(got, "image/object/class/mid").index("/m/01g317")]
    np.testing.assert_array_equal(person, _resized(pixels, *person.shape))


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from conftest import FIXTURES
    from format_builders import beam_matches_local

    local = beam_matches_local(FIXTURES / "openimages", tmp_path, masks=True)
    assert json.loads(local["manifest.json"])["counters"]["masks_from_boxes"] == 11


def test_reading_masks_is_compact(tmp_path):
    """The segmentation CSV streams into columns (about 95 bytes a row held: the
    MaskPath, its offset, image, MID, line and box) and the join works column by
    column: under 250 bytes a mask row at the peak, joined to as many box rows (a
    list of row tuples or a pandas frame holds several times that). The PNGs are
    never read here."""
    from cocoprep.sources import openimages
    from cocoprep.sources.openimagesmasks import read_masks
    from cocoprep.sources.openimageslayout import OidSplitFiles

    n = 40_000
    boxes_csv, seg_csv = tmp_path / "train-annotations-bbox.csv", tmp_path / "seg.csv"
    with open(boxes_csv, "w") as b, open(seg_csv, "w") as s:
        b.write(OID_HEADER + "\n")
        s.write(OID_SEG_HEADER + "\n")
        for i in range(n):
            box = (0.1, 0.5, 0.2, 0.3 + (i % 8) / 20)
            b.write(OidRow(f"{i // 8:016x}", "/m/01g317", box).line() + "\n")
            s.write(OidMask(f"{i // 8:016x}", "/m/01g317", box, f"{i:08x}").line() + "\n")
    (tmp_path / "masks" / "train").mkdir(parents=True)
    files = OidSplitFiles("train", boxes_csv, tmp_path, None, seg_csv,
                          (tmp_path / "masks" / "train",))
    boxes = openimages.read_boxes(files, {"/m/01g317": "P"})
    tracemalloc.start()
    masks = read_masks(files, boxes, {"/m/01g317": "P"}, src=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (masks.matched, masks.own) == (n, 0)
    assert masks.store(np.arange(n))[n - 1].name == f"{(n - 1) // 8:016x}_m01g317_{n - 1:08x}.png"
    assert peak / n < 250, peak / n


def test_a_mask_is_looked_for_in_its_zips_folder_first():
    from cocoprep.sources.segstore import MaskFile

    folders = ("m", "m/validation-masks-0", "m/validation-masks-a", "f/labels/masks/A")
    assert MaskFile("a1b2_m0k4j_00000001.png", folders, "m/").paths() == [
        "m/validation-masks-a/a1b2_m0k4j_00000001.png", "f/labels/masks/A/a1b2_m0k4j_00000001.png",
        "m/a1b2_m0k4j_00000001.png", "m/validation-masks-0/a1b2_m0k4j_00000001.png"]
