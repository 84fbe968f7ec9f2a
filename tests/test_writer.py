"""The shared sharded writer, with a tiny builder of its own."""

import hashlib
from dataclasses import dataclass

import pytest

from cocoprep import options, schema, writer
from cocoprep.options import WriteOptions
from cocoprep.errors import UsageError
from cocoprep.manifest import Manifest
from cocoprep.records import BuildResult, ClassificationExample, EncodedImage, SkippedItem
from conftest import parse_record, raw_records


@dataclass(frozen=True)
class NumberBuilder:
    """Item n -> a record holding n; odd multiples of 7 are skipped."""

    def build(self, split, item):
        if item % 7 == 0 and item % 2:
            return BuildResult(None, skipped=(SkippedItem(split, item, None, None, "seven", "x"),))
        data = str(item).encode()
        ex = ClassificationExample(
            EncodedImage(data, "png", 1, 1, hashlib.sha256(data).hexdigest()),
            f"{item}.png", item % 3, "abc"[item % 3])
        return BuildResult(schema.encode_classification(ex), class_counts={"abc"[item % 3]: 1},
                           listing=f"{item}.png\t{item % 3}")


def _template():
    return Manifest(task="classification", schema_version=schema.SCHEMA_VERSION, splits={})


def _write(out, workers, n=50, shards=4):
    plans = [writer.SplitPlan("train", list(range(n)), shards, "train.txt"),
             writer.SplitPlan("val", list(range(100, 110)), 1)]
    return writer.write_dataset(out, plans, NumberBuilder(), manifest=_template(),
                                class_order=["a", "b", "c"], extra_files={"labels.txt": "a\nb\nc\n"},
                                options=WriteOptions(workers=workers, quiet=True))


def test_write_dataset_shards_manifest_and_skips(tmp_path):
    manifest, skipped = _write(tmp_path / "out", workers=1)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dataset_info.json", "features.json", "image.class.label.labels.txt",
                     "labels.txt", "manifest.json", "skipped.jsonl", "train.tfrecord-00000-of-00004",
                     "train.tfrecord-00001-of-00004", "train.tfrecord-00002-of-00004",
                     "train.tfrecord-00003-of-00004", "train.txt", "val.tfrecord-00000-of-00001"]
    train = manifest.splits["train"]
    skipped_train = [n for n in range(50) if n % 7 == 0 and n % 2]
    assert train.num_examples == 50 - len(skipped_train)
    assert train.skipped == {"seven": len(skipped_train)}
    assert [s.image_id for s in skipped if s.split == "train"] == skipped_train
    read = []
    for shard in train.shards:
        recs = raw_records(out / shard.file)
        assert len(recs) == shard.num_examples
        assert hashlib.sha256((out / shard.file).read_bytes()).hexdigest() == shard.sha256
        read += [int(parse_record(schema.CLASSIFICATION, r)["encoded"]) for r in recs]
    assert read == [n for n in range(50) if n not in skipped_train]  # order kept
    assert sum(train.class_counts.values()) == train.num_examples
    assert list(train.class_counts) == ["a", "b", "c"]
    assert (out / "train.txt").read_text().splitlines()[0] == "0.png\t0"
    assert Manifest.read(out) == manifest


def test_output_is_identical_whatever_the_worker_count(tmp_path):
    _write(tmp_path / "one", workers=1)
    _write(tmp_path / "two", workers=2)
    for p in sorted((tmp_path / "one").iterdir()):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes(), p.name


def test_rerun_replaces_old_outputs_and_leaves_no_staging(tmp_path):
    out = tmp_path / "out"
    _write(out, workers=1, shards=4)
    (out / "user_notes.md").write_text("keep me")
    _write(out, workers=1, shards=2)
    names = sorted(p.name for p in out.iterdir())
    assert "train.tfrecord-00000-of-00004" not in names
    assert "train.tfrecord-00001-of-00002" in names
    assert "user_notes.md" in names
    assert not [n for n in names if n.startswith(".cocoprep") or n.endswith(".tmp")]


class ExplodingBuilder(NumberBuilder):
    def build(self, split, item):
        if item == 30:
            raise RuntimeError("boom")
        return super().build(split, item)


def test_failed_run_keeps_the_previous_output(tmp_path):
    out = tmp_path / "out"
    before, _ = _write(out, workers=1)
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError):
        writer.write_dataset(out, [writer.SplitPlan("train", list(range(50)), 2)], ExplodingBuilder(),
                             manifest=_template(), options=WriteOptions(workers=1, quiet=True))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


def test_failed_first_run_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        writer.write_dataset(out, [writer.SplitPlan("train", list(range(50)), 2)], ExplodingBuilder(),
                             manifest=_template(), options=WriteOptions(workers=1, quiet=True))
    assert not out.exists()


@pytest.mark.parametrize("items,total,kwargs,expected", [
    (10, 0, {}, 1),
    (10, 5 * writer.DEFAULT_SHARD_SIZE + 1, {}, 6),
    (3, 50 * writer.DEFAULT_SHARD_SIZE, {}, 3),
    (10, 0, {"num_shards": 4}, 4),
    (2, 0, {"num_shards": 4}, 2),
    (0, 0, {}, 1),
])
def test_plan_num_shards(items, total, kwargs, expected):
    assert writer.plan_num_shards(items, total, **kwargs) == expected


def test_automatic_shards_one_per_128_items_at_most_16():
    """Without --num-shards/--shard-size: about one shard per 128 items, never more
    than 16 by that rule (the README's numbers, spelled out so a changed constant
    shows here); bytes still add shards beyond it."""
    assert (writer.AUTO_SHARD_IMAGES, writer.AUTO_SHARDS_MAX) == (128, 16)
    assert writer.plan_num_shards(128, 0) == 1
    assert writer.plan_num_shards(129, 0) == 2
    assert writer.plan_num_shards(15 * 128 + 1, 0) == 16
    assert writer.plan_num_shards(1_000_000, 1_000_000) == 16
    assert writer.plan_num_shards(1_000_000, 20 * writer.DEFAULT_SHARD_SIZE + 1) == 21
    assert writer.plan_num_shards(1_000_000, 1_000_000, shard_size=1 << 30) == 1


def test_bad_shard_options():
    with pytest.raises(UsageError, match="--num-shards"):
        writer.plan_num_shards(5, 0, num_shards=0)
    with pytest.raises(UsageError, match="--shard-size"):
        options.parse_size("lots")
    assert options.parse_size("200MB") == 200_000_000
    assert options.parse_size("1GiB") == 2**30


@pytest.mark.slow
def test_unguarded_script_with_workers_runs_once(tmp_path, fixtures_dir):
    """Workers must not re-run the caller's script: a plain script calling the API
    with workers=2 and no `if __name__ == "__main__":` guard works."""
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(
        "from cocoprep.convert import convert_coco\n"
        "from cocoprep.verify import verify\n"
        f"m = convert_coco({str(fixtures_dir / 'coco')!r}, {str(tmp_path / 'out')!r},"
        " workers=2, num_shards=2, quiet=True)\n"
        "print('RAN', m.num_examples)\n"
        f"print(verify({str(tmp_path / 'out')!r}, workers=2).summary())\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("RAN") == 1
    assert "OK: 10 examples in 4 shards" in proc.stdout


def test_unusable_output_path_is_an_input_error(tmp_path):
    from cocoprep.errors import InputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=f"^{blocker / 'out'}: expected a writable output "
                       "directory, found Not a directory"):
        _write(blocker / "out", workers=1)
    assert blocker.read_text() == "x"


def test_unusable_output_path_through_the_cli(tmp_path, fixtures_dir):
    from click.testing import CliRunner

    from cocoprep.cli import cli

    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["split", str(fixtures_dir / "imgs"), "-o",
                                      str(blocker / "out"), "--workers", "1", "-q"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: {blocker / 'out'}: expected a writable output "
                                     "directory, found Not a directory")


@pytest.mark.parametrize("text", ["inf", "nan", "1e400", "-infMB", "0.4"])
def test_non_finite_or_sub_byte_shard_sizes_are_usage_errors(text):
    with pytest.raises(UsageError, match=f"^--shard-size: expected a positive size, found '{text}'"):
        options.parse_size(text)
