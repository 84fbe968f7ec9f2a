"""manifest.json: the contract between writer, reader and verify."""

from __future__ import annotations

import json

import pytest

from cocoprep.errors import ManifestError
from cocoprep.manifest import MANIFEST_NAME, Manifest, ShardInfo, SplitInfo, shard_name
from conftest import run_cli


def _manifest() -> Manifest:
    shards = tuple(ShardInfo(shard_name("train", i, 2), 3 + i, f"{i:064x}", 1000 + i)
                   for i in range(2))
    return Manifest(
        task="detection", schema_version="2",
        splits={"train": SplitInfo(7, 11, shards, {"person": 6, "kite": 5}, {"bbox_missing": 1},
                                   {"keypoints_malformed": 2}),
                "val": SplitInfo(0, 0, (ShardInfo(shard_name("val", 0, 1), 0, "f" * 64, 0),))},
        label_offset=1, sources={"annotations": ["a.json"]}, options={"ratio": [0.5, 0.5]},
        skipped={"bbox_missing": 1}, counters={"keypoints_malformed": 2}, created_by="test")


def test_round_trip_through_json_and_disk(tmp_path):
    m = _manifest()
    assert Manifest.from_json(m.to_json()) == m
    path = m.write(tmp_path)
    assert path == tmp_path / MANIFEST_NAME
    assert Manifest.read(tmp_path) == m
    assert m.to_json() == Manifest.read(tmp_path).to_json()  # byte-identical when rewritten
    assert m.num_examples == 7 and m.num_shards == 3
    assert [p.name for p in m.shard_paths(tmp_path, "train")] == [
        "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"]


def test_unknown_keys_are_ignored():
    data = json.loads(_manifest().to_json())
    data["written_by_a_newer_version"] = True
    assert Manifest.from_json(json.dumps(data)) == _manifest()


def _damaged(change) -> str:
    data = json.loads(_manifest().to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("text, words", [
    ('{"task": "detection", ', "not valid JSON"),
    (_damaged(lambda d: d.pop("splits")), "not a cocoprep manifest (missing or bad 'splits')"),
    (_damaged(lambda d: d["splits"]["train"].pop("num_examples")), "missing or bad"),
    (_damaged(lambda d: d["splits"]["train"]["shards"][0].pop("sha256")), "missing or bad"),
    (_damaged(lambda d: d["splits"].update(train=[1, 2])), "missing or bad"),
    ("[1, 2]", "not a cocoprep manifest"),
])
def test_damaged_manifest_is_a_typed_error_naming_the_file(tmp_path, text, words):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(ManifestError) as err:
        Manifest.read(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / MANIFEST_NAME}: ")
    assert words in str(err.value)


def test_damaged_manifest_through_the_cli(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text('{"task": ')
    code, text = run_cli("verify", "--quiet", tmp_path)
    assert code == 2
    assert text.startswith(f"Error: {tmp_path / MANIFEST_NAME}: not valid JSON")
    assert "Traceback" not in text


def test_missing_manifest_is_a_typed_error(tmp_path):
    with pytest.raises(ManifestError, match="no manifest here"):
        Manifest.read(tmp_path)
