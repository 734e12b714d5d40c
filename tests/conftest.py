import importlib.util
import os
import sys
from pathlib import Path

import pytest

from transformers_test_suite import ensure_transformers_tests


TESTS_DIR = Path(__file__).resolve().parent
FIXTURES = TESTS_DIR / "fixtures"
# The shared reference data sits beside the checkout (CI has it there); ASDA_SHARED_DIR overrides.
SHARED_DIR = Path(os.environ.get("ASDA_SHARED_DIR", TESTS_DIR.parents[1] / "shared"))
EXAMPLES_DIR = TESTS_DIR.parent / "examples"

sys.path.insert(0, str(ensure_transformers_tests()))


def import_example(name: str):
    """The script `examples/<name>.py` as a module, loaded from its file (the folder stays off `sys.path`) and
    registered under its name, so that a script importing a sibling loaded before it finds it."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# Markers used by transformers' test mixins.
HF_MARKERS = ("accelerate_tests", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test", "torch_compile_test",
              "torch_export_test", "generate", "is_training_test", "is_tensor_parallel_test", "kernels_test")


def pytest_configure(config):
    for marker in HF_MARKERS:
        config.addinivalue_line("markers", marker)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared`: real AudioSet clips and labels. Missing data skips locally and fails in CI."""
    if not (SHARED_DIR / "data").is_dir():
        message = f"shared reference data not found at {SHARED_DIR} (set ASDA_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DIR
