"""The streamed reduction: one pass over the states of a space, chunk by chunk.

Every exact quantity is a client of the three folds here: `reduce` (log-sum-exp
with an online maximum, expectations under ``p ∝ e^x`` rescaled as the maximum
grows, and plain sums against given weights), `sum_chunks` (plain sums) and
`map_chunks` (a full-length vector). Chunks follow the space's chunk plan; the
loop carries the chunk index, so nothing of size O(number of chunks) is built.

With a mesh on the space (`ebmflow.sharded`), the chunks are split over its devices:
each device folds a contiguous run of chunks (`jax.shard_map`; the last run may hold
padding chunks, which leave the carry unchanged), and the per-device results are
combined by collectives — ``pmax`` of the running maxima and rescaled ``psum``s for
`reduce`, ``psum`` for `sum_chunks`; `map_chunks` returns a vector sharded along states.
A numerical fix, a new exact quantity or a change of the sharding is made here once.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ..space import AbstractStateSpace

# chunk(index) -> (x, aux): the chunk's values x (chunk_states,) and whatever the terms need.
Chunk = Callable[[Array], tuple[Float[Array, " l"], Any]]


class Reduction(NamedTuple):
    """What `reduce` returns; ``p(s) = e^{x(s)} / Σ e^x`` and ``w`` are the given weights."""

    log_z: Float[Array, ""]  #: ``ln Σ_s e^{x(s)}``
    dot: Float[Array, ""]  #: ``Σ_s w(s) x(s)`` (0 without weights)
    expectation: PyTree  #: ``Σ_chunks model_term(aux, p restricted to the chunk)``
    data: PyTree  #: ``Σ_chunks data_term(aux, w restricted to the chunk)``


def _kahan_add(acc, x):
    """Compensated (Kahan) summation, ``acc = (sum, lost low-order part)``.

    A float32 running sum over thousands of chunks would lose ~1e-4 of a KL; this keeps it to a few ulp.
    """
    total, lost = acc
    y = x - lost
    new = total + y
    return new, (new - total) - y


def _chunk_weights(space: AbstractStateSpace, weights, dtype):
    """Weights ``(q**n,)`` as ``(n_chunks, chunk_states)`` in the sum's dtype, or None."""
    return None if weights is None else weights.astype(dtype).reshape(space.n_chunks, space.chunk_states)


def _zeros_of(space: AbstractStateSpace, chunk: Chunk, term, dtype) -> PyTree:
    """Zeros shaped like ``term(aux, chunk weights)``, found by tracing one chunk (nothing runs)."""
    if term is None:
        return None

    def one():
        _, aux = chunk(jnp.zeros((), space.index_dtype))
        return term(aux, jnp.zeros((space.chunk_states,), dtype))

    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(one))


def _scan(step, init, start, weights, length: int, remat: bool, valid=None):
    """``carry = step(carry, index, w_chunk)`` for ``index = start, start + 1, ...`` (``length`` chunks)."""

    def body(carry, w_chunk):
        index, inner = carry
        new = step(inner, index, w_chunk)
        if valid is not None:  # padding chunks of a sharded fold leave the carry as it was
            new = jax.tree.map(lambda a, b: jnp.where(valid(index), a, b), new, inner)
        return (index + 1, new), None

    body = jax.checkpoint(body, prevent_cse=False) if remat else body
    (_, carry), _ = jax.lax.scan(body, (start, init), weights, length=length)
    return carry


def _per_device(space: AbstractStateSpace) -> int:
    return -(-space.n_chunks // space.devices)


def _padded(space: AbstractStateSpace, weights):
    """Per-chunk weights padded to the devices' runs, or a stand-in sharded argument when there are none."""
    rows = _per_device(space) * space.devices
    if weights is None:
        return jnp.zeros((space.devices,))
    return jnp.pad(weights, ((0, rows - weights.shape[0]), (0, 0)))


def _fold(space: AbstractStateSpace, step, init, weights, remat: bool, combine):
    """``carry = step(carry, index, w_chunk)`` over every chunk; the one loop of all exact sums.

    Sharded, each device folds its run from ``init`` and ``combine(carry, axis)`` merges the runs.
    """
    index0 = jnp.zeros((), space.index_dtype)
    if space.devices > 1:
        (axis,) = space.mesh.axis_names
        per = _per_device(space)

        def local(w):
            start = jax.lax.axis_index(axis).astype(space.index_dtype) * per
            run = _scan(step, init, start, None if weights is None else w, per, remat,
                        valid=lambda index: index < space.n_chunks)
            return combine(run, axis)

        spec = jax.sharding.PartitionSpec(axis)
        # Unchecked replication: the derivatives of closed-over (replicated) parameters taken inside a run stay
        # that run's own share, and `combine` adds the shares once.
        return jax.shard_map(local, mesh=space.mesh, in_specs=spec, out_specs=jax.sharding.PartitionSpec(),
                             check_vma=False)(_padded(space, weights))
    if space.n_chunks == 1:  # no loop to carry, and cheaper higher derivatives
        return step(init, index0, None if weights is None else weights[0])
    return _scan(step, init, index0, weights, space.n_chunks, remat)


def reduce(
    space: AbstractStateSpace,
    chunk: Chunk,
    weights: Float[Array, " states"] | None = None,
    *,
    model_term: Callable[[Any, Array], PyTree] | None = None,
    data_term: Callable[[Any, Array], PyTree] | None = None,
    dtype=None,
    remat: bool = False,
) -> Reduction:
    """Log-sum-exp of the values ``x(s)`` of all states, with expectations and weighted sums, in one pass.

    ``chunk(index)`` returns the chunk's ``x`` and an ``aux`` for the terms.
    ``model_term(aux, e)`` is linear in ``e`` (the chunk's ``e^{x - running max}``): its
    sum, rescaled online as the maximum grows and divided by the total at the end, is
    ``Σ_s p(s) term(s)``. ``data_term(aux, w)`` is summed as is. The scalar sums are
    compensated (Kahan). ``remat`` recomputes each chunk in reverse-mode autodiff, so
    that differentiating the result through the loop also needs O(chunk) memory.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    w = _chunk_weights(space, weights, dtype)

    def step(carry, index, w_chunk):
        top, total, dot, model_acc, data_acc = carry
        x, aux = chunk(index)
        new_top = jnp.maximum(top, jax.lax.stop_gradient(x.max()))
        scale = jnp.exp(top - new_top)
        e = jnp.exp(x - new_top)
        total = _kahan_add((total[0] * scale, total[1] * scale), e.sum())
        if model_term is not None:
            model_acc = jax.tree.map(lambda a, t: a * scale + t, model_acc, model_term(aux, e))
        if w_chunk is not None:
            dot = _kahan_add(dot, w_chunk @ x)
            if data_term is not None:
                data_acc = jax.tree.map(jnp.add, data_acc, data_term(aux, w_chunk))
        return new_top, total, dot, model_acc, data_acc

    def combine(carry, axis):  # merge the devices' runs: one maximum, sums rescaled to it
        top, total, dot, model_acc, data_acc = carry
        new_top = jax.lax.pmax(top, axis)
        scale = jnp.exp(top - new_top)
        exact = lambda acc: acc[0] - acc[1]  # noqa: E731  (the Kahan sum, its lost part restored)
        total = (jax.lax.psum(exact(total) * scale, axis), zero)
        dot = (jax.lax.psum(exact(dot), axis), zero)
        model_acc = jax.lax.psum(jax.tree.map(lambda a: a * scale, model_acc), axis)
        return new_top, total, dot, model_acc, jax.lax.psum(data_acc, axis)

    zero = jnp.zeros((), dtype)
    init = (jnp.array(-jnp.inf, dtype), (zero, zero), (zero, zero), _zeros_of(space, chunk, model_term, dtype),
            None if w is None else _zeros_of(space, chunk, data_term, dtype))
    top, total, dot, model_acc, data_acc = _fold(space, step, init, w, remat, combine)
    expectation = None if model_acc is None else jax.tree.map(lambda a: a / total[0], model_acc)
    return Reduction(top + jnp.log(total[0]), dot[0], expectation, data_acc)


def sum_chunks(
    space: AbstractStateSpace, term: Callable[[Array, Array | None], PyTree], weights=None, *, dtype=None
) -> PyTree:
    """``Σ_chunks term(index, w_chunk)``: a plain sum of per-chunk pytrees (e.g. second moments)."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    w = _chunk_weights(space, weights, dtype)
    lane = None if w is None else jnp.zeros((space.chunk_states,), dtype)
    shapes = jax.eval_shape(lambda: term(jnp.zeros((), space.index_dtype), lane))
    init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return _fold(space, lambda acc, index, w_chunk: jax.tree.map(jnp.add, acc, term(index, w_chunk)), init, w, False,
                 lambda acc, axis: jax.lax.psum(acc, axis))


def map_chunks(space: AbstractStateSpace, chunk: Callable[[Array], Array]) -> Array:
    """``chunk(index)`` for every chunk, concatenated in index order: a full-length vector ``(q**n, ...)``.

    Sharded, each device maps its run of chunks and the vector comes back sharded along states.
    """
    if space.devices == 1 and space.n_chunks == 1:
        return chunk(jnp.zeros((), space.index_dtype))

    def run(start, length):
        _, out = jax.lax.scan(lambda index, _: (index + 1, chunk(index)), start, None, length=length)
        return out

    if space.devices > 1:
        (axis,) = space.mesh.axis_names
        per = _per_device(space)
        spec = jax.sharding.PartitionSpec(axis)
        out = jax.shard_map(
            lambda _: run(jax.lax.axis_index(axis).astype(space.index_dtype) * per, per),
            mesh=space.mesh, in_specs=spec, out_specs=spec, check_vma=False,
        )(_padded(space, None))[: space.n_chunks]
    else:
        out = run(jnp.zeros((), space.index_dtype), space.n_chunks)
    return out.reshape(space.size, *out.shape[2:])
