"""Open Images in: display names with the MID kept, the OD API's
oid_tfrecord_creation_test values on the keys we share, group-of as crowd, the flags
and verified image labels kept, every layout (official V6/V7, Datumaro, FiftyOne),
bad rows skipped with their reason, bad CSVs one Error line, memory bounded."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from cocoprep.manifest import Manifest
from cocoprep.sources import openimages
from cocoprep.sources.openimageslayout import OidSplitFiles
from format_builders import (
    OID_HEADER, OidRow, boxes_px, convert, error_lines, errors_of, examples, oid_fiftyone,
    oid_tree, photo, skipped_lines, texts, worker_counts_agree,
)

A, B = "000002b66c9c498e", "000002b97e5471a0"


def test_names_mids_flags_and_image_labels(tmp_path):
    rows = oid_tree(tmp_path / "oid")
    out = tmp_path / "out"
    code, output = convert(tmp_path / "oid", out)
    assert code == 0, output
    assert output.splitlines()[0] == ("layout: Open Images (<split>-annotations-bbox.csv + "
                                      "<split>/): split validation")
    assert (out / "labels.txt").read_text().splitlines() == ["Car", "Human face", "Person"]
    got = examples(out, "validation")
    assert sorted(got) == [f"{A}.jpg", f"{B}.jpg"]
    a = got[f"{A}.jpg"]
    mine = [r for r in rows if r.image == A]
    assert texts(a) == ["Person", "Car", "Person"]
    assert texts(a, "image/object/class/mid") == [r.mid for r in mine]
    np.testing.assert_allclose(boxes_px(a), [(r.box[0] * 160, r.box[2] * 120, r.box[1] * 160,
                                              r.box[3] * 120) for r in mine], atol=0.1)
    assert a["image/object/occluded"] == [r.flags[0] for r in mine]
    assert a["image/object/truncated"] == [r.flags[1] for r in mine]
    assert a["image/object/group_of"] == a["image/object/is_crowd"] == [r.flags[2] for r in mine]
    assert a["image/object/depiction"] == [0, 0, 0] and a["image/object/inside"] == [0, 0, 0]
    assert texts(a, "image/class/text") == ["Car", "Person"]   # Bicycle: Confidence 0
    assert a["image/source_id"] == [A.encode()]
    b = got[f"{B}.jpg"]
    assert b["image/object/depiction"] == [1] and b["image/object/inside"] == [1]
    assert b.get("image/class/text", []) == []


def _od_api_tree(root, *, flags: bool = True):
    """oid_tfrecord_creation_test's data frame as a CSV (MIDs a, b, c)."""
    data = [("i1", "a", 0.1, 0.2, 0.3, 0.3, 0, 0, 0, 1),
            ("i1", "a", 0.3, 0.3, 0.6, 0.6, 1, 0, 0, 0),
            ("i1", "b", 0.7, 0.8, 0.8, 1, 1, 0, 0, 0),
            ("i1", "b", 0.0, 0.5, 0.1, 0.8, 0, 1, 0, 0),
            ("i2", "b", 0.1, 0.9, 0.0, 0.8, 0, 0, 0, 0),
            ("i2", "c", 0.1, 0.9, 0.0, 0.8, 0, 0, 1, 0)]
    root.mkdir(parents=True)
    (root / "class-descriptions-boxable.csv").write_text("a,a\nb,b\nc,c\n")   # V6: no header
    head = "ImageID,LabelName,XMin,XMax,YMin,YMax" + (
        ",IsOccluded,IsTruncated,IsGroupOf,IsDepiction" if flags else "")
    lines = [",".join(map(str, d if flags else d[:6])) for d in data]
    (root / "validation-annotations-bbox.csv").write_text(head + "\n" + "\n".join(lines) + "\n")
    for i in ("i1", "i2"):
        photo(root / "validation" / f"{i}.jpg", 100, 50)


def test_od_api_oid_test_values(tmp_path):
    """test_simple: i1's rows; the first two have no area (YMin = YMax, XMin = XMax),
    which the OD API writes and we report."""
    _od_api_tree(tmp_path / "o")
    code, output = convert(tmp_path / "o", tmp_path / "out", "--allow-partial")
    assert code == 0, output
    got = examples(tmp_path / "out", "validation")
    i1, i2 = got["i1.jpg"], got["i2.jpg"]
    assert i1["image/source_id"] == [b"i1"] and i1["image/filename"] == [b"i1.jpg"]
    for key, value in [("ymin", [0.8, 0.1]), ("xmin", [0.7, 0.0]), ("ymax", [1.0, 0.8]),
                       ("xmax", [0.8, 0.5])]:
        assert i1[f"image/object/bbox/{key}"] == pytest.approx(value, abs=1e-6)
    assert i1["image/object/class/text"] == [b"b", b"b"]
    assert i1["image/object/depiction"] == [0, 0] and i1["image/object/group_of"] == [0, 0]
    assert i1["image/object/occluded"] == [1, 0] and i1["image/object/truncated"] == [0, 1]
    assert [s[:3] for s in skipped_lines(tmp_path / "out")] == [
        ("zero_area_box", 1, 2), ("zero_area_box", 1, 3)]
    assert i2["image/object/class/text"] == [b"b", b"c"]
    assert i2["image/object/is_crowd"] == [0, 1]


def test_od_api_no_attributes(tmp_path):
    """test_no_attributes: without the Is* columns no flag key is written."""
    _od_api_tree(tmp_path / "o", flags=False)
    code, output = convert(tmp_path / "o", tmp_path / "out", "--allow-partial")
    assert code == 0, output
    i2 = examples(tmp_path / "out", "validation")["i2.jpg"]
    assert i2["image/object/bbox/xmin"] == pytest.approx([0.1, 0.1], abs=1e-6)
    assert i2["image/object/class/text"] == [b"b", b"c"]
    assert not {"image/object/depiction", "image/object/group_of", "image/object/occluded",
                "image/object/truncated"} & set(i2)


def test_v6_train_prefix_datumaro_and_fiftyone(tmp_path):
    oid_tree(tmp_path / "v6", split="train", prefix="oidv6-")
    code, output = convert(tmp_path / "v6", tmp_path / "o1")
    assert code == 0, output
    assert set(Manifest.read(tmp_path / "o1").splits) == {"train"}
    oid_tree(tmp_path / "dm", datumaro=True)
    code, output = convert(tmp_path / "dm", tmp_path / "o2")
    assert code == 0, output
    assert output.splitlines()[0] == ("layout: Open Images (Datumaro: annotations/*.csv + "
                                      "images/<split>/): split validation")
    oid_fiftyone(tmp_path / "fo")
    code, output = convert(tmp_path / "fo", tmp_path / "o3")
    assert code == 0, output
    assert output.splitlines()[0] == ("layout: Open Images (FiftyOne: data/ + "
                                      "labels/detections.csv): split validation")
    ex = examples(tmp_path / "o3", "validation")["abc.jpg"]
    np.testing.assert_allclose(boxes_px(ex), [(20, 4, 40, 24)], atol=0.1)
    assert texts(ex) == ["Person"]


def test_bad_rows_are_skipped_with_their_line(tmp_path):
    rows = [OidRow(A, "/m/01g317", (0.1, 0.5, 0.1, 0.5)),
            OidRow(A, "/m/01g317", (0.1, 1.5, 0.1, 0.5)),
            OidRow(A, "/m/01g317", (0.6, 0.5, 0.1, 0.5)),
            OidRow(A, "/m/09xyz", (0.1, 0.5, 0.1, 0.5))]
    oid_tree(tmp_path / "oid", rows)
    csv_path = tmp_path / "oid" / "validation-annotations-bbox.csv"
    csv_path.write_text(csv_path.read_text() + f"{A},xclick,/m/0k4j,1,abc,0.5,0.1,0.5,0,0,0,0,0\n")
    code, output = convert(tmp_path / "oid", tmp_path / "out", "--allow-partial")
    assert code == 0, output
    name = "validation-annotations-bbox.csv"
    assert skipped_lines(tmp_path / "out") == [
        ("coordinates_out_of_range", A, 3, f"{A}.jpg", f"{name} line 3: XMax 1.5 is outside "
         "[0, 1] by more than 0.01 (not normalized?)"),
        ("malformed_bbox", A, 4, f"{A}.jpg", f"{name} line 4: XMax < XMin or YMax < YMin "
         "(0.6, 0.5, 0.1, 0.5)"),
        ("unknown_category", A, 5, f"{A}.jpg", f"{name} line 5: LabelName '/m/09xyz' is not "
         "in the class descriptions"),
        ("malformed_bbox", A, 6, f"{A}.jpg", f"{name} line 6: XMin, XMax, YMin, YMax are not "
         "all numbers"),
    ]
    code, output = convert(tmp_path / "oid", tmp_path / "out2")
    assert code == 1
    (line,) = error_lines(output)
    assert line.startswith("Error: split 'validation': 4 of 5 objects skipped")


@pytest.mark.parametrize("content, found", [
    ("ImageID,LabelName,XMin\nx,/m/0k4j,0.1\n", "found the header 'ImageID,LabelName,XMin'"),
    (OID_HEADER + '\n"' + "x" * 140_000 + "\n", "found a malformed CSV (field larger than "
     "field limit (131072))"),
])
def test_malformed_csv_is_one_error_line(tmp_path, content, found):
    oid_tree(tmp_path / "oid")
    path = tmp_path / "oid" / "validation-annotations-bbox.csv"
    path.write_text(content)
    code, output = convert(tmp_path / "oid", tmp_path / "out")
    assert code == 2
    (line,) = error_lines(output)
    assert line.startswith(f"Error: {path}: expected an Open Images box CSV") and \
        line.endswith(found)


def test_missing_images_lose_the_split(tmp_path):
    oid_tree(tmp_path / "oid")
    for p in (tmp_path / "oid" / "validation").iterdir():
        p.unlink()
    code, output = convert(tmp_path / "oid", tmp_path / "out")
    assert code == 1
    (line,) = error_lines(output)
    assert line.startswith("Error: split 'validation': no image written (2 of 2 skipped) "
                           "(missing_file 2)")


def test_classes_select_images_and_an_unknown_name_is_an_error(tmp_path):
    oid_tree(tmp_path / "oid")
    code, output = convert(tmp_path / "oid", tmp_path / "out", "--classes", "Person")
    assert code == 0, output
    assert ("  note: validation: 2 box(es) of classes not in --classes and 1 image(s) left "
            "without a box not written (class_not_selected)") in output.splitlines()
    got = examples(tmp_path / "out", "validation")
    assert list(got) == [f"{A}.jpg"] and texts(got[f"{A}.jpg"]) == ["Person", "Person"]
    assert errors_of(tmp_path / "oid", tmp_path / "out2", "--classes", "Person,Tortoise") == (2, [
        "Error: --classes: expected names of the Open Images data set's classes (Car, "
        "Human face, Person), found 'Tortoise'"])


def test_no_rows_names_the_layout(tmp_path):
    oid_tree(tmp_path / "oid", [])
    assert errors_of(tmp_path / "oid", tmp_path / "out") == (2, [
        f"Error: {tmp_path / 'oid'}: expected objects with class names (Open Images "
        "(<split>-annotations-bbox.csv + <split>/): split validation), found no box row in "
        "validation-annotations-bbox.csv"])


def test_display_names_shared_by_two_mids():
    assert openimages.display_names({"/m/1", "/m/2", "/m/3"}, {
        "/m/1": "Apple", "/m/2": "Apple", "/m/3": "Pear"}) == {
        "/m/1": "Apple (/m/1)", "/m/2": "Apple (/m/2)", "/m/3": "Pear"}


def test_reading_is_compact(tmp_path):
    """Streaming into columns: well under 200 bytes per row held (a pandas frame of
    the same CSV holds several times that)."""
    n = 60_000
    path = tmp_path / "train-annotations-bbox.csv"
    with open(path, "w") as f:
        f.write(OID_HEADER + "\n")
        for i in range(n):
            f.write(OidRow(f"{i // 8:016x}", "/m/01g317", (0.1, 0.5, 0.2, 0.6)).line() + "\n")
    tracemalloc.start()
    boxes = openimages.read_boxes(OidSplitFiles("train", path, tmp_path), {"/m/01g317": "P"})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(boxes.cols.line) == n
    assert peak / n < 200, peak / n


def test_same_bytes_for_any_worker_count_and_tfds_opens_it(tmp_path):
    from test_tfds import check_detection

    rows = [OidRow(f"{i:016x}", "/m/0k4j" if i % 3 else "/m/01g317",
                   (0.1, 0.5 + i / 40, 0.2, 0.7)) for i in range(6)]
    oid_tree(tmp_path / "oid", rows)
    check_detection(worker_counts_agree(tmp_path / "oid", tmp_path))


def test_the_readme_fixture(tmp_path):
    from format_builders import fixture_counts

    lines, splits, skipped = fixture_counts("openimages", tmp_path)
    assert lines[0] == ("layout: Open Images (<split>-annotations-bbox.csv + <split>/): "
                        "split validation")
    # the folder's one image without a box row is listed, not written (never a loss)
    assert splits == {"validation": (9, 20)} and skipped == {"unlisted_image": 1}
    assert (tmp_path / "out" / "labels.txt").read_text().split() == [
        "Car", "Dog", "Kite", "Person"]


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from conftest import FIXTURES
    from format_builders import beam_matches_local

    local = beam_matches_local(FIXTURES / "openimages", tmp_path)
    splits = json.loads(local["manifest.json"])["splits"]
    assert splits and sum(".tfrecord-" in name for name in local) == 2 * len(splits)
