"""`--ratio`: one rule for convert and split."""

from fractions import Fraction

import pytest
from click.testing import CliRunner

from cocoprep.cli import cli
from cocoprep.errors import UsageError
from cocoprep.ratio import parse_ratio
from cocoprep.sources import folder


def test_no_ratio_gives_the_default():
    assert parse_ratio(None) is None
    assert parse_ratio(None, default=folder.DEFAULT_RATIO) == folder.DEFAULT_RATIO


@pytest.mark.parametrize("text, expected", [
    (None, (Fraction(4, 5), Fraction(1, 5))),
    ("0.8,0.2", (Fraction(4, 5), Fraction(1, 5))),
    ("0.8, 0.1, 0.1", (Fraction(8, 10), Fraction(1, 10), Fraction(1, 10))),
    ((0.7, 0.3), (Fraction(7, 10), Fraction(3, 10))),
])
def test_parse_ratio_good(text, expected):
    assert parse_ratio(text, default=folder.DEFAULT_RATIO) == expected


def test_parse_ratio_scales_tiny_rounding_to_exactly_one():
    r = parse_ratio("0.3333333,0.3333333,0.3333334")
    assert sum(r) == 1


@pytest.mark.parametrize("text, words", [
    ("0.5,0.6", "sum to 1"),
    ("0.5,0.4", "sum to 1"),
    ("1.2,-0.2", "greater than 0 and less than 1"),
    ("1,0", "greater than 0 and less than 1"),
    ("0.8", "2 or 3"),
    ("0.4,0.3,0.2,0.1", "2 or 3"),
    ("a,b", "numbers"),
])
def test_parse_ratio_bad(text, words):
    with pytest.raises(UsageError, match="--ratio") as e:
        parse_ratio(text)
    assert words in str(e.value) and text in str(e.value)


@pytest.mark.parametrize("command", ["convert", "split"])
def test_convert_and_split_refuse_a_bad_ratio_alike(tmp_path, command):
    (tmp_path / "src").mkdir()
    result = CliRunner().invoke(cli, [command, str(tmp_path / "src"), "-o", str(tmp_path / "o"),
                                      "--ratio", "0.5,0.6", "-q"])
    assert result.exit_code == 2
    assert "Error: --ratio: expected fractions that sum to 1 (these sum to 1.1), found " \
           "'0.5,0.6'" in result.output
