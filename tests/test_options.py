"""Each command's typed options (paploss.study.options, paploss.reproduce.options) against its
argparse parser: the same names, the same defaults, and a parsed command line in its fields."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from paploss.reproduce.command import parse as parse_reproduce
from paploss.reproduce.command import parser as reproduce_parser
from paploss.reproduce.options import ReproduceOptions
from paploss.study import parsers
from paploss.study.options import SearchOptions, SplitOptions, TrainOptions, from_namespace

PARSERS = [
    (SearchOptions, parsers.search_parser),
    (TrainOptions, parsers.train_parser),
    (SplitOptions, parsers.split_parser),
    (ReproduceOptions, reproduce_parser),
]


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest != "help"}


@pytest.mark.parametrize(("cls", "make_parser"), PARSERS)
def test_fields_are_the_parsers_options(cls: type, make_parser) -> None:
    assert {f.name for f in dataclasses.fields(cls)} == _dests(make_parser())


@pytest.mark.parametrize(("cls", "make_parser"), PARSERS)
def test_field_defaults_are_the_parsers_defaults(cls: type, make_parser) -> None:
    parser = make_parser()
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue  # a required option (positional) has no default
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert default == parser.get_default(f.name), f.name


def test_parsed_command_lines_fill_the_fields() -> None:
    options = parsers.parse_search(["--rounds", "3", "--data", "a.json", "img", "--no-early-stop"])
    assert options == SearchOptions(rounds=3, data=["a.json", "img"], no_early_stop=True)
    assert parsers.parse_search([]) == SearchOptions()
    train = parsers.parse_train(["--preset", "paper-retinanet", "--seed", "2"])
    assert train == TrainOptions(preset=["paper-retinanet"], seed=2)
    split = parsers.parse_split(["x.json", "--out-dir", "out", "--seed", "4"])
    assert split == SplitOptions(ann_file=Path("x.json"), out_dir=Path("out"), seed=4)
    repro = parse_reproduce(["tab2", "--budget", "quick", "--workers", "2"])
    assert repro == ReproduceOptions(experiments=["tab2"], budget="quick", workers=2)


def test_options_are_frozen() -> None:
    options = parsers.parse_search([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.rounds = 3  # type: ignore[misc]


def test_a_namespace_that_differs_from_the_fields_is_refused() -> None:
    namespace = parsers.split_parser().parse_args(["x.json", "--out-dir", "out"])
    with pytest.raises(TypeError, match="no fields"):
        from_namespace(SplitOptions, argparse.Namespace(**vars(namespace), extra=1))
    del namespace.force
    with pytest.raises(TypeError, match=r"\['force'\] no options"):
        from_namespace(SplitOptions, namespace)
