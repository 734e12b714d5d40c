"""Helpers shared by the scripts and command-line tools: json presets overridden by flags, argument checks reported
like argparse's, SIGTERM handled like Ctrl-C, loading a model's feature extractor, the default
device."""

import contextlib
import json
import logging
import math
import signal
import sys

import torch
from transformers import AutoFeatureExtractor, HfArgumentParser

from ..feature_extraction_asda import AsdaFeatureExtractor


logger = logging.getLogger(__name__)


def preset_flags(path: str) -> list[str]:
    """A json preset (`{"learning_rate": 5e-4, "bf16": true, ...}`) written as the equivalent command-line flags."""
    with open(path, encoding="utf-8") as handle:
        preset = json.load(handle)
    flags = []
    for name, value in preset.items():
        values = value if isinstance(value, list) else [value]
        flags += [f"--{name}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in values)]
    return flags


CONFIG_OVERRIDES = "--config_overrides"


def merge_config_overrides(parser: HfArgumentParser, argv: list[str]) -> list[str]:
    """`argv` with its `--config_overrides field=value,...` options merged into one, where the first stood: fields
    add up, and the later value wins for the same field."""
    overrides, others, position = {}, [], None
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == CONFIG_OVERRIDES and index + 1 < len(argv):
            value, index = argv[index + 1], index + 2
        elif argument.startswith(CONFIG_OVERRIDES + "="):
            value, index = argument.split("=", 1)[1], index + 1
        else:
            others.append(argument)
            index += 1
            continue
        for item in filter(None, value.split(",")):
            if "=" not in item:
                parser.error(f"argument {CONFIG_OVERRIDES}: expected comma-separated field=value pairs, got {item!r}")
            overrides[item.split("=", 1)[0].strip()] = item
        position = len(others) if position is None else position
    if position is None:
        return others
    return [*others[:position], CONFIG_OVERRIDES, ",".join(overrides.values()), *others[position:]]


def parse_args_with_preset(parser: HfArgumentParser, argv: list[str] | None = None):
    """Parse `[preset.json] [--flag value ...]`: the preset's values first, flags after it win (argparse keeps the
    last occurrence of an option), except `--config_overrides`, whose `field=value` lists merge (the later value
    wins for the same field): `--config_overrides attention_type=standard` keeps the preset's other overrides."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].endswith(".json"):
        argv = preset_flags(argv[0]) + argv[1:]
    return parser.parse_args_into_dataclasses(merge_config_overrides(parser, argv))


class UsageError(ValueError):
    """A command-line argument out of its range; the tools report it as argparse does (usage, message, exit 2)."""


def check_arguments(arguments, positive=(), non_negative=(), choices=None):
    """Raise a `UsageError` worded like argparse's ("argument --batch_size: must be a positive integer, got 0") for
    the first field of a dataclass of arguments outside its range; unset optional fields (`None`) pass."""
    for name in (*positive, *non_negative):
        value = getattr(arguments, name)
        if value is None:
            continue
        kind = "integer" if isinstance(value, int) else "number"
        if name in positive and not 0 < value < math.inf:
            raise UsageError(f"argument --{name}: must be a positive {kind}, got {value}")
        if name in non_negative and not 0 <= value < math.inf:
            raise UsageError(f"argument --{name}: must be a non-negative {kind}, got {value}")
    for name, allowed in (choices or {}).items():
        value = getattr(arguments, name)
        if value not in allowed:
            raise UsageError(f"argument --{name}: invalid choice: {value!r} (choose from {', '.join(allowed)})")


def parse_arguments(parser: HfArgumentParser, argv: list[str] | None = None):
    """`parser.parse_args_into_dataclasses(argv)`, with the dataclasses' own checks (`ValueError`s raised in their
    `__post_init__`) reported as usage errors: exit status 2."""
    try:
        return parser.parse_args_into_dataclasses(argv)
    except ValueError as error:
        parser.error(str(error))


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt():
    """Within the block, SIGTERM (`kill`, a job scheduler) raises `KeyboardInterrupt` as Ctrl-C does, so that
    `finally` blocks and the shutdown of data-loader workers run instead of the process vanishing and leaving its
    workers behind. Forked workers inherit the handler and stop as they do on Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_feature_extractor(
    model_name_or_path: str | None, preset: str | None = None, overrides: dict | None = None, **hub_kwargs
) -> AsdaFeatureExtractor:
    """The extractor of an official preset when one is named (AudioSet's when only `overrides` such as `max_length`
    are given), else the model's own (`preprocessor_config.json`), else the AudioSet one, with a warning: a model
    folder without its extractor may have been trained on other statistics."""
    if preset is not None or overrides:
        return AsdaFeatureExtractor.from_preset(preset or "audioset", **(overrides or {}))
    if model_name_or_path is not None:
        try:
            return AutoFeatureExtractor.from_pretrained(model_name_or_path, **hub_kwargs)
        except OSError:
            logger.warning(
                "%s has no feature extractor; using the AudioSet one (pass a preset to choose).", model_name_or_path
            )
    return AsdaFeatureExtractor()


def setup_logging(log_level: int):
    """Log to stdout at `log_level` (a Trainer's `get_process_log_level()`): the package, transformers and datasets."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    logging.getLogger("modeling_asda").setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    datasets.utils.logging.set_verbosity(log_level)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
