"""Typed errors that carry their data and build their own one-line message.

Every error a user can cause derives from `CocoprepError`; the command line turns
it into a single `Error: ...` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

_ADDRESS = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # <_io.BytesIO object at 0x7f...>
_LONG_HEX = re.compile(r"\b0x[0-9a-fA-F]{8,}\b")


def stable_text(text: str) -> str:
    """`text` without memory addresses (`<_io.BytesIO object at 0x7f...>` in Pillow's
    messages, other long hex numbers): skip reports must be the same bytes on every
    run. The one home of that rule (`images.error_text` builds on it)."""
    return _LONG_HEX.sub("0x...", _ADDRESS.sub("", text))


class CocoprepError(Exception):
    """Base class of all errors caused by bad input or bad options."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # Errors cross process boundaries (a pool worker raises, the parent reports);
        # their __init__ signatures differ from Exception's, so rebuild from state.
        return _rebuild, (type(self), self.message, dict(self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> CocoprepError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UsageError(CocoprepError):
    """An option or a combination of options that cannot work."""

    def __init__(self, option: str, expected: str, found: object):
        self.option, self.expected, self.found = option, expected, found
        super().__init__(f"{option}: expected {expected}, found {found!r}")


class InputError(CocoprepError):
    """A whole input (a file or a directory) that cannot be used."""

    def __init__(self, path: str | Path, expected: str, found: str | None = None):
        self.path, self.expected, self.found = str(path), expected, found
        msg = f"{path}: expected {expected}"
        if found is not None:
            msg += f", found {found}"
        super().__init__(msg)


class LabelMapError(CocoprepError):
    """A label map (pbtxt or labels.txt) that is malformed or inconsistent."""

    def __init__(self, path: str | Path | None, line: int | None, what: str):
        self.path, self.line, self.what = (str(path) if path else None), line, what
        where = self.path or "<label map>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {what}")


class SchemaError(CocoprepError):
    """Values that do not fit the record schema (a programming or data error)."""

    def __init__(self, key: str, expected: str, found: object):
        self.key, self.expected, self.found = key, expected, found
        super().__init__(f"feature {key}: expected {expected}, found {found!r}")


class ManifestError(CocoprepError):
    """A manifest.json that is missing, malformed, or does not match the request."""

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = str(path), what
        super().__init__(f"{path}: {what}")


class StrictModeError(CocoprepError):
    """`--strict` was given and items were skipped (the report is still written)."""

    exit_code = 1

    def __init__(self, num_skipped: int, report: str | Path):
        self.num_skipped, self.report = num_skipped, str(report)
        super().__init__(
            f"--strict: {num_skipped} item(s) skipped; reasons are listed in {report}"
        )


class NothingToProve(CocoprepError):
    """Training data that cannot show whether records train (a detection split
    without objects, a classification split with one class): refused before
    training, exit 1 like a FAIL, never a PASS."""

    exit_code = 1

    def __init__(self, path: str | Path, split: str, what: str):
        self.path, self.split, self.what = str(path), split, what
        super().__init__(f"{path}: split {split!r} {what}; a smoke-train on it could "
                         "prove nothing, so none was run")


class ItemSkipped(CocoprepError):
    """One image or annotation that cannot be written; it is skipped and reported.

    `reason` is a short stable code (counted in the manifest), `detail` says what
    was found in words.
    """

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, stable_text(detail)
        super().__init__(f"{reason}: {self.detail}")


class DataLossError(CocoprepError):
    """A split was written empty or lost most of its images or objects (the output
    and its report are still written). `--allow-partial` accepts such a run."""

    exit_code = 1


# ---------------------------------------------------------------- skip reasons
# The `reason` names of skipped.jsonl, one home for all of them (stages record them,
# `losses` and the docs read them).
# images: one whole image not written
UNSAFE_PATH = "unsafe_path"
MISSING_FILE = "missing_file"
UNREADABLE_FILE = "unreadable_file"
CORRUPT_IMAGE = "corrupt_image"
DECOMPRESSION_BOMB = "decompression_bomb"
SIZE_MISMATCH = "size_mismatch"
# detection objects and images
MISSING_BBOX = "missing_bbox"
MALFORMED_BBOX = "malformed_bbox"
ZERO_AREA_BOX = "zero_area_box"
UNKNOWN_CATEGORY = "unknown_category"
CROWD_DROPPED = "crowd_dropped"        # --crowd drop (asked for: never a loss)
DIFFICULT_DROPPED = "difficult_dropped"  # --skip-difficult (asked for: never a loss)
CLASS_NOT_SELECTED = "class_not_selected"  # --classes left the class out (never a loss)
# an image file in an image folder that no annotation file or split list names: not
# part of the data set as annotated (never a loss), but never left out unseen
UNLISTED_IMAGE = "unlisted_image"
IMAGE_SKIPPED = "image_skipped"        # an annotation whose image was skipped
EMPTY_IMAGE = "empty_image"            # --skip-empty (asked for: never a loss)
NO_MASK = "no_mask"                    # --missing-masks skip-image: an object had no mask
UNKNOWN_IMAGE = "unknown_image"        # an annotation of an image the source does not list
UNMATCHED_KEYPOINTS = "unmatched_keypoints"
# Pascal VOC
MALFORMED_XML = "malformed_xml"        # the file does not parse as a VOC <annotation>
MISSING_XML = "missing_xml"            # a split list names an id without an XML file
UNNAMED_OBJECT = "unnamed_object"      # an <object> without a <name>
# YOLO
MALFORMED_LABEL_LINE = "malformed_label_line"
COORDINATES_OUT_OF_RANGE = "coordinates_out_of_range"
LABEL_WITHOUT_IMAGE = "label_without_image"
# LabelMe, CVAT, KITTI, Open Images
UNSUPPORTED_SHAPE = "unsupported_shape"    # a point, line or polyline: no box, no area
MALFORMED_SHAPE = "malformed_shape"        # a shape whose points or values do not fit it
MALFORMED_JSON = "malformed_json"          # a LabelMe file that does not parse

# segmentation masks (one whole image not written: its mask is unusable)
MISSING_MASK = "missing_mask"          # an image without its mask file
CORRUPT_MASK = "corrupt_mask"          # the mask does not decode (or is not a label mask)
MASK_SIZE_MISMATCH = "mask_size_mismatch"  # the mask's size differs from its image's
UNKNOWN_MASK_VALUE = "unknown_mask_value"  # an id (or colour) not in the label map, not void


def image_skipped_detail(cause: str) -> str:
    """The detail of an `image_skipped` annotation: it names its image's reason."""
    return f"its image was skipped ({cause})"


def image_skipped_cause(detail: str) -> str | None:
    """The image's reason in an `image_skipped_detail` (None if it names none)."""
    head = "its image was skipped ("
    return detail[len(head):-1] if detail.startswith(head) and detail.endswith(")") else None


# Skips that never count as losses: asked for by the user, or outside the annotated set.
DELIBERATE = frozenset({CROWD_DROPPED, DIFFICULT_DROPPED, CLASS_NOT_SELECTED, EMPTY_IMAGE,
                        UNLISTED_IMAGE})
_OUT_OF_SPACE = {
    errno.ENOSPC: "no space left on the device holding OUT",
    errno.EDQUOT: "disk quota exceeded on the device holding OUT",
    errno.EFBIG: "a file grew past the size limit of the device holding OUT or of "
                 "`ulimit -f`",
}


class OutputWriteError(CocoprepError):
    """Writing the output failed: a full disk, a quota, a file-size limit, or another
    OS error. The run stops; nothing in OUT was replaced."""

    exit_code = 1

    def __init__(self, what: str, error: OSError):
        self.what, self.errno = what, error.errno
        self.detail = error.strerror or str(error)
        if error.errno in _OUT_OF_SPACE:
            msg = f"{_OUT_OF_SPACE[error.errno]} (while writing {what})"
        else:
            msg = f"cannot write {what}: {self.detail}"
        super().__init__(msg)

    @property
    def out_of_space(self) -> bool:
        return self.errno in _OUT_OF_SPACE
