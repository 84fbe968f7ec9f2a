"""`--runner beam`: the same bytes as the local runner, remote paths through Beam's
FileSystems, the commit protocol under failure, and the messages for a missing Beam
or bad pipeline flags. The runner is always named (DirectRunner): with none, Beam
may first try to download its Prism runner, which fails offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cocoprep import fsio, outdir, writer
from cocoprep.cli import cli
from cocoprep.convert import convert_coco
from cocoprep.manifest import Manifest
from cocoprep.options import WriteOptions
from cocoprep.records import BuildResult
from cocoprep.split import split_folder
from conftest import REPO, coco_dict, image_bytes, write_json

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
THREADS_2 = ["--runner=DirectRunner", "--direct_running_mode=multi_threading",
             "--direct_num_workers=2"]
MULTI_2 = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
           "--direct_num_workers=2", "--default_sdk_harness_log_level=ERROR"]


# ------------------------------------------------------------------ data

def make_coco(root: Path, n: int = 12, *, symlink: bool = True) -> Path:
    """A COCO root with masks and items that are skipped: a missing file, a corrupt
    image, a size mismatch, a symlink out of the image folder (`symlink`: object
    stores have no links), a bbox with no area."""
    images, anns = [], []
    for i in range(n):
        name = f"{i:03d}.jpg"
        w, h = 32 + i, 24
        images.append((i + 1, name, w, h))
        (root / "train").mkdir(parents=True, exist_ok=True)
        (root / "train" / name).write_bytes(image_bytes(w, h, seed=i))
        anns.append({"id": 100 + i, "image_id": i + 1, "category_id": 1 if i % 2 else 3,
                     "bbox": [2, 2, 10, 8], "area": 80, "iscrowd": 0,
                     "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]})
    (root / "train" / "003.jpg").unlink()                          # missing_file
    (root / "train" / "004.jpg").write_bytes(b"\xff\xd8garbage")   # corrupt_image
    images[5] = (6, "005.jpg", 99, 99)                             # size_mismatch
    if symlink:
        (root / "outside.jpg").write_bytes(image_bytes(32, 24, seed=99))
        (root / "train" / "link.jpg").symlink_to(root / "outside.jpg")
        images.append((n + 1, "link.jpg", 32, 24))                 # unsafe_path (leaves the folder)
    else:  # a name that climbs out is looked up by its file name inside the folder
        (root / "outside.jpg").write_bytes(image_bytes(32, 24, seed=99))
        images.append((n + 1, "../outside.jpg", 32, 24))           # missing_file, never read
    anns.append({"id": 999, "image_id": 1, "category_id": 1, "bbox": [50, 50, 3, 3],
                 "area": 9, "iscrowd": 0, "segmentation": []})    # zero_area_box
    write_json(root / "annotations" / "instances_train.json", coco_dict(images, anns))
    return root


def make_tree(root: Path) -> Path:
    for c, n in (("cat", 7), ("dog", 6), ("eel", 5)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            (root / c / f"{i}.jpg").write_bytes(image_bytes(20, 16, seed=hash((c, i)) % 1000))
    (root / "dog" / "bad.jpg").write_bytes(b"not an image")
    return root


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every file under `out` (hidden ones too), by relative path."""
    files = {}
    for dirpath, _, names in os.walk(out):
        for name in names:
            p = Path(dirpath) / name
            files[str(p.relative_to(out))] = p.read_bytes()
    return files


# ------------------------------------------------------------------ byte equality

@pytest.mark.slow
def test_convert_beam_writes_the_local_runner_bytes(tmp_path):
    src = make_coco(tmp_path / "coco")
    common = dict(masks=True, num_shards=3, quiet=True)
    convert_coco(src, tmp_path / "local", workers=2, **common)
    convert_coco(src, tmp_path / "mem", runner="beam", beam_options=IN_MEMORY, **common)
    convert_coco(src, tmp_path / "multi", runner="beam", beam_options=MULTI_2, **common)
    convert_coco(src, tmp_path / "threads", runner="beam", workers=2, **common)  # the default
    local = tree_bytes(tmp_path / "local")
    assert len([n for n in local if ".tfrecord-" in n]) == 3
    manifest = Manifest.read(tmp_path / "local")
    assert {"missing_file", "corrupt_image", "size_mismatch", "unsafe_path",
            "zero_area_box", "image_skipped"} <= set(manifest.skipped)
    assert ("fixed.jsonl" in local) == bool(manifest.counters.get("boxes_clipped"))
    assert tree_bytes(tmp_path / "mem") == local
    assert tree_bytes(tmp_path / "multi") == local
    assert tree_bytes(tmp_path / "threads") == local


@pytest.mark.slow
def test_split_beam_writes_the_local_runner_bytes(tmp_path):
    src = make_tree(tmp_path / "tree")
    split_folder(src, tmp_path / "local", ratio="0.6,0.4", num_shards=2, workers=1, quiet=True)
    split_folder(src, tmp_path / "mem", ratio="0.6,0.4", num_shards=2, quiet=True,
                 runner="beam", beam_options=" ".join(IN_MEMORY))
    split_folder(src, tmp_path / "multi", ratio="0.6,0.4", num_shards=2, quiet=True,
                 runner="beam", beam_options=MULTI_2)
    local = tree_bytes(tmp_path / "local")
    assert {"train.txt", "val.txt", "skipped.jsonl", "labels.txt"} <= set(local)
    assert b"corrupt_image" in local["skipped.jsonl"]
    assert tree_bytes(tmp_path / "mem") == local
    assert tree_bytes(tmp_path / "multi") == local


def test_cli_beam_prints_stages_and_counts(tmp_path):
    src = make_coco(tmp_path / "coco", n=6)
    result = CliRunner().invoke(cli, ["convert", str(src), "-o", str(tmp_path / "out"),
                                      "--runner", "beam", "--beam-options", " ".join(IN_MEMORY),
                                      "--allow-partial"])  # 4 of 7 images are bad on purpose
    assert result.exit_code == 0, result.output
    assert ("beam: planned 1 shard(s), 7 item(s); runner DirectRunner (in_memory, 1 worker(s))"
            in result.output)
    assert "beam: wrote 1 shard(s): 3 record(s), 8 skipped item(s)" in result.output
    assert "wrote " in result.output


# ------------------------------------------------------------------ remote paths

class _TempSchemeFS:
    """Made a Beam FileSystem (scheme `cocopreptest://`) on first use: an object
    store (no folders, prefix listing) kept in a temp folder."""

    root: str | None = None
    cls = None

    @classmethod
    def install(cls, root: Path):
        from apache_beam.io.filesystem import BeamIOError, FileMetadata, FileSystem

        cls.root = str(root)
        if cls.cls is not None:
            return
        holder = cls
        prefix = "cocopreptest://"

        class TempSchemeFileSystem(FileSystem):
            @classmethod
            def scheme(c):
                return "cocopreptest"

            def _p(self, path):
                assert path.startswith(prefix), path
                return os.path.join(holder.root, *path[len(prefix):].split("/"))

            def join(self, base, *paths):
                return "/".join([base.rstrip("/"), *paths])

            def split(self, path):
                head, _, tail = path.rstrip("/").rpartition("/")
                return head, tail

            def mkdirs(self, path):
                pass

            def has_dirs(self):
                return False

            def _list(self, dir_or_prefix):
                for dirpath, _, names in os.walk(holder.root):
                    for name in names:
                        local = os.path.join(dirpath, name)
                        url = prefix + os.path.relpath(local, holder.root).replace(os.sep, "/")
                        if url.startswith(dir_or_prefix):
                            st = os.stat(local)
                            yield FileMetadata(url, st.st_size, st.st_mtime)

            def create(self, path, mime_type=None, compression_type=None):
                os.makedirs(os.path.dirname(self._p(path)), exist_ok=True)
                return open(self._p(path), "wb")

            def open(self, path, mime_type=None, compression_type=None):
                return open(self._p(path), "rb")

            def copy(self, sources, destinations):
                for s, d in zip(sources, destinations):
                    os.makedirs(os.path.dirname(self._p(d)), exist_ok=True)
                    shutil.copyfile(self._p(s), self._p(d))

            def rename(self, sources, destinations):
                for s, d in zip(sources, destinations):
                    os.makedirs(os.path.dirname(self._p(d)), exist_ok=True)
                    os.replace(self._p(s), self._p(d))

            def exists(self, path):
                return os.path.isfile(self._p(path))

            def size(self, path):
                return os.path.getsize(self._p(path))

            def last_updated(self, path):
                return os.path.getmtime(self._p(path))

            def checksum(self, path):
                return str(os.path.getsize(self._p(path)))

            def metadata(self, path):
                return FileMetadata(path, self.size(path), self.last_updated(path))

            def delete(self, paths):
                missing = {p: FileNotFoundError(p) for p in paths if not self.exists(p)}
                for p in paths:
                    if p not in missing:
                        os.unlink(self._p(p))
                if missing:
                    raise BeamIOError("Delete operation failed", missing)

        cls.cls = TempSchemeFileSystem


@pytest.fixture
def remote(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    _TempSchemeFS.install(store)
    return store


@pytest.mark.slow
def test_remote_input_and_output_end_to_end(tmp_path, remote):
    make_coco(remote / "coco", symlink=False)
    make_coco(tmp_path / "coco", symlink=False)
    convert_coco(tmp_path / "coco", tmp_path / "local", masks=True, num_shards=2, quiet=True,
                 workers=1)
    convert_coco("cocopreptest://coco", "cocopreptest://out", masks=True, num_shards=2,
                 quiet=True, runner="beam", beam_options=IN_MEMORY)
    local, far = tree_bytes(tmp_path / "local"), tree_bytes(remote / "out")
    assert sorted(far) == sorted(local)  # no staging, task or temp file is left
    # skip details name the image's path: the same words under the other root
    local_root = os.path.realpath(tmp_path / "coco").encode()
    local["skipped.jsonl"] = local["skipped.jsonl"].replace(local_root, b"cocopreptest://coco")
    for name in local:
        if name != "manifest.json":
            assert far[name] == local[name], name
    manifest = Manifest.from_json(far["manifest.json"].decode())
    assert manifest.sources["src"] == "cocopreptest://coco"
    assert manifest.sources["splits"]["train"]["images"] == "cocopreptest://coco/train"
    assert (manifest.sources["splits"]["train"]["instances"]
            == "cocopreptest://coco/annotations/instances_train.json")
    assert manifest.splits == Manifest.read(tmp_path / "local").splits
    # path safety holds on the remote root: ../outside.jpg (which exists) was not read
    assert far["skipped.jsonl"].count(b'"reason": "missing_file"') == 2


def test_remote_input_errors_name_the_remote_path(tmp_path, remote):
    make_coco(remote / "coco", n=6)
    (remote / "coco" / "annotations" / "instances_train.json").write_text("{broken")
    result = CliRunner().invoke(cli, ["convert", "cocopreptest://coco", "-o", str(tmp_path / "o"),
                                      "--runner", "beam", "--beam-options", " ".join(IN_MEMORY)])
    assert result.exit_code == 2
    assert result.output.startswith(
        "Error: cocopreptest://coco/annotations/instances_train.json"), result.output
    assert "cocoprep-src-" not in result.output
    result = CliRunner().invoke(cli, ["convert", "cocopreptest://nothing", "-o",
                                      str(tmp_path / "o"), "--runner", "beam"])
    assert result.exit_code == 2 and result.output.startswith("Error: cocopreptest://nothing:")
    assert not (tmp_path / "o").exists()


def test_remote_image_names_cannot_leave_the_root():
    from cocoprep.errors import ItemSkipped

    for bad in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", "gs://other/x.jpg", "C:/x.jpg", ""):
        with pytest.raises(ItemSkipped) as info:
            fsio.remote_image_path("gs://bucket/images", bad)
        assert info.value.reason == "unsafe_path"
    assert fsio.remote_image_path("gs://bucket/images", "a/./b.jpg") == "gs://bucket/images/a/b.jpg"


def test_remote_paths_need_the_beam_runner(tmp_path):
    result = CliRunner().invoke(cli, ["convert", "gs://bucket/coco", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip() == ("Error: --runner: expected beam for a remote path "
                                     "(gs://bucket/coco), found 'local'")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ faults

class FailsOn:
    """A builder that raises (not a per-item skip: a crash) on one item."""

    def __init__(self, bad):
        self.bad = bad

    def build(self, split, item):
        if item == self.bad:
            raise RuntimeError(f"worker crashed on item {item}")
        return BuildResult(example=str(item).encode(), class_counts={"a": 1})


def _template():
    return Manifest(task="classification", schema_version=1, splits={})


def test_failed_pipeline_leaves_the_old_out_and_no_temp_files(tmp_path):
    out = tmp_path / "out"
    plans = [writer.SplitPlan("train", list(range(30)), 3)]
    writer.write_dataset(out, plans, FailsOn(None), manifest=_template(),
                         options=WriteOptions(workers=1, quiet=True))
    before = tree_bytes(out)
    with pytest.raises(Exception) as info:
        writer.write_dataset(out, plans, FailsOn(17), manifest=_template(),
                             options=WriteOptions(quiet=True, runner="beam",
                                                  beam_options=IN_MEMORY))
    assert "WriteShards" in str(info.value) and "worker crashed on item 17" in str(info.value)
    assert info.value.exit_code == 1
    assert tree_bytes(out) == before
    assert sorted(os.listdir(out)) == sorted(before)  # no staging folder left


@pytest.mark.parametrize("flags", [IN_MEMORY, THREADS_2], ids=["in_memory", "threads"])
def test_cli_failed_pipeline_is_one_error_line(tmp_path, monkeypatch, flags):
    from cocoprep import convert

    src = make_coco(tmp_path / "coco", n=10)  # 4 bad of 11: not a mostly lost split
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["convert", str(src), "-o", str(out), "-q",
                                    "--workers", "1"]).exit_code == 0
    before = tree_bytes(out)
    original = convert.DetectionBuilder.build

    def crash(self, split, row):
        if self.sources[split].file_names[int(row)] == "002.jpg":
            raise MemoryError("simulated worker crash")
        return original(self, split, row)

    monkeypatch.setattr(convert.DetectionBuilder, "build", crash)
    result = CliRunner().invoke(cli, ["convert", str(src), "-o", str(out), "-q", "--runner",
                                      "beam", "--beam-options", " ".join(flags)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "stage 'WriteShards'" in lines[0], result.output
    assert "simulated worker crash" in lines[0]
    assert "Traceback" not in result.output
    assert tree_bytes(out) == before


def test_stale_staging_is_known_by_run_id_and_age(tmp_path):
    """Remote OUT has no lock: another run's staging folder is removed only when
    nothing was written to it for STALE_AFTER_S (the rule, on a local folder)."""
    out = tmp_path / "out"
    old_id = f"{int(time.time()) - outdir.STALE_AFTER_S - 60}-abc"
    stale = out / f"{outdir.STAGING_PREFIX}{old_id}"
    fresh = out / f"{outdir.STAGING_PREFIX}{outdir.new_run_id()}"
    busy = out / f"{outdir.STAGING_PREFIX}{old_id}x"  # an old run still writing
    for d in (stale, fresh, busy):
        (d / "tasks").mkdir(parents=True)
        (d / "tasks" / "t").write_bytes(b"x")
    old = time.time() - outdir.STALE_AFTER_S - 60
    os.utime(stale / "tasks" / "t", (old, old))
    os.utime(stale / "tasks", (old, old))
    os.utime(stale, (old, old))
    outdir._clean_stale_staging(str(out), "mine")
    assert not stale.exists() and fresh.exists() and busy.exists()


def test_a_local_out_holding_the_lock_removes_every_other_staging_folder(tmp_path):
    out = tmp_path / "out"
    left = out / f"{outdir.STAGING_PREFIX}{outdir.new_run_id()}"  # a run killed by SIGKILL
    (left / "tasks").mkdir(parents=True)
    writer.write_dataset(out, [writer.SplitPlan("train", [1, 2], 1)], FailsOn(None),
                         manifest=_template(), options=WriteOptions(workers=1, quiet=True))
    assert not left.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ options, install

@pytest.mark.parametrize("flags,words", [
    ("--runner=DirectRunner --bogus_flag=1", "unknown flag --bogus_flag"),
    ("--direct_num_workers=many", "--direct_num_workers: invalid int value: 'many'"),
    ("--runner=DirectRunner stray", "stray (not a flag)"),
    ("--runner='DirectRunner", "No closing quotation"),
])
def test_malformed_beam_options_name_the_flag(tmp_path, flags, words):
    src = make_coco(tmp_path / "coco", n=6)
    result = CliRunner().invoke(cli, ["convert", str(src), "-o", str(tmp_path / "out"),
                                      "--runner", "beam", "--beam-options", flags])
    assert result.exit_code == 2
    assert result.output.startswith("Error: --beam-options: expected ")
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_beam_not_installed_is_one_line(tmp_path, monkeypatch):
    src = make_coco(tmp_path / "coco", n=6)
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # `import apache_beam` fails
    for command in (["convert", str(src)], ["split", str(make_tree(tmp_path / "tree"))]):
        result = CliRunner().invoke(cli, [*command, "-o", str(tmp_path / "out"),
                                          "--runner", "beam"])
        assert result.exit_code == 2
        assert result.output == ("Error: --runner beam needs Apache Beam, which is not "
                                 'installed: pip install "apache-beam>=2.60"\n')
        assert not (tmp_path / "out").exists()


def test_cocoprep_and_the_local_runner_never_import_beam(tmp_path):
    src = make_coco(tmp_path / "coco", n=10)  # 4 bad of 11: not a mostly lost split
    code = ("import sys, cocoprep, cocoprep.cli, cocoprep.convert, cocoprep.split\n"
            "from cocoprep.convert import convert_coco\n"
            f"convert_coco({str(src)!r}, {str(tmp_path / 'out')!r}, workers=2, quiet=True)\n"
            "print(sorted(m for m in sys.modules if m.startswith('apache_beam')))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_shard_plan_is_one_rule_for_both_commands():
    assert writer.plan_num_shards(1000, 0) == 8                      # ~128 items a shard
    assert writer.plan_num_shards(100_000, 0) == writer.AUTO_SHARDS_MAX
    assert writer.plan_num_shards(1000, 0, shard_size=10**9) == 1    # an asked size wins
    assert writer.plan_num_shards(1000, 5 * 10**6, shard_size=10**6) == 5
    assert writer.plan_num_shards(3, 0, num_shards=8) == 3
    tasks = writer.plan_shards([writer.SplitPlan("a", list(range(10)), 3),
                                writer.SplitPlan("b", [7], 1)], "stage")
    assert [(t.split, t.index, list(t.items)) for t in tasks] == [
        ("a", 0, [0, 1, 2]), ("a", 1, [3, 4, 5]), ("a", 2, [6, 7, 8, 9]), ("b", 0, [7])]
    assert tasks[0].file == "a.tfrecord-00000-of-00003"
