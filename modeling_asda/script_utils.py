"""Argument parsing shared by the example scripts: a json preset, then command-line flags that override it."""

import json
import sys

from transformers import HfArgumentParser


def preset_flags(path: str) -> list[str]:
    """A json preset (`{"learning_rate": 5e-4, "bf16": true, ...}`) written as the equivalent command-line flags."""
    with open(path, encoding="utf-8") as handle:
        preset = json.load(handle)
    flags = []
    for name, value in preset.items():
        values = value if isinstance(value, list) else [value]
        flags += [f"--{name}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in values)]
    return flags


def parse_args_with_preset(parser: HfArgumentParser, argv: list[str] | None = None):
    """Parse `[preset.json] [--flag value ...]`: the preset's values first, flags after it win (argparse keeps the
    last occurrence of an option)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].endswith(".json"):
        argv = preset_flags(argv[0]) + argv[1:]
    return parser.parse_args_into_dataclasses(argv)
