import pytest

from cocoprep.errors import LabelMapError
from cocoprep.labelmap import LabelItem, LabelMap


def test_pbtxt_round_trip_is_exact():
    lm = LabelMap.from_pairs([(1, "person"), (3, "car"), (18, "dog's toy"), (38, 'say "hi"\\n')])
    text = lm.to_pbtxt()
    assert "item {\n  id: 1\n  name: 'person'\n  display_name: 'person'\n}\n" in text
    back = LabelMap.from_pbtxt(text)
    assert back == lm
    assert back.to_pbtxt() == text


def test_pbtxt_reads_od_api_style_files():
    text = '''# a comment
item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
}
item { id: 2 name: 'bicycle' }
'''
    lm = LabelMap.from_pbtxt(text)
    assert lm.ids == [1, 2]
    assert lm.names == ["/m/01g317", "bicycle"]
    assert lm.items[0].display_name == "person" and lm.items[1].display_name is None
    assert lm.index_of(2) == 1 and lm.id_of("bicycle") == 2 and lm.name_of(1) == "/m/01g317"


def test_pbtxt_file_round_trip(tmp_path):
    lm = LabelMap.from_names(["a", "b", "c"])
    lm.write_pbtxt(tmp_path / "label_map.pbtxt")
    assert LabelMap.read_pbtxt(tmp_path / "label_map.pbtxt") == lm


@pytest.mark.parametrize("text,line,what", [
    ("item {\n id: 1\n name: 'a'\n}\nitem {\n id: 1\n name: 'b'\n}\n", 5, "duplicate id 1"),
    ("item {\n id: 1\n name: 'a'\n}\nitem {\n id: 2\n name: 'a'\n}\n", 5, "duplicate name"),
    ("item {\n id: 0\n name: 'cat'\n}\n", 1, "ids must be >= 1"),
    ("item {\n id: -2\n name: 'cat'\n}\n", 1, "ids must be >= 1"),
    ("item {\n id: 1\n name: 'a'\n", 3, "unexpected end"),
    ("item {\n id: one\n name: 'a'\n}\n", 2, "expected num"),
    ("item {\n id: 1\n colour: 'a'\n}\n", 3, "unknown field 'colour'"),
    ("item {\n id: 1\n}\n", 1, "needs both id and name"),
    ("thing {\n id: 1\n}\n", 1, "expected item"),
    ("item {\n id: 1\n name: 'a\n}\n", 3, "unexpected text"),
])
def test_pbtxt_rejections_name_the_line(tmp_path, text, line, what):
    path = tmp_path / "label_map.pbtxt"
    path.write_text(text)
    with pytest.raises(LabelMapError) as info:
        LabelMap.read_pbtxt(path)
    assert info.value.line == line
    assert f"label_map.pbtxt:{line}: " in str(info.value)
    assert what in str(info.value)


def test_background_may_have_id_zero():
    lm = LabelMap.from_pbtxt("item { id: 0 name: 'background' }\nitem { id: 1 name: 'cat' }\n")
    assert lm.ids == [0, 1]


def test_empty_pbtxt_is_an_error():
    with pytest.raises(LabelMapError, match="no items"):
        LabelMap.from_pbtxt("# nothing\n")


def test_labels_txt_round_trip(tmp_path):
    lm = LabelMap.from_names(["cat", "dog", "two words"], start=0)
    assert lm.ids == [0, 1, 2]
    lm.write_labels_txt(tmp_path / "labels.txt")
    assert (tmp_path / "labels.txt").read_text() == "cat\ndog\ntwo words\n"
    back = LabelMap.read_labels_txt(tmp_path / "labels.txt")
    assert back.names == lm.names and back.ids == lm.ids
    assert back.to_labels_txt() == lm.to_labels_txt()
    one_based = LabelMap.read_labels_txt(tmp_path / "labels.txt", start=1)
    assert one_based.ids == [1, 2, 3]


@pytest.mark.parametrize("text,line,what", [
    ("cat\n\ndog\n", 2, "empty line"),
    ("cat\ndog\ncat\n", 3, "duplicate name"),
    ("cat\n dog\n", 2, "surrounding spaces"),
])
def test_labels_txt_rejections_name_the_line(tmp_path, text, line, what):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(LabelMapError) as info:
        LabelMap.read_labels_txt(path)
    assert f"labels.txt:{line}: " in str(info.value) and what in str(info.value)


def test_unwritable_names_are_rejected():
    with pytest.raises(LabelMapError, match="labels.txt"):
        LabelMap([LabelItem(1, "a\nb")]).to_labels_txt()
