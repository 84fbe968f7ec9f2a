"""`s3://` in and out, end to end, against moto's S3 server on loopback: the
driver's listing and JSON reads, the workers' image reads and shard writes, and
the final reports all go through Beam's FileSystems with the user's
`--s3_endpoint_url`/keys/region. The output is the local run's, byte for byte
(paths aside), and `verify` passes on a downloaded copy (verify reads local files
only: a remote path is refused with one line). Beam stays on the DirectRunner:
nothing is downloaded and nothing leaves 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from cocoprep import beam_runner, fsio
from cocoprep.cli import cli
from cocoprep.convert import convert_coco
from cocoprep.split import split_folder
from conftest import FIXTURES
from test_beam import make_coco, make_tree, tree_bytes

KEY, SECRET, REGION = "testing-key", "testing-secret", "us-east-1"


class S3Store:
    """One bucket on the loopback server, and the Beam flags that reach it."""

    def __init__(self, endpoint: str, bucket: str):
        self.endpoint, self.bucket = endpoint, bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY,
                                   aws_secret_access_key=SECRET, region_name=REGION)
        self.client.create_bucket(Bucket=bucket)

    def flags(self, *extra: str) -> str:
        return " ".join([*extra, f"--s3_endpoint_url={self.endpoint}",
                         f"--s3_access_key_id={KEY}", f"--s3_secret_access_key={SECRET}",
                         f"--s3_region_name={REGION}"])

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def upload_tree(self, local: Path, prefix: str) -> str:
        for dirpath, _, names in os.walk(local):
            for name in names:
                path = Path(dirpath) / name
                key = f"{prefix}/{path.relative_to(local).as_posix()}"
                self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        return self.url(prefix)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under `prefix/`, by the rest of its key."""
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix + "/")
        return {o["Key"][len(prefix) + 1:]: self.client.get_object(
                    Bucket=self.bucket, Key=o["Key"])["Body"].read()
                for o in listed.get("Contents", [])}

    def download(self, prefix: str, local: Path) -> Path:
        for rel, data in self.objects(prefix).items():
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(data)
        return local


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, request):
    # boto3 must find nothing of this machine's own AWS set-up, nor ask the network
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    bucket = request.node.name.lower().replace("_", "-")[:50].strip("-")
    return S3Store(s3_endpoint, bucket)


def _same_but_paths(far: dict[str, bytes], local: dict[str, bytes], roots: dict[str, str]):
    """`far` == `local` byte for byte, once each local root in the files that record
    paths (skip details, the manifest's sources) reads as its remote one."""
    assert sorted(far) == sorted(local)  # no staging, task or temp object is left
    for name, data in local.items():
        if name in ("skipped.jsonl", "manifest.json"):
            for local_root, remote_root in roots.items():
                data = data.replace(local_root.encode(), remote_root.encode())
        assert far[name] == data, name


@pytest.mark.slow
def test_cli_convert_s3_to_s3_with_the_users_options(tmp_path, s3):
    """The issue's command: S3's endpoint, keys and region only in --beam-options."""
    remote_src = s3.upload_tree(FIXTURES / "coco", "coco")
    result = CliRunner().invoke(cli, ["convert", remote_src, "-o", s3.url("out"),
                                      "--runner", "beam", "--beam-options", s3.flags()])
    assert result.exit_code == 0, result.output
    assert "beam: planned 2 shard(s), 10 item(s); runner DirectRunner" in result.output
    assert result.output.rstrip().endswith(f"wrote {s3.url('out')}")
    assert "Error" not in result.output
    local = CliRunner().invoke(cli, ["convert", str(FIXTURES / "coco"), "-q",
                                     "-o", str(tmp_path / "local"), "--workers", "1"])
    assert local.exit_code == 0, local.output
    far = s3.objects("out")
    assert far["skipped.jsonl"] == b""  # an empty object: Beam's S3 upload needs a part
    _same_but_paths(far, tree_bytes(tmp_path / "local"),
                    {str(FIXTURES / "coco"): s3.url("coco")})
    copy = s3.download("out", tmp_path / "copy")
    checked = CliRunner().invoke(cli, ["verify", str(copy)])
    assert checked.exit_code == 0, checked.output


@pytest.mark.slow
def test_s3_output_with_skips_and_masks_is_the_local_runs(tmp_path, s3):
    """Skipped items (their paths under the remote root), masks, several shards."""
    src = make_coco(tmp_path / "coco", symlink=False)
    remote_src = s3.upload_tree(src, "coco")
    common = dict(masks=True, num_shards=2, quiet=True, allow_partial=True)
    convert_coco(src, tmp_path / "local", workers=1, **common)
    convert_coco(remote_src, s3.url("out/ds"), runner="beam",
                 beam_options=s3.flags("--runner=DirectRunner",
                                       "--direct_running_mode=in_memory"), **common)
    far, local = s3.objects("out/ds"), tree_bytes(tmp_path / "local")
    assert b'"reason": "corrupt_image"' in far["skipped.jsonl"]
    _same_but_paths(far, local, {os.path.realpath(src): remote_src, str(src): remote_src})
    copy = s3.download("out/ds", tmp_path / "copy")
    checked = CliRunner().invoke(cli, ["verify", str(copy)])
    assert checked.exit_code == 0, checked.output


@pytest.mark.slow
def test_split_to_s3_is_the_local_runs(tmp_path, s3):
    """`split` reads a local SRC; its OUT may be remote (manifest, labels.txt, the
    split listings and an empty skipped.jsonl through the same flags)."""
    src = make_tree(tmp_path / "tree")
    split_folder(src, tmp_path / "local", ratio="0.6,0.4", num_shards=2, workers=1, quiet=True)
    split_folder(src, s3.url("flowers"), ratio="0.6,0.4", num_shards=2, quiet=True,
                 runner="beam", beam_options=s3.flags())
    far = s3.objects("flowers")
    assert {"train.txt", "val.txt", "labels.txt", "skipped.jsonl"} <= set(far)
    assert far == tree_bytes(tmp_path / "local")


def test_pipeline_options_reach_the_drivers_own_file_calls(s3):
    """What the driver reads and writes itself (annotation copies, task files,
    reports) uses the flags as soon as they are parsed; an empty file is an empty
    object, not a refused upload."""
    beam_runner.pipeline_options(s3.flags(), 1)
    fsio.write_all(s3.url("a/empty.txt"), b"")
    fsio.write_all(s3.url("a/one.txt"), b"1")
    assert [(p, size) for p, size, _ in fsio.list_files(s3.url("a/**"))] == [
        (s3.url("a/empty.txt"), 0), (s3.url("a/one.txt"), 1)]
    assert fsio.read_all(s3.url("a/empty.txt")) == b""
    assert s3.objects("a") == {"empty.txt": b"", "one.txt": b"1"}


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_reading_commands_refuse_a_remote_output_in_one_line(command):
    result = CliRunner().invoke(cli, [command, "s3://bucket/out"])
    assert result.exit_code == 2
    assert result.output == (
        "Error: s3://bucket/out: expected a local output directory or shard glob (copy a "
        "remote output down first, e.g. `aws s3 cp --recursive` or `gcloud storage cp -r`), "
        "found a remote path\n")


@pytest.mark.parametrize("src,out", [("s3://data/coco", "LOCAL"), ("FIXTURE", "s3://data/out")],
                         ids=["s3-src", "s3-out"])
def test_s3_without_boto3_is_one_line(tmp_path, monkeypatch, src, out):
    """Beam's own message comes wrapped in two listing errors (exit 1)."""
    import apache_beam.io.aws.clients.s3.boto3_client  # noqa: F401  (imported with boto3:
    # Beam's S3 client module keeps the boto3 it found at import for the whole process)

    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` fails
    src = str(FIXTURES / "coco") if src == "FIXTURE" else src
    out = str(tmp_path / "out") if out == "LOCAL" else out
    result = CliRunner().invoke(cli, ["convert", src, "-o", out, "--runner", "beam"])
    assert result.exit_code == 2
    assert result.output == ("Error: s3:// paths need boto3, which is not installed: "
                             "pip install boto3\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt,found", [("voc", "Pascal VOC XMLs"), ("yolo", "YOLO labels")])
def test_a_remote_voc_or_yolo_src_is_refused_by_what_it_is(tmp_path, s3, fmt, found):
    """Only COCO JSON is read from a remote SRC; VOC and YOLO exports are named."""
    src = s3.upload_tree(FIXTURES / fmt, fmt)
    result = CliRunner().invoke(cli, ["convert", src, "-o", str(tmp_path / "out"),
                                      "--runner", "beam", "--beam-options", s3.flags()])
    assert result.exit_code == 2
    assert result.output == (f"Error: {src}: expected COCO JSON under a remote SRC (Pascal VOC "
                             "and YOLO data are read from a local copy: copy SRC down first), "
                             f"found {found}\n")
    assert not (tmp_path / "out").exists()
