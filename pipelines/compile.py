"""Compile every pipeline to kfp IR YAML (`pipelines/compiled/` by default).

    python -m pipelines.compile [OUT_DIR]

The committed files are checked by a test that recompiles and compares, so they
never drift from the code. Compile with MLPATTERNS_TRAINING_IMAGE unset to get the
committed files; set it to target your own training image.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler

from pipelines.batch_training import batch_training
from pipelines.parameter_search import parameter_search
from pipelines.training_to_serving import training_to_serving

PIPELINES: dict[str, Callable[..., Any]] = {
    "batch_training": batch_training,
    "parameter_search": parameter_search,
    "training_to_serving": training_to_serving,
}
COMPILED = Path(__file__).parent / "compiled"


def compile_all(out_dir: Path = COMPILED) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in PIPELINES.items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in compile_all(Path(sys.argv[1]) if len(sys.argv) > 1 else COMPILED):
        print(path)
