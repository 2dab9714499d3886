"""Experiment files: a TOML schema, validated before any computation."""

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class _Section(BaseModel):
    # strict: TOML values are typed, so a string or a float where an int or a bool belongs is an
    # error, not a silent conversion ("8" -> 8, "yes" -> True); ints are still accepted as floats.
    model_config = ConfigDict(extra="forbid", strict=True)


class ModelConfig(_Section):
    """``[model]``: the student energy, initialised with weight std ``scale``."""

    type: Literal["rbm", "ising", "higher_order_ising", "mlp", "walsh"] = "rbm"
    n: Annotated[int, Field(ge=1, le=30)]
    n_hidden: PositiveInt = 16
    hidden: Literal["spin", "bernoulli"] = "spin"
    max_order: PositiveInt = 2
    widths: list[PositiveInt] = [32, 32]
    activation: Literal["tanh", "relu", "gelu", "silu", "softplus", "sigmoid"] = "tanh"
    scale: PositiveFloat = 0.01
    bias_scale: Annotated[float, Field(ge=0)] = 0.0


class TargetConfig(_Section):
    """``[target]``: a synthetic teacher, or samples from a file."""

    type: Literal["random_ising", "ising_chain", "ising_grid", "edwards_anderson", "sparse_parity", "samples"]
    seed: int = 0
    stds: dict[str, PositiveFloat] = {"1": 0.2, "2": 0.1, "3": 0.06}  # order -> std (random_ising)
    density: Annotated[float, Field(gt=0, le=1)] = 1.0
    beta: float = 0.5
    rows: PositiveInt = 2
    cols: PositiveInt = 4
    sites: list[Annotated[int, Field(ge=0)]] = [0, 1, 2]
    path: str | None = None
    encoding: Literal["auto", "01", "pm1"] = "auto"
    pseudocount: Annotated[float, Field(ge=0)] = 0.5

    @pydantic.field_validator("stds")
    @classmethod
    def _orders(cls, stds):
        for key in stds:
            if not key.isdigit() or int(key) < 1:
                raise ValueError(f"stds keys are orders 1, 2, 3, ... as strings; got {key!r}")
        return stds


class DynamicsConfig(_Section):
    """``[dynamics]``: the exact flow, or discrete training with an optax optimiser."""

    method: Literal["flow", "train"] = "flow"
    t1: PositiveFloat = 1e4
    num_saves: PositiveInt = 61
    rtol: PositiveFloat = 1e-6
    atol: PositiveFloat = 1e-9
    steady_tol: PositiveFloat | None = None
    penalty: Annotated[float, Field(ge=0)] = 0.0
    max_steps: PositiveInt = 100_000
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    learning_rate: PositiveFloat = 0.05
    steps: PositiveInt = 10_000


class BatchConfig(_Section):
    """``[batch]``: initialisations ``seed, seed+1, ...``; optional per-member init scales."""

    members: PositiveInt = 1
    scales: list[PositiveFloat] | None = None
    group: PositiveInt = 16  # members per compiled call: results are written after each group


class AnalysisConfig(_Section):
    """``[analysis]``: what to compute at the end of each trajectory."""

    stability: bool = True
    refine: bool = True  # refine each endpoint with fixed_point before the stability analysis
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.1
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
        if target.type == "sparse_parity" and any(i >= n for i in target.sites):
            raise ValueError(f"target.sites must be below model.n = {n}; got {target.sites}")
        if target.type == "random_ising" and any(int(k) > n for k in target.stds):  # only it reads stds
            raise ValueError(f"target.stds orders must be at most model.n = {n}; got {sorted(target.stds)}")
        if self.model.type == "walsh" and n > 14:
            raise ValueError(f"model.type = 'walsh' has 2**n - 1 parameters; n = {n} is too large (at most 14)")
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
