"""The write options: one frozen value, validated once, shared by every entry point.

`convert_coco` and `split_folder` keep their keyword arguments (users call them) and
build a `WriteOptions` at the door with `WriteOptions.build(...)`; from there on the
value travels whole (writer, runners, loss check). `DEFAULT_RUNNER`-style choices and
every rule about these options live here, nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from cocoprep.errors import UsageError

ENCODINGS = ("jpeg", "png")
JPEG_QUALITY = 95
RUNNERS = ("local", "beam")


def parse_size(text: str | int) -> int:
    """`200MB`, `1.5GiB`, `500k` or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise UsageError("--shard-size", "a positive size", text)
        return text
    s = str(text).strip().upper().replace(" ", "")
    units = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024, "M": 10**6, "MB": 10**6,
             "MIB": 2**20, "G": 10**9, "GB": 10**9, "GIB": 2**30}
    num = s.rstrip("KMGIB")
    unit = s[len(num):]
    try:
        value = float(num) * units[unit]
    except (ValueError, KeyError):
        raise UsageError("--shard-size", "a size such as 200MB or 1GiB", text) from None
    if not math.isfinite(value) or value < 1:  # nan/inf would crash int(); < 1 byte is 0
        raise UsageError("--shard-size", "a positive size", text)
    return int(value)


def check_resize_options(max_side: int | None, jpeg_quality: int) -> None:
    """`--max-side` (None or an integer >= 1) and `--jpeg-quality` (1..100)."""
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int)
                                 or max_side < 1):
        raise UsageError("--max-side", "an integer >= 1 (pixels)", max_side)
    if (isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int)
            or not 1 <= jpeg_quality <= 100):
        raise UsageError("--jpeg-quality", "an integer from 1 to 100", jpeg_quality)


def _positive_int(option: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(option, "an integer >= 1", value)
    return value


@dataclass(frozen=True)
class WriteOptions:
    """How records are written, whatever the source: built once, by `build`.

    `shard_size` is in bytes; `beam_options` Beam's flags as given (checked by
    `writer.check_runner`; None: the DirectRunner with `workers` processes).
    """

    num_shards: int | None = None
    shard_size: int | None = None
    encode: str = "jpeg"
    max_side: int | None = None
    jpeg_quality: int = JPEG_QUALITY
    strict: bool = False
    allow_partial: bool = False
    workers: int | None = None
    quiet: bool = False
    runner: str = "local"
    beam_options: str | tuple[str, ...] | None = None
    seed: int = 0
    shuffle: bool = True

    @classmethod
    def build(cls, *, num_shards: int | None = None, shard_size: int | str | None = None,
              encode: str = "jpeg", max_side: int | None = None,
              jpeg_quality: int = JPEG_QUALITY, strict: bool = False,
              allow_partial: bool = False, workers: int | None = None, quiet: bool = False,
              runner: str = "local", beam_options: str | Sequence[str] | None = None,
              seed: int = 0, shuffle: bool = True) -> "WriteOptions":
        """Validate every option (a `UsageError` naming the flag) and freeze them."""
        if encode not in ENCODINGS:
            raise UsageError("--encode", f"one of {', '.join(ENCODINGS)}", encode)
        check_resize_options(max_side, jpeg_quality)
        if runner not in RUNNERS:
            raise UsageError("--runner", " or ".join(RUNNERS), runner)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError("--seed", "an integer >= 0", seed)  # numpy's generators need it
        return cls(
            num_shards=_positive_int("--num-shards", num_shards),
            shard_size=parse_size(shard_size) if shard_size is not None else None,
            encode=encode, max_side=max_side, jpeg_quality=jpeg_quality,
            strict=bool(strict), allow_partial=bool(allow_partial),
            workers=_positive_int("--workers", workers), quiet=bool(quiet), runner=runner,
            beam_options=(beam_options if beam_options is None or isinstance(beam_options, str)
                          else tuple(str(f) for f in beam_options)), seed=seed, shuffle=bool(shuffle),
        )

    def manifest_options(self) -> dict:
        """The options that shape the output bytes, as manifest.json records them."""
        return {
            "seed": self.seed, "shuffle": self.shuffle, "num_shards": self.num_shards,
            "shard_size": self.shard_size, "encode": self.encode, "max_side": self.max_side,
            "jpeg_quality": self.jpeg_quality, "strict": self.strict,
            "allow_partial": self.allow_partial,
        }
