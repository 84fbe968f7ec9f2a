"""Pascal VOC in: every layout converts with every object's class and box right,
the OD API's VOC records are matched key for key, bad files are skipped with their
reason (and a split that loses most of them fails), output bytes are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cocoprep.errors import InputError, ItemSkipped, UsageError
from cocoprep.manifest import Manifest
from cocoprep.sources import load_detection, voc, voclayout
from cocoprep.sources.detection import SourceRequest
from conftest import invoke, raw_records
from voc_builders import (
    H, W, Img, Obj, all_objects, cvat_voc, flat_voc, label_studio_voc, labelimg_pairs, photo,
    roboflow_voc, voc_xml, vocdevkit,
)


def convert(src, out, *args):
    return invoke("convert", src, "-o", out, "--workers", "1", *args)


def examples(out: Path, split: str) -> dict[str, dict]:
    """The records of a split by image/filename, each a {key: list of values} dict."""
    import tensorflow as tf

    found = {}
    for path in Manifest.read(out).shard_paths(out, split):
        for raw in raw_records(path):
            ex = tf.train.Example.FromString(raw)
            values = {}
            for key, feat in ex.features.feature.items():
                kind = feat.WhichOneof("kind")
                values[key] = list(getattr(feat, kind).value) if kind else []
            found[values["image/filename"][0].decode()] = values
    return found


def skipped_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


def assert_matches(out: Path, expected: dict[str, list[Img]], *, difficult: bool = True) -> None:
    """Every image written, with every object's class (label id in sorted-name order)
    and box within 0.1 px, and the VOC flags as the XML states them."""
    manifest = Manifest.read(out)
    names = [line for line in (out / "labels.txt").read_text().splitlines()]
    assert set(manifest.splits) == set(expected)
    for split, imgs in expected.items():
        got = examples(out, split)
        assert sorted(got) == sorted(img.file for img in imgs)
        for img in imgs:
            ex = got[img.file]
            assert ex["image/width"] == [img.width] and ex["image/height"] == [img.height]
            assert ex["image/source_id"] == [img.filename.encode()]
            objs = [o for o in img.objects if difficult or not o.difficult]
            text = [t.decode() for t in ex.get("image/object/class/text", [])]
            assert text == [o.name for o in objs]
            assert ex.get("image/object/class/label", []) == [names.index(o.name) + 1
                                                              for o in objs]
            for k, o in enumerate(objs):
                box = (ex["image/object/bbox/xmin"][k] * img.width,
                       ex["image/object/bbox/ymin"][k] * img.height,
                       ex["image/object/bbox/xmax"][k] * img.width,
                       ex["image/object/bbox/ymax"][k] * img.height)
                np.testing.assert_allclose(box, o.box, atol=0.1)
            assert ex.get("image/object/difficult", []) == [o.difficult for o in objs]
            assert ex.get("image/object/truncated", []) == [o.truncated for o in objs]
            assert ex.get("image/object/view", []) == [(o.pose or "").encode() for o in objs]


# ================================================================== parsing

def test_parse_reads_every_field_and_floats():
    xml = voc_xml("a.jpg", (640, 480), [
        Obj("dog", (48, 45.70000076293945, 195.5, 371), difficult=1, truncated=1, pose="Left"),
        Obj("person", (1, 2, 30, 40))], style="voc2012")
    rec = voc.parse_voc(xml)
    assert (rec.filename, rec.width, rec.height) == ("a.jpg", 640, 480)
    # the person's <part> (head) is not an object of its own
    assert rec.objects == (
        voc.VocObject("dog", 48.0, 45.70000076293945, 195.5, 371.0, 1, 1, "Left"),
        voc.VocObject("person", 1.0, 2.0, 30.0, 40.0, 0, 0, "Unspecified"))


@pytest.mark.parametrize("size, expected", [
    (None, (0, 0)), ((0, 0), (0, 0)), (("500.0", "375"), (500, 375)), (("", "10"), (0, 0)),
    (("abc", "7"), (0, 0)), (("-5", "7"), (0, 0)), (("12.5", "7"), (0, 0))])
def test_size_absent_zero_or_not_a_whole_number_means_unknown(size, expected):
    rec = voc.parse_voc(voc_xml("a.jpg", size, [], style="cvat"))
    assert (rec.width, rec.height) == expected


def test_corner_order_and_flag_spellings():
    xml = (b"<annotation><filename> b.png </filename><object><name> car\n</name>"
           b"<difficult>True</difficult><truncated>false</truncated><bndbox><xmax>9</xmax>"
           b"<ymin>2</ymin><xmin>1</xmin><ymax>8</ymax></bndbox></object></annotation>")
    rec = voc.parse_voc(xml)
    assert rec.filename == "b.png"
    assert rec.objects == (voc.VocObject("car", 1, 2, 9, 8, 1, 0, ""),)


@pytest.mark.parametrize("body, reason, words", [
    ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox>"
     "</object>", voc.UNNAMED_OBJECT, "has no <name>"),
    ("<object><name>cat</name></object>", "missing_bbox", "'cat' <object> has no <bndbox>"),
    ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>x</ymin><xmax>2</xmax>"
     "<ymax>2</ymax></bndbox></object>", "malformed_bbox", "<ymin> of the 'cat' <bndbox> is 'x'"),
    ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
     "</bndbox></object>", "malformed_bbox", "<ymax> of the 'cat' <bndbox> is ''"),
    ("<object><name>cat</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax>"
     "<ymax>2</ymax></bndbox></object>", "malformed_bbox", "xmax < xmin or ymax < ymin"),
    ("<object><name>cat</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>2</xmax>"
     "<ymax>2</ymax></bndbox></object>", "malformed_bbox", "'nan', not a number"),
])
def test_object_problems_are_reasons_not_errors(body, reason, words):
    rec = voc.parse_voc(f"<annotation>{body}</annotation>".encode())
    (problem,) = rec.objects
    assert isinstance(problem, voc.ObjectProblem)
    assert problem.reason == reason and words in problem.detail


@pytest.mark.parametrize("data, words", [
    (b"<annotation><object></annotation>", "not well-formed: mismatched tag"),
    (b"", "not well-formed: no element found"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
     b"]><annotation><filename>&b;</filename></annotation>", "EntitiesForbidden"),
    (b"<annotations><version>1.1</version></annotations>", "root element is <annotations>"),
])
def test_malformed_xml_is_a_skip_reason(data, words):
    with pytest.raises(ItemSkipped) as e:
        voc.parse_voc(data)
    assert e.value.reason == voc.MALFORMED_XML and words in e.value.detail


_BOMB = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
         '<!ENTITY b "&a;&a;&a;&a;">]><annotation><filename>&b;</filename></annotation>')


@pytest.mark.parametrize("data, fast", [
    (b"<annotation><filename>a.jpg</filename></annotation>", True),
    (b'<?xml version="1.0" encoding="utf-8"?><annotation/>', True),
    (b'<?xml version="1.0"?><!DOCTYPE annotation><annotation/>', False),
    (_BOMB.encode("utf-16"), False),                      # NUL bytes: could hide a DTD
    (b'<?xml version="1.0" encoding="cp500"?><annotation/>', False),  # EBCDIC
])
def test_only_xml_without_a_dtd_takes_the_fast_parser(data, fast):
    assert voc._without_dtd(data) is fast


def test_an_entity_bomb_in_utf16_is_refused_too():
    with pytest.raises(ItemSkipped) as e:
        voc.parse_voc(_BOMB.encode("utf-16"))
    assert e.value.reason == voc.MALFORMED_XML and "EntitiesForbidden" in e.value.detail


@pytest.mark.parametrize("make", [vocdevkit, cvat_voc, label_studio_voc, roboflow_voc])
def test_fast_and_defused_parsers_read_the_same(tmp_path, monkeypatch, make):
    make(tmp_path)
    files = sorted(tmp_path.rglob("*.xml"))
    assert files
    fast = [voc.parse_voc(f.read_bytes()) for f in files]
    monkeypatch.setattr(voc, "_without_dtd", lambda data: False)
    assert [voc.parse_voc(f.read_bytes()) for f in files] == fast


def test_resolve_image_by_filename_stem_or_xml_name():
    lookup = voc.image_lookup(["a.jpg", "b.PNG", "sub/c.jpg", "notes.txt", "d.jpeg", "d.png"])
    assert voc.resolve_image("a.jpg", "zzz", lookup) == ("a.jpg", voc.BY_FILENAME)
    assert voc.resolve_image("b", "zzz", lookup) == ("b.PNG", voc.BY_FILENAME)   # Label Studio
    assert voc.resolve_image(None, "a", lookup) == ("a.jpg", voc.BY_XML_NAME)
    assert voc.resolve_image("gone.jpg", "b", lookup) == ("b.PNG", voc.BY_XML_NAME)
    assert voc.resolve_image("sub/c.jpg", "x", lookup) == ("sub/c.jpg", voc.BY_FILENAME)
    assert voc.resolve_image("d", "x", lookup) == ("d.jpeg", voc.BY_FILENAME)  # sorted: first
    # nothing outside the image folder is ever named
    assert voc.resolve_image("../../etc/a.jpg", "x", lookup) == ("a.jpg", voc.BY_FILENAME)
    assert voc.resolve_image("C:\\data\\a.jpg", "x", lookup) == ("a.jpg", voc.BY_FILENAME)
    assert voc.resolve_image("/abs/gone.jpg", "x", lookup) == ("gone.jpg", voc.NOT_FOUND)
    assert voc.resolve_image(None, "notes", lookup) == ("notes.jpg", voc.NOT_FOUND)


# ================================================================== layouts

def _split_sizes(layout) -> dict[str, int]:
    return {s.name: len(s.xml_names) for s in layout.splits}


def test_vocdevkit_splits_from_the_lists(tmp_path):
    vocdevkit(tmp_path)
    for src in (tmp_path, tmp_path / "VOCdevkit", tmp_path / "VOCdevkit" / "VOC2007"):
        layout = voclayout.discover(src)
        assert layout.describe() == "Pascal VOC (VOCdevkit: VOC2007): splits train, val, test"
        # trainval (train + val) is not written twice; car_train.txt is a class list
        assert _split_sizes(layout) == {"train": 4, "val": 3, "test": 2}
        assert voc.detect(src)


def test_trainval_alone_is_a_split(tmp_path):
    vocdevkit(tmp_path, splits=(("trainval", 3),))
    assert _split_sizes(voclayout.discover(tmp_path)) == {"trainval": 3}


def test_two_years_name_their_splits(tmp_path):
    vocdevkit(tmp_path, splits=(("train", 2), ("test", 1)))
    vocdevkit(tmp_path, year="VOC2012", splits=(("train", 3), ("val", 1)), style="voc2012",
              start=100)
    layout = voclayout.discover(tmp_path)
    assert layout.describe() == ("Pascal VOC (VOCdevkit: VOC2007, VOC2012): splits train2007, "
                                 "test2007, train2012, val2012")
    assert _split_sizes(layout) == {"train2007": 2, "test2007": 1, "train2012": 3, "val2012": 1}


@pytest.mark.parametrize("build, kind, splits", [
    (cvat_voc, "CVAT export: Annotations/ + JPEGImages/", {"default": 4}),
    (label_studio_voc, "Annotations/ + images/", {"train": 3}),
    (flat_voc, "annotations/ + images/", {"train": 4}),
    (lambda r: flat_voc(r, ann_dir="labels"), "labels/ + images/", {"train": 4}),
    (labelimg_pairs, "image + XML pairs", {"train": 3}),
    (roboflow_voc, "Roboflow export, <split>/ folders of image + XML pairs",
     {"train": 3, "valid": 2, "test": 1}),
])
def test_export_layouts(tmp_path, build, kind, splits):
    build(tmp_path)
    assert voc.detect(tmp_path)
    layout = voclayout.discover(tmp_path)
    assert layout.kind == kind
    assert _split_sizes(layout) == splits


def test_split_folders_of_annotated_layouts(tmp_path):
    for split in ("train", "val"):
        flat_voc(tmp_path / split, n=2)
    layout = voclayout.discover(tmp_path)
    assert layout.kind == "<split>/ folders of annotations/ + images/"
    assert _split_sizes(layout) == {"train": 2, "val": 2}


def test_not_voc(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text("{}")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert not voc.detect(tmp_path)
    assert not voc.detect(tmp_path / "annotations" / "instances_train.json")
    with pytest.raises(InputError, match="expected Pascal VOC XMLs"):
        voclayout.discover(tmp_path)


def test_annotations_without_an_image_folder_is_an_error(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_bytes(voc_xml("a.jpg", (W, H), []))
    result = convert(tmp_path, tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {tmp_path}: expected an image folder (JPEGImages, images, Images, PNGImages) "
        "beside Annotations/, found none")


# ================================================================== converting

BUILDERS = {
    "vocdevkit": vocdevkit, "voc2012": lambda r: vocdevkit(r, year="VOC2012", style="voc2012"),
    "cvat": cvat_voc, "label_studio": label_studio_voc, "flat": flat_voc,
    "labels_dir": lambda r: flat_voc(r, ann_dir="labels"), "labelimg": labelimg_pairs,
    "roboflow": roboflow_voc,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_layout_converts_every_object(tmp_path, name):
    expected = BUILDERS[name](tmp_path / "src")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("layout: Pascal VOC (")
    manifest = Manifest.read(out)
    assert sum(manifest.skipped.values()) == 0
    assert sum(i.num_objects for i in manifest.splits.values()) == all_objects(expected)
    assert any(not img.objects for imgs in expected.values() for img in imgs)  # negatives too
    assert manifest.sources["layout"] == result.stdout.splitlines()[0][len("layout: "):]
    classes = sorted({o.name for imgs in expected.values() for img in imgs for o in img.objects})
    assert (out / "labels.txt").read_text().split() == classes
    assert_matches(out, expected)


def test_od_api_create_pascal_tf_record_expectations(tmp_path):
    """The OD API's create_pascal_tf_record_test: a 256x256 image, one difficult
    person at (64, 64)-(192, 192) with truncated 0 and an empty pose, label map
    background 0, person 1, notperson 2 -> these values under these keys. (Their
    label map's `notperson` names no object of the data, which `--classes` refuses as
    a likely typo, so only `person` is asked for here.)"""
    photo(tmp_path / "src" / "JPEGImages" / "tmp_image.jpg", 256, 256)
    (tmp_path / "src" / "Annotations").mkdir()
    (tmp_path / "src" / "Annotations" / "tmp_image.xml").write_bytes(voc_xml(
        "tmp_image.jpg", (256, 256), [Obj("person", (64, 64, 192, 192), difficult=1,
                                          truncated=0, pose="")]))
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--classes", "person")
    assert result.exit_code == 0, result.output
    ex = examples(out, "train")["tmp_image.jpg"]
    assert ex["image/height"] == [256] and ex["image/width"] == [256]
    assert ex["image/filename"] == [b"tmp_image.jpg"]
    assert ex["image/source_id"] == [b"tmp_image.jpg"]
    assert ex["image/format"] == [b"jpeg"]
    assert ex["image/object/bbox/xmin"] == [0.25] and ex["image/object/bbox/ymin"] == [0.25]
    assert ex["image/object/bbox/xmax"] == [0.75] and ex["image/object/bbox/ymax"] == [0.75]
    assert ex["image/object/class/text"] == [b"person"]
    assert ex["image/object/class/label"] == [1]
    assert ex["image/object/difficult"] == [1]
    assert ex["image/object/truncated"] == [0]
    assert ex["image/object/view"] == [b""]
    assert (out / "labels.txt").read_text().split() == ["person"]


def test_read_back_through_model_garden_keys_and_cocoprep_load(tmp_path):
    """The Model Garden's TfExampleDecoder keys parse every record, and
    cocoprep.load gives the boxes back."""
    import tensorflow as tf

    import cocoprep

    expected = flat_voc(tmp_path / "src")
    out = tmp_path / "out"
    assert convert(tmp_path / "src", out).exit_code == 0
    spec = {
        "image/encoded": tf.io.FixedLenFeature((), tf.string),
        "image/height": tf.io.FixedLenFeature((), tf.int64, -1),
        "image/width": tf.io.FixedLenFeature((), tf.int64, -1),
        "image/source_id": tf.io.FixedLenFeature((), tf.string),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
        "image/object/area": tf.io.VarLenFeature(tf.float32),
        "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    }
    by_file = {img.file: img for img in expected["train"]}
    by_source = {img.filename: img for img in expected["train"]}
    for path in Manifest.read(out).shard_paths(out, "train"):
        for raw in raw_records(path):
            p = tf.io.parse_single_example(raw, spec)
            img = by_source[p["image/source_id"].numpy().decode()]
            pixels = tf.io.decode_image(p["image/encoded"]).numpy()
            assert pixels.shape[:2] == (img.height, img.width)
            assert (p["image/height"].numpy(), p["image/width"].numpy()) == (img.height,
                                                                             img.width)
            n = len(img.objects)
            assert tf.sparse.to_dense(p["image/object/bbox/xmin"]).shape == (n,)
            np.testing.assert_allclose(tf.sparse.to_dense(p["image/object/area"]).numpy(),
                                       [(o.box[2] - o.box[0]) * (o.box[3] - o.box[1])
                                        for o in img.objects], rtol=1e-5)
            assert tf.sparse.to_dense(p["image/object/is_crowd"]).numpy().tolist() == [0] * n
    names = (out / "labels.txt").read_text().split()
    for e in cocoprep.load(out, "train", shuffle=False):
        img = by_file[e["filename"].numpy().decode()]
        boxes = [[o.box[1] / img.height, o.box[0] / img.width, o.box[3] / img.height,
                  o.box[2] / img.width] for o in img.objects]
        np.testing.assert_allclose(e["boxes"].numpy().reshape(-1, 4),
                                   np.array(boxes, np.float32).reshape(-1, 4), atol=1e-6)
        assert e["label_ids"].numpy().tolist() == [names.index(o.name) + 1 for o in img.objects]


def test_skip_difficult_drops_them_as_asked(tmp_path):
    expected = vocdevkit(tmp_path / "src")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--skip-difficult")
    assert result.exit_code == 0, result.output
    n = sum(o.difficult for imgs in expected.values() for img in imgs for o in img.objects)
    assert n > 0
    assert Manifest.read(out).skipped == {"difficult_dropped": n}
    assert {line["reason"] for line in skipped_lines(out)} == {"difficult_dropped"}
    assert_matches(out, expected, difficult=False)


def test_skip_difficult_never_counts_as_a_loss(tmp_path):
    imgs = [Img(f"{i}.jpg", W, H, [Obj("cat", (1, 1, 20, 20), difficult=1)]) for i in range(3)]
    for img in imgs:
        photo(tmp_path / "src" / img.file)
        (tmp_path / "src" / f"{img.file[:-4]}.xml").write_bytes(
            voc_xml(img.file, (W, H), img.objects))
    result = convert(tmp_path / "src", tmp_path / "out", "--skip-difficult")
    assert result.exit_code == 0, result.output
    assert Manifest.read(tmp_path / "out").splits["train"].num_objects == 0


def test_classes_name_the_order(tmp_path):
    expected = vocdevkit(tmp_path / "src")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--classes", "person,dog,car")
    assert result.exit_code == 0, result.output
    assert (out / "labels.txt").read_text().split() == ["person", "dog", "car"]
    got = examples(out, "train")
    for img in expected["train"]:
        assert got[img.file].get("image/object/class/label", []) == [
            ["person", "dog", "car"].index(o.name) + 1 for o in img.objects]


# ================================================================== skips and losses

def _pairs(root: Path, n: int, objects=lambda i: [Obj("cat", (1, 1, 20, 20))]) -> None:
    for i in range(n):
        photo(root / f"{i}.jpg", seed=i)
        (root / f"{i}.xml").write_bytes(voc_xml(f"{i}.jpg", (W, H), objects(i)))


def test_a_class_left_out_of_classes_is_skipped_with_its_reason(tmp_path):
    _pairs(tmp_path / "src", 4, lambda i: [Obj("cat", (1, 1, 20, 20)), Obj("dog", (2, 2, 9, 9))]
           if i == 0 else [Obj("cat", (1, 1, 20, 20))])
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--classes", "cat")
    assert result.exit_code == 0, result.output
    (line,) = skipped_lines(out)
    assert line == {"split": "train", "image_id": 1, "annotation_id": 2, "file": "0.jpg",
                    "reason": "class_not_selected",
                    "detail": "class 'dog' is not in --classes"}
    assert "note: --classes keeps 1 of 2 classes (ids 1..1); left out: dog (1 object)" \
        in result.stdout


def test_a_class_name_the_data_does_not_have_is_refused(tmp_path):
    # the data's side of a typo: the XMLs say "Dog", --classes says "dog"
    _pairs(tmp_path / "src", 3, lambda i: [Obj("Dog", (1, 1, 20, 20))])
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--classes", "dog")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --classes: expected names of the Pascal VOC data set's "
                             "classes (Dog), found 'dog'\n")
    assert not out.exists()


def test_malformed_xml_is_skipped_and_named(tmp_path):
    _pairs(tmp_path / "src", 3)
    (tmp_path / "src" / "1.xml").write_bytes(b"<annotation><object></annotation>")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 0, result.output
    (line,) = skipped_lines(out)
    assert line == {"split": "train", "image_id": 2, "annotation_id": None, "file": "1.xml",
                    "reason": "malformed_xml", "detail": "1.xml: not well-formed: mismatched "
                    "tag: line 1, column 22"}
    assert Manifest.read(out).splits["train"].num_examples == 2


def test_most_xmls_malformed_fails(tmp_path):
    _pairs(tmp_path / "src", 3)
    for i in (0, 1):
        (tmp_path / "src" / f"{i}.xml").write_bytes(
            b'<!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>')
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: split 'train': 2 of 3 images skipped (malformed_xml 2); the annotation XMLs "
        "do not parse as Pascal VOC <annotation> files: are they complete (a finished "
        "download, unzipped)? [output written to ")
    assert "EntitiesForbidden" in (out / "skipped.jsonl").read_text()


def test_object_problems_are_skipped_with_their_reason(tmp_path):
    _pairs(tmp_path / "src", 2)
    (tmp_path / "src" / "1.xml").write_bytes(
        b"<annotation><filename>1.jpg</filename><object><name>cat</name><bndbox><xmin>1"
        b"</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        b"<object><bndbox/></object><object><name>cat</name></object><object><name>cat"
        b"</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>2</xmax><ymax>5</ymax></bndbox>"
        b"</object></annotation>")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--allow-partial")
    assert result.exit_code == 0, result.output
    got = [(line["annotation_id"], line["reason"], line["detail"]) for line in skipped_lines(out)]
    assert got == [
        (3, "unnamed_object", "1.xml: the <object> has no <name>"),
        (4, "missing_bbox", "1.xml: the 'cat' <object> has no <bndbox>"),
        (5, "malformed_bbox", "1.xml: the 'cat' <bndbox> has xmax < xmin or ymax < ymin "
                              "(9, 1, 2, 5)")]
    assert Manifest.read(out).splits["train"].num_objects == 2


def test_an_id_listed_without_its_xml_is_skipped(tmp_path):
    vocdevkit(tmp_path / "src", splits=(("train", 3),), trainval=False)
    main = tmp_path / "src" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    (main / "train.txt").write_text((main / "train.txt").read_text() + "009999\n")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 0, result.output
    (line,) = skipped_lines(out)
    assert line == {"split": "train", "image_id": None, "annotation_id": None,
                    "file": "VOCdevkit/VOC2007/Annotations/009999.xml", "reason": "missing_xml",
                    "detail": "train.txt lists '009999', which has no "
                              "VOCdevkit/VOC2007/Annotations/009999.xml"}


def test_size_disagreeing_with_the_image_is_the_coco_mismatch_rule(tmp_path):
    _pairs(tmp_path / "src", 3)
    (tmp_path / "src" / "2.xml").write_bytes(
        voc_xml("2.jpg", (W * 2, H * 2), [Obj("cat", (1, 1, 20, 20))]))
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 0, result.output
    reasons = [(line["file"], line["reason"]) for line in skipped_lines(out)]
    assert reasons == [("2.jpg", "size_mismatch"), ("2.jpg", "image_skipped")]


def test_missing_images_fail_with_a_hint(tmp_path):
    _pairs(tmp_path / "src", 3)
    for i in range(3):
        (tmp_path / "src" / f"{i}.jpg").rename(tmp_path / f"{i}.jpg")
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: split 'train': no image written (3 of 3 skipped) (missing_file 3); 3 image(s) "
        f"not found under {tmp_path / 'src'}")


def test_ratio_and_splits(tmp_path):
    vocdevkit(tmp_path / "src", splits=(("train", 6), ("val", 2)))
    out = tmp_path / "out"
    result = convert(tmp_path / "src", out, "--splits", "train", "--ratio", "0.5,0.5")
    assert result.exit_code == 0, result.output
    m = Manifest.read(out)
    assert {s: i.num_examples for s, i in m.splits.items()} == {"train": 3, "val": 3}
    result = convert(tmp_path / "src", out, "--ratio", "0.5,0.5")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: --ratio: expected exactly one split to deal out "
                                     "(pick one with --splits), found 'train,val'")
    result = convert(tmp_path / "src", out, "--splits", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: --splits: expected names from ['train', 'val'], "
                                     "found 'nope'")


def test_load_request_is_the_library_door(tmp_path):
    expected = cvat_voc(tmp_path)
    source = load_detection(tmp_path, SourceRequest(classes=("person", "car")))
    assert source.format == "voc"
    assert source.layout == "Pascal VOC (CVAT export: Annotations/ + JPEGImages/): split default"
    (split,) = source.splits
    assert split.source.source_ids == [img.filename for img in expected["default"]]
    assert source.labels.label_map.names == ["person", "car"]
    with pytest.raises(UsageError):
        voc.load(tmp_path, SourceRequest(splits=("train",)))


# ================================================================== determinism

def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_bytes_for_any_worker_count(tmp_path):
    vocdevkit(tmp_path / "src", splits=(("train", 9), ("val", 3)))
    (tmp_path / "src" / "VOCdevkit" / "VOC2007" / "Annotations" / "000001.xml").write_bytes(b"<")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        result = invoke("convert", tmp_path / "src", "-o", out, "--workers", workers, "--quiet",
                        "--num-shards", "2")
        assert result.exit_code == 0, result.output
        outs.append(_tree(out))
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_beam_writes_the_local_bytes(tmp_path):
    from cocoprep.convert import convert_detection

    vocdevkit(tmp_path / "src", splits=(("train", 8), ("test", 2)))
    common = dict(num_shards=2, quiet=True, skip_difficult=True)
    convert_detection(tmp_path / "src", tmp_path / "local", workers=2, **common)
    convert_detection(tmp_path / "src", tmp_path / "beam", runner="beam",
                 beam_options=["--runner=DirectRunner", "--direct_running_mode=in_memory"],
                 **common)
    assert _tree(tmp_path / "beam") == _tree(tmp_path / "local")


def test_the_readme_fixture(tmp_path):
    """fixtures/voc (made from fixtures/coco by fixtures/voc/make_voc.py): what the
    README shows."""
    from conftest import FIXTURES

    out = tmp_path / "out"
    result = convert(FIXTURES / "voc", out, "--skip-difficult")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ("layout: Pascal VOC (VOCdevkit: VOC2007): "
                                             "splits train, val")
    m = Manifest.read(out)
    assert {s: (i.num_examples, i.num_objects) for s, i in m.splits.items()} == {
        "train": (4, 4), "val": (2, 3)}
    assert m.skipped == {"difficult_dropped": 1}
    assert (out / "labels.txt").read_text().split() == ["car", "dog", "kite", "person"]
