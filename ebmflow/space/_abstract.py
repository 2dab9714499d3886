"""The abstract state space: enumeration, the chunk plan of exact sums, and the basis of the effective model.

A space of ``n`` sites with ``q`` values each has ``q**n`` states, indexed by
``b = Σ_i v_i q**i`` (site 0 is the least significant digit; THEORY §1, §9).

**Chunk plan.** Exact sums stream over chunks: the index splits into high and low
digits, ``b = hi * q**n_lo + lo``, i.e. a state is ``(lo-digit sites 0..n_lo-1,
high-digit sites n_lo..n-1)``. One chunk is one value of ``hi`` with all ``q**n_lo``
values of ``lo``. Energies compute what depends on the low digits once per sum and
finish each chunk from it and one high-digit state (THEORY §8). Chunks are
independent: the chunk axis is the one to shard over devices.

**Effective model.** The space owns a basis of functions of the state,
``φ_k(v) = Π_i u[v_i, k_i]`` for ``k ∈ {0..q-1}^n`` (indexed like states), with a
``q × q`` matrix ``u`` whose column 0 is all ones and whose columns are orthogonal
with squared norm ``q``; the ``φ_k`` are then orthonormal for the uniform measure.
The order of ``φ_k`` is the number of nonzero digits of ``k``. Any ``F = -E`` or
``ln p`` expands as ``F = Σ_k J_k φ_k`` with couplings ``J = q**-n transform(F)``;
moments are ``m = transform(p)``, with ``transform = (uᵀ)^{⊗n}`` (`per_axis`).
For spins ``u`` is the 2 × 2 Hadamard matrix and this is the Walsh expansion.
"""

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._budget import check_memory
from ._transform import per_axis

DEFAULT_CHUNK_SIZE = 2**10
MAX_STATES = 2**48  # enumeration limit: index arithmetic stays exact in int64 far beyond any size that fits in memory


class AbstractStateSpace(eqx.Module):
    """``n`` sites with ``q`` values each (see the module docstring for the conventions).

    Final subclasses fix the local size ``q``, how a state is represented for the
    energies (`states_from_indices`) and the basis matrix `basis`. Everything else —
    sizes, the chunk plan, order bookkeeping, the transform — is defined here once.
    A space holds only static ints: it is part of a model's or a target's structure,
    and a different ``chunk_size`` compiles a different program.
    """

    n: eqx.AbstractVar[int]
    q: eqx.AbstractVar[int]  #: values per site
    chunk_size: eqx.AbstractVar[int]
    mesh: eqx.AbstractVar[jax.sharding.Mesh | None]  #: devices the chunks are split over (None: one device)

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """A short name for messages: ``"8"`` for 8 spins, ``"Potts(5, q=3)"``."""

    @property
    @abc.abstractmethod
    def basis(self) -> np.ndarray:
        """The ``q × q`` matrix ``u`` of the basis functions ``φ_k(v) = Π_i u[v_i, k_i]``."""

    @abc.abstractmethod
    def states_from_indices(self, index: Int[Array, "*batch"], dtype=None) -> Array:
        """The states with the given indices, ``(*batch, n)``, in the form the energies see."""

    @abc.abstractmethod
    def state_index(self, states) -> Int[Array, "*batch"]:
        """Inverse of `states_from_indices`."""

    @abc.abstractmethod
    def state_dtype(self, dtype):
        """The dtype of the states energies see, for a model computing in ``dtype``."""

    @abc.abstractmethod
    def to_digits(self, states) -> Int[Array, "*batch n"]:
        """The values ``v_i ∈ {0..q-1}`` of states given in the form the energies see."""

    @property
    @abc.abstractmethod
    def site_width(self) -> int:
        """Numbers per site in `encode`: 1 for spins, ``q`` for one-hot colours."""

    @abc.abstractmethod
    def encode(self, states: Array, dtype=None) -> Float[Array, "*batch n*site_width"]:
        """States as real vectors for dense layers: spins as they are, colours one-hot (site-major)."""

    # ------------------------------------------------------------------ sizes and enumeration

    @property
    def size(self) -> int:
        """The number of states ``q**n``."""
        return self.q**self.n

    @property
    def index_dtype(self):
        """int32 where every index fits, else int64 (which needs JAX's float64/int64 mode).

        Spaces of any size exist (an RBM at n = 1000 has large-N couplings); enumerating one
        beyond ``2**48`` states is refused here.
        """
        if self.size > MAX_STATES:
            raise ValueError(f"{self!r} has {self.q}**{self.n} states, beyond exact enumeration (ebmflow "
                             "enumerates at most 2**48 states; large-N couplings need none: ebmflow.rbm_couplings)")
        if self.size <= 2**31 - 1:
            return jnp.int32
        if not jax.config.read("jax_enable_x64"):
            raise ValueError(
                f"{self} has {self.size} states, beyond int32 indices; enable JAX's 64-bit mode "
                "(do not set EBMFLOW_X64=0)"
            )
        return jnp.int64

    def digits(self, index: Int[Array, "*batch"], n: int | None = None) -> Int[Array, "*batch n"]:
        """The base-``q`` digits ``v_i`` of ``index``, site 0 first (``n`` digits, default all)."""
        index = jnp.asarray(index)
        n = self.n if n is None else n
        powers = jnp.asarray([self.q**i for i in range(n)], index.dtype)
        return (index[..., None] // powers) % self.q

    def all_states(self, dtype=None) -> Array:
        """All ``q**n`` states, ``(q**n, n)``, in index order (materialised: exact sums never need it)."""
        index_dtype = self.index_dtype  # refuses spaces beyond enumeration first
        rep = jnp.zeros((), jnp.result_type(float) if dtype is None else dtype)
        check_memory(f"all_states({self.label})", self.size * self.n * max(rep.dtype.itemsize, 4))
        return self.states_from_indices(jnp.arange(self.size, dtype=index_dtype), dtype)

    # ------------------------------------------------------------------ chunk plan

    @property
    def n_lo(self) -> int:
        """Digits enumerated in full inside every chunk: the largest ``k <= n`` with ``q**k <= chunk_size``."""
        k = 0
        while k < self.n and self.q ** (k + 1) <= self.chunk_size:
            k += 1
        return k

    @property
    def n_hi(self) -> int:
        """Digits that vary from chunk to chunk."""
        return self.n - self.n_lo

    @property
    def n_chunks(self) -> int:
        return self.q ** (self.n - self.n_lo)

    @property
    def chunk_states(self) -> int:
        return self.q**self.n_lo

    def lo_states(self, dtype=None) -> Array:
        """The ``q**n_lo`` low-digit states ``(q**n_lo, n_lo)`` (sites ``0..n_lo-1``), index order."""
        return self.states_from_indices(jnp.arange(self.chunk_states, dtype=self.index_dtype), dtype)[:, : self.n_lo]

    def hi_state(self, chunk: Int[Array, ""], dtype=None) -> Array:
        """Sites ``n_lo..n-1`` of the states in chunk ``chunk``, ``(n - n_lo,)``."""
        return self.states_from_indices(jnp.asarray(chunk) * self.chunk_states, dtype)[self.n_lo :]

    @property
    def devices(self) -> int:
        """The number of devices the state sums are split over."""
        return 1 if self.mesh is None else self.mesh.size

    def with_chunk_size(self, chunk_size: int) -> "AbstractStateSpace":
        """The same space with another chunk plan."""
        return dataclasses.replace(self, chunk_size=check_chunk_size(chunk_size))  # fields are __init__'s arguments

    def with_mesh(self, mesh) -> "AbstractStateSpace":
        """The same space with its chunks split over the devices of ``mesh`` (None: one device)."""
        return dataclasses.replace(self, mesh=check_mesh(mesh))

    # ------------------------------------------------------------------ effective-model basis

    def check_length(self, x, what: str = "x"):
        """``x`` unchanged if its last axis has one entry per state (``q**n``), else a ValueError naming ``what``."""
        if np.ndim(x) == 0 or np.shape(x)[-1] != self.size:
            raise ValueError(f"{what} over {self} must have a last axis of length {self.size}; got shape "
                             f"{np.shape(x)}")
        return x

    def transform(self, x: Float[Array, "... q**n"]) -> Float[Array, "... q**n"]:
        """``(uᵀ)^{⊗n} x`` along the last axis: ``out[k] = Σ_v φ_k(v) x[v]``."""
        return per_axis(self.check_length(x), self.basis.T, self.q)

    def values(self, couplings: Float[Array, "... q**n"]) -> Float[Array, "... q**n"]:
        """The function with these couplings at every state: ``F(v) = Σ_k J_k φ_k(v) = u^{⊗n} J``."""
        return per_axis(self.check_length(couplings, "couplings"), self.basis, self.q)

    def basis_functions(self, states: Array, dtype=None) -> Float[Array, "*batch q**n"]:
        """``φ_k(v)`` for every basis index ``k`` (index order) at each state: Kronecker products of ``u[v_i]``."""
        rows = jnp.asarray(self.basis, dtype or jnp.result_type(float))[self.to_digits(states)]  # (*batch, n, q)
        phi = jnp.ones((*rows.shape[:-2], 1), rows.dtype)
        for i in range(rows.shape[-2]):  # site i is the digit of weight q**i: it goes outermost
            phi = (rows[..., i, :, None] * phi[..., None, :]).reshape(*rows.shape[:-2], -1)
        return phi

    def orders(self) -> np.ndarray:
        """The order (number of nonzero digits) of every basis index, ``(q**n,)`` NumPy uint8 (static).

        Built by blocks (indices with top digit ``i`` nonzero have one more), in O(q**n) memory.
        """
        counts = np.zeros(self.size, np.uint8)
        for i in range(self.n):
            block = self.q**i
            for d in range(1, self.q):
                counts[d * block : (d + 1) * block] = counts[:block] + 1
        return counts

    def order_norms(self, couplings: Float[Array, "... q**n"]) -> Float[Array, "... n+1"]:
        """Euclidean norm of the coefficients of each order ``k = 0..n``: ``||J_k||`` (basis-independent)."""
        squares = jnp.moveaxis(jnp.asarray(couplings) ** 2, -1, 0)
        norms = jax.ops.segment_sum(squares, jnp.asarray(self.orders()), self.n + 1)
        return jnp.sqrt(jnp.moveaxis(norms, 0, -1))


def check_sites(n, what: str = "the number of sites n") -> int:
    """A positive int number of sites."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive int; got {n!r}")
    return int(n)


def check_mesh(mesh):
    """A one-axis `jax.sharding.Mesh` with automatic sharding (None passes)."""
    if mesh is None:
        return None
    if not isinstance(mesh, jax.sharding.Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be a jax.sharding.Mesh with one axis (the devices that share the states); got "
                         f"{mesh!r}")
    if any(t != jax.sharding.AxisType.Auto for t in mesh.axis_types):
        raise ValueError("mesh must use automatic sharding (axis_types Auto), as jax.sharding.Mesh(devices, "
                         "('states',)) makes; got axis types " + str(mesh.axis_types))
    return mesh


def default_mesh(axis: str = "states") -> jax.sharding.Mesh:
    """A one-axis mesh over every device JAX sees (across processes after `jax.distributed.initialize`)."""
    return jax.sharding.Mesh(np.asarray(jax.devices()), (axis,))


def check_chunk_size(chunk_size) -> int:
    """A positive int number of states per chunk (None: the default, 2**10)."""
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (a number of states); got {chunk_size!r}")
    return int(chunk_size)


def with_chunk_size(model_or_target, chunk_size: int):
    """``model_or_target`` (anything with a ``space`` field: a model, a target) with its space's chunk plan changed.

    Exact sums over a model's states run ``chunk_size`` states at a time (rounded down to
    a power of ``q``): memory O(chunk_size · width), and the per-chunk work that does not
    separate over the split is done once per chunk. The default, 2**10, suits CPUs.
    """
    space = getattr(model_or_target, "space", None)
    if not isinstance(space, AbstractStateSpace):
        raise TypeError(f"expected a model or target with a state space; got {type(model_or_target).__name__}")
    space = space.with_chunk_size(chunk_size)
    try:
        return eqx.tree_at(lambda m: m.space, model_or_target, space)
    except TypeError:  # `space` is a property, not a node of the tree
        raise TypeError(
            f"{type(model_or_target).__name__} derives its space from `n`; declare a field `space` "
            "(e.g. ebmflow.Spins(n)) to choose its chunk plan"
        ) from None


def sharded(model_or_target, mesh=None):
    """``model_or_target`` with its exact sums (and, for a target, its probabilities) split over ``mesh``'s devices.

    ``mesh``: a one-axis `jax.sharding.Mesh` (default: every device JAX sees, see `default_mesh`).
    Results equal the single-device ones (float64 within about 1e-13 relative); budgets count
    per device. On CPU, JAX shows one device unless told otherwise: set
    ``jax.config.update("jax_num_cpu_devices", k)`` (or ``XLA_FLAGS=--xla_force_host_platform_device_count=k``)
    before the first computation; the command line does this for you (``--devices``).
    """
    space = getattr(model_or_target, "space", None)
    if not isinstance(space, AbstractStateSpace):
        raise TypeError(f"expected a model or target with a state space; got {type(model_or_target).__name__}")
    space = space.with_mesh(default_mesh() if mesh is None else mesh)
    try:
        out = eqx.tree_at(lambda m: m.space, model_or_target, space)
    except TypeError:  # `space` is a property, not a node of the tree
        raise TypeError(
            f"{type(model_or_target).__name__} derives its space from `n`; declare a field `space` "
            "(e.g. ebmflow.Spins(n)) to shard its sums"
        ) from None
    probs = getattr(out, "probs", None)
    if probs is not None and probs.ndim == 1 and probs.shape[0] % space.devices == 0:
        placed = jax.device_put(probs, jax.sharding.NamedSharding(space.mesh, jax.sharding.PartitionSpec(
            space.mesh.axis_names[0])))
        out = eqx.tree_at(lambda t: t.probs, out, placed)
    return out
