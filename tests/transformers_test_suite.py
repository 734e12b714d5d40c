"""Fetch transformers' own test mixins (`ModelTesterMixin`, `ConfigTester`, ...) for the installed version.

They are not in the wheel: the PyPI sdist ships them as top-level `tests/*.py`. They are downloaded once into
`.cache/transformers_tests/<version>/` (override with `ASDA_TRANSFORMERS_TESTS_CACHE`) and imported as the package
`transformers_tests`. The three sub-modules they import that the sdist lacks are replaced by minimal stand-ins:
the export and generation mixins (ASDA neither exports through that harness nor generates) and the common config
kwargs.
"""

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers


REPO_ROOT = Path(__file__).resolve().parents[1]
STAND_INS = {
    "exporters/__init__.py": "",
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/__init__.py": "",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    "utils/__init__.py": "",
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "dtype": "float16",\n'
        '    "chunk_size_feed_forward": 5,\n'
        '    "architectures": ["AsdaModel"],\n'
        '    "id2label": {0: "label"},\n'
        '    "label2id": {"label": "0"},\n'
        '    "problem_type": "regression",\n'
        "}\n"
    ),
}


def ensure_transformers_tests() -> Path:
    """Return the folder to put on `sys.path` so that `import transformers_tests` works, downloading if needed."""
    version = transformers.__version__
    default_cache = REPO_ROOT / ".cache" / "transformers_tests"
    root = Path(os.environ.get("ASDA_TRANSFORMERS_TESTS_CACHE", default_cache)) / version
    package = root / "transformers_tests"
    if (package / "test_modeling_common.py").exists():
        return root
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"transformers=={version}", "--dest", download_dir],
            check=True,
        )
        (sdist,) = Path(download_dir).glob("transformers-*.tar.gz")
        staging = root.with_name(root.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py"):
                    member.name = parts[2]
                    archive.extract(member, staging / "transformers_tests", filter="data")
    (staging / "transformers_tests" / "__init__.py").write_text("")
    for relative_path, text in STAND_INS.items():
        path = staging / "transformers_tests" / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    staging.rename(root)
    return root
