"""The model artifact's MLflow face: the pyfunc, how it is packaged, how it is read back.

A model is logged as MLflow "models from code": MLflow stores the short script
`pyfunc_entry.py` (which builds a `LeadScorerModel`), the `features` package it needs
(`code_paths`), the pinned requirements of that code, and the scorer's state as plain
files (booster text, JSON, YAML). Nothing is pickled, so the registered model stands on
its own: `mlflow models serve -m models:/lead-scorer@champion` builds its environment
from the requirements and finds the code in the model folder.

`load_scorer` is how the CLI, serving and training read a registered model back. It
resolves an alias to one version first (so the version reported is the version loaded),
downloads that version's folder, refuses a folder that holds a pickle, and reads the
plain files with the installed code: loading a model never runs code from the artifact
store.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException

from features.model.scorer import LeadScorer
from features.table.cells import model_inputs

#: the script MLflow runs to build the pyfunc (models from code)
ENTRY_SCRIPT = Path(__file__).with_name("pyfunc_entry.py")
#: the code shipped with every model: the whole `features` package
FEATURES_PACKAGE = Path(__file__).resolve().parents[1]
SCORER_ARTIFACT = "scorer"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: file names and first bytes that mark a pickle (protocol 2-5 start with 0x80, version)
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill"})
_PICKLE_MAGIC = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


class ModelLoadError(RuntimeError):
    """The model cannot be loaded as asked; the message says which and why, in plain words."""


class LeadScorerModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The MLflow pyfunc: a feature table (or a lead table's rows) in, calibrated probability out.

    It holds only code; the state is the artifact folder ``scorer`` (booster text, JSON,
    rules YAML), read in `load_context`.
    """

    scorer: LeadScorer

    def load_context(self, context: Any) -> None:
        self.scorer = LeadScorer.load(context.artifacts[SCORER_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        scorer = self.scorer
        if scorer.kind == "table":  # raw table rows: placeholders, numbers given as text
            spec = scorer.table_spec
            model_input = model_inputs(model_input, spec)
        return scorer.predict(scorer.matrix_from_frame(model_input))


# --- packaging ----------------------------------------------------------------------


def log_pyfunc(scorer_dir: Path, **kwargs: Any) -> Any:
    """Log a saved scorer folder as the run's model, from code, with its code and pins.

    ``kwargs`` go to `mlflow.pyfunc.log_model` (name, signature, input example, the
    registered model name).
    """
    return mlflow.pyfunc.log_model(
        python_model=str(ENTRY_SCRIPT),
        artifacts={SCORER_ARTIFACT: str(scorer_dir)},
        code_paths=[str(FEATURES_PACKAGE)],
        # Stated, not inferred: inference loads the model in a subprocess (seconds) and
        # misses what the shipped code imports lazily.
        pip_requirements=pip_requirements(),
        **kwargs,
    )


@lru_cache(maxsize=1)
def pip_requirements() -> list[str]:
    """Every distribution the shipped `features` code imports, pinned to what is installed.

    Read from the code itself (every import statement of every module, also those inside
    functions), so a new import cannot be forgotten in the model's environment.
    """
    names: set[str] = set()
    for path in sorted(FEATURES_PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    third_party = sorted(n for n in names if n not in sys.stdlib_module_names and n != "features")
    distributions = metadata.packages_distributions()
    pins = set()
    for name in third_party:
        dists = distributions.get(name, [])
        # (several distributions may provide one import name: mlflow, mlflow-skinny...)
        same = [d for d in dists if d.lower().replace("_", "-") == name.replace("_", "-")]
        for dist in same or dists:
            pins.add(f"{dist.lower()}=={metadata.version(dist)}")
    return sorted(pins)


# --- reading a registered model back ---------------------------------------------------


def tracking_uri() -> str:
    """MLflow tracking: $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def tracking_store_description() -> str:
    """Where models are looked up, in words a user can act on (an absolute file for SQLite)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return f"sqlite:///{path.resolve()}"
    return uri.split("@")[-1] if "@" in uri else uri  # never a password of a database URL


def sqlite_store_missing() -> Path | None:
    """The SQLite tracking file that does not exist (loading would create an empty one)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        if not path.is_file():
            return path
    return None


def resolve_uri(model_uri: str) -> dict[str, str]:
    """Name, version and alias behind a model URI, the alias read once.

    `models:/NAME@ALIAS` becomes the version the alias points to now; loading then uses
    `models:/NAME/VERSION`, so a promotion between the two reads cannot make the server
    report one version while serving another.
    """
    info = {"uri": model_uri, "name": "", "version": "", "alias": "", "load_uri": model_uri}
    if not model_uri.startswith("models:/"):
        return info
    rest = model_uri.removeprefix("models:/")
    name, _, ref = rest.partition("@") if "@" in rest else rest.partition("/")
    info["name"] = name
    if "@" in rest:
        info["alias"] = ref
        client = mlflow.MlflowClient()
        try:
            info["version"] = str(client.get_model_version_by_alias(name, ref).version)
        except MlflowException as exc:
            raise ModelLoadError(
                f"no model {name!r} with alias {ref!r} in the tracking store "
                f"{tracking_store_description()}"
            ) from exc
    else:
        info["version"] = ref
    info["load_uri"] = f"models:/{name}/{info['version']}"
    return info


def find_pickles(folder: Path) -> list[str]:
    """Files under ``folder`` that are pickles, by name or by their first bytes."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            head = handle.read(2)
        if path.suffix.lower() in PICKLE_SUFFIXES or head in _PICKLE_MAGIC:
            found.append(str(path.relative_to(folder)))
    return found


def scorer_folder(model_dir: Path) -> Path:
    """The plain-file state of a downloaded model: its pyfunc `scorer` artifact folder."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise ModelLoadError("the model folder has no MLmodel file; it is not an MLflow model")
    conf = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    artifacts = conf.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    relative = artifacts.get(SCORER_ARTIFACT, {}).get("path")
    if not relative:
        raise ModelLoadError(
            "the model has no scorer artifact; it was not logged by leadscore train"
        )
    folder = (model_dir / relative).resolve()
    if not folder.is_relative_to(model_dir.resolve()) or not folder.is_dir():
        raise ModelLoadError("the model's scorer artifact is not a folder inside the model")
    return folder


def load_scorer(model_uri: str, evidence: bool = False) -> tuple[LeadScorer, dict[str, str]]:
    """Load a registered model by URI (e.g. models:/lead-scorer@champion), or a model folder.

    Returns the scorer and what was loaded: name, version, alias (empty when not given).
    Raises `ModelLoadError` naming the tracking store when the model is not there (a
    SQLite store that does not exist is not created), and refusing a model folder that
    holds a pickle.
    """
    local = Path(model_uri)
    if local.is_dir():
        info = {"uri": model_uri, "name": "", "version": "", "alias": ""}
        return _read_folder(local, model_uri, evidence), info
    missing = sqlite_store_missing()
    if missing is not None:
        raise ModelLoadError(
            f"no MLflow tracking store at {missing}: run from the folder where you trained "
            "(it holds mlflow.db) or set MLFLOW_TRACKING_URI"
        )
    mlflow.set_tracking_uri(tracking_uri())
    info = resolve_uri(model_uri)
    with tempfile.TemporaryDirectory(prefix="leadscore-model-") as tmp, _quiet_download():
        try:
            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=info["load_uri"], dst_path=tmp
            )
        except MlflowException as exc:
            raise ModelLoadError(
                f"no model {info['load_uri']} in the tracking store {tracking_store_description()}"
            ) from exc
        scorer = _read_folder(Path(folder), model_uri, evidence)
    info.pop("load_uri")
    return scorer, info


@contextlib.contextmanager
def _quiet_download() -> Iterator[None]:
    """No progress bar on stderr for a download of a few small files (a server log line
    per file otherwise)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _read_folder(folder: Path, model_uri: str, evidence: bool = False) -> LeadScorer:
    """The scorer of a model folder, read from plain files; a pickle anywhere is refused."""
    pickles = find_pickles(folder)
    if pickles:
        raise ModelLoadError(
            f"{model_uri} holds a pickle ({', '.join(pickles[:3])}); leadscore loads only "
            "models of plain files (models from code), never a pickle. Train it again with "
            "this version of leadscore."
        )
    return LeadScorer.load(scorer_folder(folder), evidence)
