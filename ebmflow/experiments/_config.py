"""Experiment files: a TOML schema, validated before any computation."""

import dataclasses
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ..dynamics._options import FlowOptions

# Floats in experiment files are finite: inf and NaN are refused with the key's name.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_FLOW = FlowOptions()  # the defaults of the flow's options, defined once


class _Section(BaseModel):
    # strict: TOML values are typed, so a string or a float where an int or a bool belongs is an
    # error, not a silent conversion ("8" -> 8, "yes" -> True); ints are still accepted as floats.
    model_config = ConfigDict(extra="forbid", strict=True)


SPIN_MODELS = ("rbm", "ising", "higher_order_ising", "walsh")
POTTS_MODELS = ("potts_rbm", "potts_pairwise")
SPIN_TARGETS = ("random_ising", "ising_chain", "ising_grid", "edwards_anderson", "sparse_parity")
POTTS_TARGETS = ("random_potts", "blume_capel", "alignment")


class ModelConfig(_Section):
    """``[model]``: the student energy, initialised with weight std ``scale``.

    Over spins by default; ``q`` colours per site (Potts variables) for ``potts_rbm``,
    ``potts_pairwise``, and ``mlp`` or ``coupling_model`` (every coupling free) with ``q`` set.
    """

    type: Literal["rbm", "ising", "higher_order_ising", "mlp", "walsh", "potts_rbm", "potts_pairwise",
                  "coupling_model"] = "rbm"
    n: Annotated[int, Field(ge=1, le=30)]
    q: Annotated[int, Field(ge=2, le=64)] | None = None
    n_hidden: PositiveInt = 16
    hidden: Literal["spin", "bernoulli"] = "spin"
    max_order: PositiveInt = 2
    widths: list[PositiveInt] = [32, 32]
    activation: Literal["tanh", "relu", "gelu", "silu", "softplus", "sigmoid"] = "tanh"
    scale: PositiveFloat = 0.01
    bias_scale: NonNegativeFloat = 0.0


class TargetConfig(_Section):
    """``[target]``: a synthetic teacher, samples from a file, or columns of an alignment.

    Over colours: ``random_potts`` (``stds`` per order, ``density``), ``blume_capel`` (q = 3;
    ``beta``, ``j2``, ``j3``, ``periodic``), ``alignment`` (``path`` to FASTA/A2M, ``alphabet``,
    ``columns``, reweighting ``threshold`` or ``reweight = false``, ``unknown``, ``format``) and
    ``samples`` of integer colours (``q`` of the model).
    """

    type: Literal["random_ising", "ising_chain", "ising_grid", "edwards_anderson", "sparse_parity", "samples",
                  "random_potts", "blume_capel", "alignment"]
    seed: int = 0
    stds: dict[str, PositiveFloat] = {"1": 0.2, "2": 0.1, "3": 0.06}  # order -> std (random_ising, random_potts)
    density: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    beta: Annotated[float, Field(allow_inf_nan=False)] = 0.5
    rows: PositiveInt = 2
    cols: PositiveInt = 4
    sites: list[Annotated[int, Field(ge=0)]] = [0, 1, 2]
    path: str | None = None
    encoding: Literal["auto", "01", "pm1", "colours"] = "auto"
    pseudocount: NonNegativeFloat = 0.5
    j2: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    j3: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    periodic: bool = True
    alphabet: str = "protein"
    columns: list[Annotated[int, Field(ge=0)]] | None = None
    threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    reweight: bool = True  # false: unit sequence weights (no threshold)
    unknown: Literal["error", "gap"] = "error"  # letters outside the alphabet: an error, or read as the gap
    format: Literal["auto", "fasta", "a2m"] = "auto"

    @pydantic.field_validator("stds")
    @classmethod
    def _orders(cls, stds):
        for key in stds:
            if not key.isdigit() or int(key) < 1:
                raise ValueError(f"stds keys are orders 1, 2, 3, ... as strings; got {key!r}")
        return stds


class DynamicsConfig(_Section):
    """``[dynamics]``: the exact flow (options and defaults of `FlowOptions`), or discrete training."""

    method: Literal["flow", "train"] = "flow"
    t1: PositiveFloat = 1e4
    num_saves: PositiveInt = _FLOW.num_saves
    rtol: PositiveFloat = _FLOW.rtol
    atol: PositiveFloat = _FLOW.atol
    steady_tol: PositiveFloat | None = _FLOW.steady_tol
    penalty: NonNegativeFloat = _FLOW.penalty
    max_steps: PositiveInt = _FLOW.max_steps
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    learning_rate: PositiveFloat = 0.05
    steps: PositiveInt = 10_000

    def flow_options(self, **extra) -> dict:
        """The `FlowOptions` this section sets, as keywords of `flow_batch` (plus ``extra``)."""
        names = {field.name for field in dataclasses.fields(FlowOptions)} & set(type(self).model_fields)
        return {name: getattr(self, name) for name in sorted(names)} | extra


class BatchConfig(_Section):
    """``[batch]``: initialisations ``seed, seed+1, ...``; optional per-member init scales.

    ``devices``: the members of a group are split over this many devices (``"all"``: every
    device JAX sees; on CPU the command line makes one device per core, ``--devices``).
    """

    members: PositiveInt = 1
    scales: list[PositiveFloat] | None = None
    group: PositiveInt = 16  # members per compiled call: results are written after each group
    devices: Literal["all"] | PositiveInt = "all"


class AnalysisConfig(_Section):
    """``[analysis]``: what to compute at the end of each trajectory."""

    stability: bool = True
    refine: bool = True  # refine each endpoint with fixed_point before the stability analysis
    refine_steps: PositiveInt = 1024  # Levenberg–Marquardt steps of that refinement (float32 endpoints need more)
    alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1
    kl_eps: PositiveFloat = 1e-3


class Experiment(_Section):
    """A whole experiment file."""

    name: str = "experiment"
    seed: int = 0
    dtype: Literal["float64", "float32"] = "float64"
    model: ModelConfig
    target: TargetConfig
    dynamics: DynamicsConfig = DynamicsConfig()
    batch: BatchConfig = BatchConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    @pydantic.model_validator(mode="after")
    def _consistent(self):
        n, target = self.model.n, self.target
        if target.type in ("ising_grid", "edwards_anderson") and target.rows * target.cols != n:
            raise ValueError(f"target rows × cols = {target.rows} × {target.cols} must equal model.n = {n}")
        if target.type == "samples" and target.path is None:
            raise ValueError("target.type = 'samples' needs target.path (a .npy, .csv or .txt file)")
        if target.type == "alignment" and (target.path is None or target.columns is None):
            raise ValueError("target.type = 'alignment' needs target.path (FASTA/A2M) and target.columns (model.n "
                             "columns: exact targets enumerate q**n states)")
        if target.type == "alignment" and len(target.columns) != n:
            raise ValueError(f"target.columns has {len(target.columns)} entries; model.n is {n}")
        q = self.model.q
        potts_model = self.model.type in POTTS_MODELS or q is not None
        if self.model.type in POTTS_MODELS and q is None:
            raise ValueError(f"model.type = {self.model.type!r} needs model.q, the number of colours")
        if self.model.type in SPIN_MODELS and q is not None:
            raise ValueError(f"model.type = {self.model.type!r} is over spins; remove model.q = {q}")
        if target.type in SPIN_TARGETS and potts_model:
            raise ValueError(f"target.type = {target.type!r} is over spins but the model has q = {q} colours")
        if target.type in POTTS_TARGETS and not potts_model:
            raise ValueError(f"target.type = {target.type!r} is over colours: set model.q (and a Potts model type)")
        if target.type == "blume_capel" and q != 3:
            raise ValueError(f"target.type = 'blume_capel' has q = 3 colours; model.q is {q}")
        if target.type == "sparse_parity" and any(i >= n for i in target.sites):
            raise ValueError(f"target.sites must be below model.n = {n}; got {target.sites}")
        if target.type in ("random_ising", "random_potts") and any(int(k) > n for k in target.stds):  # they read stds
            raise ValueError(f"target.stds orders must be at most model.n = {n}; got {sorted(target.stds)}")
        if self.model.type in ("walsh", "coupling_model") and (q or 2) ** n > 2**14:
            raise ValueError(f"model.type = {self.model.type!r} has q**n - 1 parameters; n = {n} is too large "
                             "(at most 2**14 states)")
        if self.batch.scales is not None and len(self.batch.scales) != self.batch.members:
            raise ValueError(
                f"batch.scales has {len(self.batch.scales)} entries; batch.members is {self.batch.members}"
            )
        return self


class ConfigError(ValueError):
    """An experiment file that cannot be run: names the key and the value."""


def _format(err: pydantic.ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(file)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {key}: {e['msg']}{shown}")
    return "invalid experiment:\n" + "\n".join(lines)


def parse_experiment(data: dict) -> Experiment:
    """Validate a dict (as read from TOML); raise `ConfigError` naming every bad key."""
    try:
        return Experiment.model_validate(data)
    except pydantic.ValidationError as err:
        raise ConfigError(_format(err)) from None


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file; relative sample paths resolve against its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read experiment file {str(path)!r}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"experiment file {str(path)!r} is not valid TOML: {err}") from None
    experiment = parse_experiment(data)
    if experiment.target.path is not None and not Path(experiment.target.path).is_absolute():
        experiment.target.path = str(path.parent / experiment.target.path)
    return experiment
