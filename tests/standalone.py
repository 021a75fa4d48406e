"""Load a registered model where the repository is not: the artifact must stand on its own.

`score_standalone` downloads a model version's folder and scores its input example in a
fresh interpreter whose `sys.path` holds no path to this repository (the editable
install's import hook is removed too), so the `features` code can only come from the
model folder. MLflow's own loader runs there, exactly as `mlflow models serve` would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, sys
repo, folder = sys.argv[1], sys.argv[2]
# no trace of the repository: not on sys.path, not through the editable install's hooks
sys.path[:] = [p for p in sys.path if p and p.rstrip("/") != repo]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "")]
sys.path_importer_cache.clear()
try:
    import features
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"the repository leaked into the interpreter: {features.__path__}")
import mlflow.pyfunc
import pandas as pd
model = mlflow.pyfunc.load_model(folder)
example = json.load(open(folder + "/input_example.json"))
frame = pd.DataFrame(example["data"], columns=example["columns"])
import features.model.pyfunc as shipped
print(json.dumps({"p": [float(v) for v in model.predict(frame)], "code": shipped.__file__}))
"""


def score_standalone(model_uri: str, dst: Path) -> tuple[list[float], str]:
    """(probabilities of the input example, where `features` was imported from)."""
    folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(REPO), folder],
        capture_output=True,
        text=True,
        cwd=dst,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["p"], answer["code"]
