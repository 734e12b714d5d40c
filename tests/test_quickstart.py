"""The README's main job (`make demo` = examples/quickstart.py) and its Use snippet, on a machine without the system
audio tools: ffmpeg, sox and espeak-ng are hidden from PATH, so only what pip installs can be used."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
HIDDEN_TOOLS = {"ffmpeg", "ffprobe", "ffplay", "sox", "soxi", "play", "rec", "espeak", "espeak-ng"}


def bare_path(folder: Path) -> str:
    """A PATH of one folder that links every program on the current PATH except the system audio tools."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if entry.name not in HIDDEN_TOOLS and not link.exists():
                link.symlink_to(entry.path)
    return str(folder)


def readme_use_snippet() -> str:
    """The first python block of the README's "Use" section."""
    use_section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Use\n", 1)[1]
    return re.search(r"```python\n(.*?)```", use_section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def bare_environment(tmp_path_factory):
    path = bare_path(tmp_path_factory.mktemp("bin") / "bare")
    for tool in HIDDEN_TOOLS:
        assert shutil.which(tool, path=path) is None
    # The interpreter is called by its full path; the package comes from the checkout.
    return {**os.environ, "PATH": path, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, bare_environment):
    """The quickstart at its smallest, written where the README snippet expects it (`outputs/quickstart`)."""
    workdir = tmp_path_factory.mktemp("demo")
    command = [sys.executable, str(REPO / "examples/quickstart.py"), "--output_dir", "outputs/quickstart",
               "--pretraining_steps", "2", "--finetuning_steps", "4"]  # fmt: skip
    result = subprocess.run(command, cwd=workdir, env=bare_environment, capture_output=True, text=True, timeout=600)
    return workdir, result


def test_demo_runs_end_to_end_without_ffmpeg_sox_or_espeak(demo_run):
    workdir, result = demo_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    accuracy = re.search(r"pipeline on the 24 held-out clips: accuracy (\d\.\d\d)", result.stdout)
    assert accuracy is not None, result.stdout
    assert 0.0 <= float(accuracy.group(1)) <= 1.0
    finetuned = workdir / "outputs/quickstart/finetuned"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_asda.py"} <= {
        path.name for path in finetuned.iterdir()
    }


def test_readme_use_snippet_runs_as_written_on_the_demo_folder(demo_run, bare_environment):
    workdir, result = demo_run
    assert result.returncode == 0
    snippet = readme_use_snippet()
    assert "outputs/quickstart/finetuned" in snippet
    run = subprocess.run([sys.executable, "-c", snippet], cwd=workdir, env=bare_environment, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    # The snippet prints the pipeline's top labels, then the embedding shapes of the demo's tiny model.
    lines = run.stdout.strip().splitlines()
    labels = {row["label"] for row in eval(lines[0])}  # noqa: S307 - the pipeline's list of dicts, printed
    assert labels <= {"low", "mid", "high"} and len(labels) == 3
    folder = workdir / "outputs/quickstart/finetuned"
    hidden_size = json.loads((folder / "config.json").read_text())["hidden_size"]
    frames = json.loads((folder / "preprocessor_config.json").read_text())["max_length"]
    assert lines[1] == f"torch.Size([1, {hidden_size}])"
    assert lines[2] == f"torch.Size([1, {1 + frames // 16 * 128 // 16}, {hidden_size}])"
