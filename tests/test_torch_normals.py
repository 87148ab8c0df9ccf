"""The compiled copy of torch.randn's float32 stream (``rng.torch_float32_normals``, issue 13):
the same bits as ``torch.randn`` for every seed and size the chain draws, its Box-Muller step
the same as torch's on chosen uniforms (every one of the 2^24 values of each uniform in the
slow test), and ``torch.randn`` itself wherever the copy is off or differs."""

from __future__ import annotations

import ctypes
import warnings

import numpy as np
import pytest
import torch

import deeplimit as dl
from deeplimit import devices, rng
from stretch_reference import stretch_bounds, stretch_steps

FILL = rng.torch_float32_normals()
pytestmark = pytest.mark.skipif(FILL is None, reason="the compiled copy does not run here")
KERNELS = rng._NORMALS.kernels()
UPDATE = rng.torch_float32_update()


def _torch_randn(seed: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, generator=generator, dtype=torch.float32)


def _copy(seed: int, size: int, narrow: int | None = None) -> torch.Tensor:
    """The copy's numbers: through the checked ``fill``, or the kernel at 8 lanes (narrow 1)
    or at the CPU's widest (0)."""
    out = torch.empty(size, dtype=torch.float32)
    if narrow is None:
        FILL(seed, out.data_ptr(), size)
    else:
        assert KERNELS["fill"](seed % 2**64, out.data_ptr(), size, narrow) == 0
    return out


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.view(torch.int32)


@pytest.mark.parametrize("seed", [0, 3, 2**31, 2**32 - 1, 2**32, 987654321987, 2**63 - 1])
def test_the_copy_draws_torch_randn_bit_for_bit(seed):
    # sizes across the twists (624 outputs each) and the tail of fewer than 16 numbers that
    # torch draws again, up to the chain's blocks (2^17 numbers)
    for size in (16, 17, 30, 32, 47, 608, 623, 624, 625, 640, 1248, 1263, 1264, 5000, 2**17 + 9):
        expected = _bits(_torch_randn(seed, size))
        for narrow in (None, 0, 1):  # 16 lanes where the CPU has AVX-512, and 8
            assert torch.equal(_bits(_copy(seed, size, narrow)), expected), (size, narrow)
    # the twister's seed is the low 32 bits of the seed (as torch's)
    assert torch.equal(_copy(seed, 100), _copy(seed & 0xFFFFFFFF, 100))


def test_the_copy_takes_the_seeds_torch_takes_and_refuses_what_it_cannot_draw():
    out = torch.zeros(15, dtype=torch.float32)
    assert KERNELS["fill"](1, out.data_ptr(), 15, 0) == -1  # torch draws these another way
    assert torch.equal(out, torch.zeros(15))
    with pytest.raises(ValueError, match="size must be at least 16"):
        FILL(1, out.data_ptr(), 15)
    for seed in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[-2\^63, 2\^64\)"):
            FILL(seed, out.data_ptr(), 16)
    for seed in (-1, -(2**63), 2**64 - 1):  # as torch.Generator.manual_seed takes them
        assert torch.equal(_bits(_copy(seed, 100)), _bits(_torch_randn(seed, 100)))


def _untemper(outputs: np.ndarray) -> np.ndarray:
    """The twister state words whose tempered outputs are ``outputs`` (uint32)."""
    y = outputs.astype(np.uint64)
    mask32 = np.uint64(0xFFFFFFFF)
    y ^= y >> np.uint64(18)
    y ^= (y << np.uint64(15)) & np.uint64(0xEFC60000)
    x = y.copy()
    for _ in range(5):
        x = y ^ ((x << np.uint64(7)) & np.uint64(0x9D2C5680))
    y = x & mask32
    x = y.copy()
    for _ in range(3):
        x = y ^ (x >> np.uint64(11))
    return x & mask32


def _temper(words: np.ndarray) -> np.ndarray:
    y = words.astype(np.uint64)
    y ^= y >> np.uint64(11)
    y ^= (y << np.uint64(7)) & np.uint64(0x9D2C5680)
    y ^= (y << np.uint64(15)) & np.uint64(0xEFC60000)
    y ^= y >> np.uint64(18)
    return y & np.uint64(0xFFFFFFFF)


PER_DRAW = 608  # uniforms that one crafted state gives without a twist (38 groups of 16)


def _torch_box_muller(integers: np.ndarray) -> np.ndarray:
    """torch.randn's float32 numbers from the 24-bit uniforms ``integers`` (k 2^-24, in the
    order torch draws them; a multiple of 608): the generator's state set so that its next
    outputs are these."""
    generator = torch.Generator()
    template = generator.get_state().numpy().copy()
    header = template[:24].view(np.int32).copy()
    out = np.empty(len(integers), dtype=np.float32)
    for start in range(0, len(integers), PER_DRAW):
        words = np.zeros(624, dtype=np.uint64)
        words[:PER_DRAW] = _untemper(integers[start : start + PER_DRAW].astype(np.uint64))
        state = template.copy()
        header[2] = 624  # left: no twist for the next 623 outputs
        header[3] = 1  # seeded
        header[4:6] = 0  # next
        state[:24] = header.view(np.uint8)
        state[24 : 24 + 624 * 8] = words.view(np.uint8)
        generator.set_state(torch.from_numpy(state))
        out[start : start + PER_DRAW] = torch.randn(
            PER_DRAW, generator=generator, dtype=torch.float32
        ).numpy()
    return out


def _copy_box_muller(integers: np.ndarray, narrow: bool) -> np.ndarray:
    data = torch.from_numpy(integers.astype(np.float32) * np.float32(2.0**-24))
    assert KERNELS["box muller"](data.data_ptr(), len(integers) // 16, int(narrow)) == 0
    return data.numpy()


def _pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Uniform integers laid out so that group g maps (first[8g + j], second[8g + j])."""
    groups = len(first) // 8
    laid = np.empty((groups, 16), dtype=np.int64)
    laid[:, :8] = first.reshape(groups, 8)
    laid[:, 8:] = second.reshape(groups, 8)
    return laid.reshape(-1)


def _compare(first: np.ndarray, second: np.ndarray) -> None:
    count = -(-len(first) // (PER_DRAW // 2)) * (PER_DRAW // 2)
    first = np.resize(first, count)
    second = np.resize(second, count)
    integers = _pairs(first, second)
    expected = _torch_box_muller(integers)
    for narrow in (False, True):  # 16 lanes where the CPU has AVX-512, and 8
        drawn = _copy_box_muller(integers, narrow)
        differ = np.flatnonzero(expected.view(np.int32) != drawn.view(np.int32))
        assert differ.size == 0, (
            f"{differ.size} numbers differ (narrow {narrow}), first at uniforms "
            f"{integers[differ[:3]]}: {expected[differ[:3]]} vs {drawn[differ[:3]]}"
        )


def test_untemper_inverts_the_tempering():
    words = np.random.default_rng(0).integers(0, 2**32, size=10_000, dtype=np.uint64)
    assert np.array_equal(_temper(_untemper(words)), words)


EDGES = np.array(
    [0, 1, 2, 3, 2**22, 2**23 - 1, 2**23, 2**23 + 1, 2**24 - 2, 2**24 - 1]
    + [4913933 + d for d in range(-4, 5)]  # 1 - u near sqrt(1/2), where log's range halves
    + [m * 2**21 + d for m in range(8) for d in (-1, 0, 1) if 0 <= m * 2**21 + d < 2**24],
    dtype=np.int64,
)


def test_box_muller_matches_torch_on_edges_and_a_spread_of_uniforms():
    spread = np.arange(0, 2**24, 4099, dtype=np.int64)  # ~4,100 values of each uniform
    values = np.concatenate([EDGES, spread])
    for other in (0, 1, 5_000_000, 2**24 - 1):
        _compare(values, np.full_like(values, other))  # radius over u1 (and cos, sin of other)
        _compare(np.full_like(values, other), values)  # angle over u2


@pytest.mark.slow
def test_box_muller_matches_torch_on_every_uniform():
    """Every one of the 2^24 values of u1 (with u2 = 0: cos = 1) and of u2 (with three u1)."""
    every = np.arange(2**24, dtype=np.int64)
    for start in range(0, 2**24, 2**22):
        part = every[start : start + 2**22]
        _compare(part, np.zeros_like(part))
        for u1 in (1, 12_345, 2**23 + 3):
            _compare(np.full_like(part, u1), part)


def test_chain_numbers_are_those_of_torch_randn(monkeypatch):
    """A float32 run with the copy gives the numbers of a run with torch.randn, and the
    provenance names the copy; where the copy is off, or differs from torch on the check
    draws, torch.randn draws (and the provenance says why)."""
    kwargs = dict(samples=3000, y0=[0.5, -0.2, 0.1, 0.3], seed=5, dtype=torch.float32)
    fast = dl.sample_resnet(4, 20, "relu", **kwargs)
    assert devices.compiled_kernels()["mt_normal"].startswith("mt_normal-")
    three = dl.sample_resnet(4, 20, "relu", **{**kwargs, "y0": torch.ones(3, 4)})
    monkeypatch.setattr(devices, "_COMPILED", dict(devices._COMPILED))  # restored after
    monkeypatch.setattr(rng, "_checked", {"fill": None, "update": UPDATE})
    assert rng.torch_float32_update() is None  # no drawing update without the copy
    assert torch.equal(dl.sample_resnet(4, 20, "relu", **kwargs), fast)
    assert torch.equal(dl.sample_resnet(4, 20, "relu", **{**kwargs, "y0": torch.ones(3, 4)}), three)

    monkeypatch.setattr(rng, "_checked", {})
    monkeypatch.setattr(rng, "_same_as_torch", lambda fill: "differs (a test)")
    assert rng.torch_float32_normals() is None
    assert (
        devices.compiled_kernels()["mt_normal"] == "torch.randn: the compiled copy differs (a test)"
    )
    assert torch.equal(dl.sample_resnet(4, 20, "relu", **kwargs), fast)


def test_the_check_catches_a_copy_that_differs():
    def off_by_one_ulp(seed, address, size, narrow):
        KERNELS["fill"](seed, address, size, narrow)
        view = np.ctypeslib.as_array((ctypes.c_float * size).from_address(address))
        view[size // 2] = np.nextafter(view[size // 2], np.float32(np.inf))
        return 0

    assert rng._same_as_torch(KERNELS["fill"]) is None
    assert "differs from torch.randn" in rng._same_as_torch(off_by_one_ulp)
    assert "not supported" in rng._same_as_torch(lambda seed, address, size, narrow: -1)


def test_a_tensor_that_requires_grad_goes_to_torch():
    """Written through its pointer, autograd would not see it: torch.randn draws (and
    refuses, as it always did)."""
    streams = rng.BlockStreams(1, 0, [(0, 0, 4)], torch.device("cpu"))
    out = torch.empty(4, 16, dtype=torch.float32, requires_grad=True)
    with pytest.raises(RuntimeError):
        streams.fill(0, 1, out)
    plain = torch.empty(4, 16, dtype=torch.float32)
    streams.fill(0, 1, plain)
    generator = torch.Generator().manual_seed(rng.layer_seed(streams.bases[0], 1))
    assert torch.equal(plain, torch.randn(4, 16, generator=generator, dtype=torch.float32))


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
@pytest.mark.parametrize("seed", [0, 11, 2**40 + 3, 2**63 - 1])
def test_the_drawing_update_is_randn_and_addcmul_bit_for_bit(seed):
    """One pass that draws the numbers into ``y.addcmul_(t1, z, value=v)`` gives the bits of
    torch.randn and torch's addcmul_, at 16 and 8 lanes, with and without a tail, from
    zero, subnormal, huge and infinite entries."""
    generator = torch.Generator().manual_seed(seed % 1000)
    for rows, columns in (
        (1, 16),
        (1, 17),
        (3, 7),
        (4, 5),
        (7, 89),
        (2, 311),
        (64, 2048),
        (1, 2**17),
    ):
        y = torch.randn(rows, columns, generator=generator) * 3
        row = torch.rand(columns, generator=generator)
        y.view(-1)[:6] = torch.tensor([0.0, -0.0, 1e-40, 3e38, float("inf"), -1e30])
        row[:3] = torch.tensor([0.0, 1e-40, 2e38])
        value = 0.125 / (1 + rows)
        noise = _torch_randn(seed, rows * columns).view(rows, columns)
        expected = y.clone().addcmul_(row, noise, value=value)
        for narrow in (0, 1):
            out = y.clone()
            assert (
                UPDATE(seed % 2**64, out.data_ptr(), row.data_ptr(), value, rows, columns, narrow)
                == 0
            )
            assert torch.equal(_bits(out), _bits(expected)), (rows, columns, narrow)


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
def test_block_streams_draw_into_the_update_only_where_it_applies():
    streams = rng.BlockStreams(3, 0, [(0, 0, 50)], torch.device("cpu"))
    y, row = torch.randn(4, 50), torch.rand(50)
    noise = torch.empty(4, 50)
    streams.fill(0, 2, noise)
    expected = y.clone().addcmul_(row, noise, value=0.25)
    out = y.clone()
    assert streams.fill_update(0, 2, out, row, 0.25)
    assert torch.equal(out, expected)
    for bad_y, bad_row in (
        (y.t().contiguous().t(), row),  # not contiguous
        (y.double(), row.double()),  # not float32
        (y.clone().requires_grad_(), row),  # autograd
        (y, row[:-1]),  # shapes
        (y[:, :3], row[:3]),  # fewer than 16 numbers
    ):
        before = bad_y.detach().clone()
        assert not streams.fill_update(0, 2, bad_y, bad_row, 0.25)
        assert torch.equal(bad_y.detach(), before)


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
@pytest.mark.parametrize("width", [1, 4, 64])
@pytest.mark.filterwarnings("ignore")
def test_chain_draws_into_the_update_with_the_same_numbers(monkeypatch, width):
    """float32 runs of one input (stretches, observers, a stretch that fails and is run
    again step by step from a state near the float32 bound, and tiny starts that are
    rescaled) give the same numbers with the normals drawn into the update as without."""
    from deeplimit.initialization import chain

    used = []
    update = chain._Normals.update

    def counted(self, *args):
        done = update(self, *args)
        used.append(done)
        return done

    monkeypatch.setattr(chain._Normals, "update", counted)
    grid = torch.linspace(-1.0, 1.0, width, dtype=torch.float64) + 0.5 if width > 1 else None
    starts = [torch.full((width,), 0.5, dtype=torch.float64) if grid is None else grid]
    starts += [starts[0] * 1e37, starts[0] * 1e-37]

    def results() -> list[torch.Tensor]:
        found = []
        for y0 in starts:
            kwargs = dict(
                samples=2**17 // width + 3, y0=y0, dtype=torch.float32, seed=4, on_nonfinite="warn"
            )
            found.append(dl.sample_resnet(width, 40, "relu", **kwargs))
            observed = dl.observe_resnet(
                width, 24, "relu", observables=("log_growth", "active"), layers="all", **kwargs
            )
            found.extend(observed.values[name] for name in sorted(observed.values))
        return found

    runs = results()
    assert any(used)
    monkeypatch.setattr(chain._Normals, "update", lambda self, *args: False)
    again = results()
    for first, second in zip(runs, again, strict=True):
        assert torch.equal(first, second) or (
            first.is_floating_point()
            and torch.equal(first.isnan(), second.isnan())
            and torch.equal(first.nan_to_num(), second.nan_to_num())
        )


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
def test_the_norms_pass_in_the_drawing_update_gives_the_same_numbers(monkeypatch):
    """Observed float32 runs of one input at width > 1 step by step (where observers do not
    take stretches) run the next view's norms' pass in
    the drawing update's call (the view's own call then finds it done); the numbers equal
    those with the pass called by the view, at recorded layers (values read: not fused), with
    log-growth's division, the active counts written into the results and ||y|| read."""
    from deeplimit.initialization import chain, native

    consumed = []
    call = native.RowNorms.__call__

    def counted(self, *args, **kwargs):
        ready = self.ready
        consumed.append(ready is not None and self.arguments(*args, **kwargs) == ready)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(native.RowNorms, "__call__", counted)
    # the per-step path of these observers (not the observed stretches)
    monkeypatch.setattr(chain, "_observed_stretches", lambda *args: False)
    y0 = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64) + 0.5
    kwargs = dict(samples=2**13 + 5, y0=y0, dtype=torch.float32, seed=9)
    names = ("log_growth", "active", "collapse", "quasi_gbm")

    def results() -> list[torch.Tensor]:
        found = [dl.sample_resnet(16, 30, "relu", record=[0, 7, 30], **kwargs)]
        for layers in ("all", [3, 4, 20]):
            observed = dl.observe_resnet(16, 30, "relu", observables=names, layers=layers, **kwargs)
            found.extend(observed.values[name] for name in sorted(observed.values))
        return found

    fused = results()
    assert sum(consumed) > 20
    monkeypatch.setattr(native.RowNorms, "address", property(lambda self: None))
    consumed.clear()
    plain = results()
    assert not any(consumed)
    for first, second in zip(fused, plain, strict=True):
        assert torch.equal(first.nan_to_num(), second.nan_to_num()), first.shape


def test_a_norms_pass_done_elsewhere_counts_for_one_call_with_its_arguments():
    from deeplimit.initialization import native

    if not native.available():
        pytest.skip("no compiled kernels")
    memory = torch.randn(1, 8, 64, dtype=torch.float32)
    rows = torch.empty(1, 64, dtype=torch.float32)
    bound = native.RowNorms(memory, rows, np.zeros(6))
    arguments = bound.arguments(True)
    assert arguments is not None and bound.address is not None
    rows.fill_(-1.0)
    bound.ready = arguments
    assert bound(True) and bool((rows == -1.0).all())  # done elsewhere: nothing computed
    assert bound.ready is None
    assert bound(True) and not bool((rows == -1.0).any())  # computed now
    rows.fill_(-1.0)
    bound.ready = arguments
    assert bound(False)  # other arguments: computed, and the memo is gone
    assert not bool((rows == -1.0).any()) and bound.ready is None


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
def test_several_inputs_draw_factor_and_norms_in_one_call_with_the_same_numbers(monkeypatch):
    """float32 runs of several ReLU inputs draw each layer's normals, factor and update, and
    run the next view's norms' pass in one compiled call; the numbers equal those of the
    separate calls — from distinct, identical (tiles the kernel leaves to be mended) and
    nearly identical inputs, huge and tiny starts, with recorded layers and observers."""
    from deeplimit.initialization import chain

    left: list[int] = []
    fill_then = chain._Normals.fill_then

    def counted(self, *args):
        tiles = fill_then(self, *args)
        if tiles is not None:
            left.append(tiles)
        return tiles

    monkeypatch.setattr(chain._Normals, "fill_then", counted)
    # layer by layer (the stretches of several inputs, which call the same kernels layer
    # after layer, have tests of their own: test_several_stretches.py and
    # test_several_observed_stretches.py)
    monkeypatch.setattr(chain._SeveralReLU, "make", classmethod(lambda cls, *args: None))
    grid = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64) + 0.5
    starts = [
        torch.stack([grid, grid.flip(0), grid * 0.3 + 0.1]),
        torch.stack([grid, grid, grid]),  # identical inputs
        torch.stack([grid, grid + 1e-7, grid * 0.5]),
        torch.stack([grid * 1e-6, grid * 1e-6 + 1e-13, grid * 0.3]),  # residuals to mend
        torch.stack([grid, grid.flip(0), grid * 0.3 + 0.1]) * 1e30,
        torch.stack([grid, grid.flip(0), grid * 0.3 + 0.1]) * 1e-30,
    ]
    names = ("log_growth", "active", "correlation", "collapse")

    def results() -> list[torch.Tensor]:
        found = []
        for y0 in starts:
            # a block of 5,461 samples (3 x 8 x 5,461 >= 2^17 numbers a layer: a step a group,
            # fused) and one of 39 (several steps a group: drawn apart)
            kwargs = dict(samples=5500, y0=y0, dtype=torch.float32, seed=6, on_nonfinite="warn")
            found.append(dl.sample_resnet(8, 12, "relu", record=[0, 5, 12], **kwargs))
            observed = dl.observe_resnet(8, 12, "relu", observables=names, layers="all", **kwargs)
            found.extend(observed.values[name] for name in sorted(observed.values))
        return found

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = results()
        assert len(left) > 30 and any(count > 0 for count in left)  # mended tiles too
        monkeypatch.setattr(chain, "_drawn_factor_increment", lambda *args: False)
        separate = results()
    for first, second in zip(fused, separate, strict=True):
        assert torch.equal(first.nan_to_num(), second.nan_to_num()), first.shape


def _layout(seeds, lengths, offset, size):
    """The numbers of each step of a stretch that starts at step ``offset`` of its first
    group: group ``g`` is torch.randn of ``lengths[g]`` steps for ``seeds[g]``."""
    steps = []
    for seed, length in zip(seeds, lengths, strict=True):
        steps.extend(_torch_randn(seed, length * size).view(length, size).unbind(0))
    return steps[offset:]


def _stretch(layout, y, norm, value, bound, narrow, address, steps=None, observed=None, top=0.0):
    """``mt_relu_stretch_f32`` on copies, for ``layout = (seeds, lengths, offset)``: the steps
    done, the state and the last norms; ``observed``: its ``(counts, sums, divisor, ratio)``
    (counts: rows at their distance)."""
    seeds, lengths, offset = layout
    steps = sum(lengths) - offset if steps is None else steps
    out, first, spare = y.clone(), norm.clone(), torch.empty_like(norm)
    buffer = torch.empty(max(lengths) * y.numel())
    counts, sums, divisor, ratio = observed or (None, None, None, None)
    pointers = [None if t is None else t.data_ptr() for t in (counts, sums, divisor, ratio)]
    pointers.insert(1, 0 if counts is None else counts.stride(0))
    done = KERNELS["relu stretch"](
        (ctypes.c_uint64 * len(seeds))(*seeds),
        (ctypes.c_int64 * len(lengths))(*lengths),
        offset,
        steps,
        buffer.data_ptr(),
        out.data_ptr(),
        first.data_ptr(),
        spare.data_ptr(),
        *y.shape,
        value,
        bound,
        narrow,
        address or None,
        *pointers,
        top,
    )
    return done, out, first


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
@pytest.mark.parametrize(("n", "size"), [(1, 16), (1, 37), (1, 5000), (2, 8), (3, 7), (10, 333)])
@pytest.mark.parametrize("groups", ["one step", "several steps"])
def test_a_compiled_stretch_is_its_steps_one_call_at_a_time(n, size, groups):
    """``mt_relu_stretch_f32`` against randn + addcmul_ and the norms' pass step by step, at 16
    and 8 lanes, with and without a tail of fewer than 16 numbers, from a start with -0 and
    +0, its steps in groups of one (drawn into the update) or of several steps (one stream
    each, from the second step of the first): the same bits for the state and the last
    norms, and it stops after the first step with a norm in (0, bound) or not finite (bounds
    from the reference's own norms: below all, failing at the start, failing at a middle
    step), with that step's state; a NaN or an infinite entry at the start fails there."""
    from deeplimit.initialization import native

    generator = torch.Generator().manual_seed(n * 1000 + size)
    lengths = [1] * 9 if groups == "one step" else [4, 3, 1, 2]
    offset = 0 if groups == "one step" else 1
    seeds = [int(s) for s in torch.randint(0, 2**62, (len(lengths),), generator=generator)]
    layout = (seeds, lengths, offset)
    numbers = _layout(seeds, lengths, offset, n * size)
    assert len(numbers) == 9
    y = torch.randn(n, size, generator=generator)
    y[0, :2] = torch.tensor([-0.0, 0.0])
    norm = torch.empty(size)
    if n == 1:
        torch.clamp(y[0], min=0, out=norm)
    else:
        native.row_norms(y.unsqueeze(0), norm.unsqueeze(0), relu=True)
    address = 0 if n == 1 else native.row_norms_address(y.unsqueeze(0), norm.unsqueeze(0))
    value = 0.3 / (1 + n)
    bounds = stretch_bounds(numbers, y, norm, value)
    for bound in bounds:
        done, state, last = stretch_steps(numbers, y, norm, value, bound)
        # none fails, the start fails, a later step fails
        assert (done == 9, done == 0, done < 9)[bounds.index(bound)]
        for narrow in (0, 1):
            found, out, first = _stretch(layout, y, norm, value, bound, narrow, address)
            assert found == done, (bound, narrow)
            assert torch.equal(_bits(out), _bits(state)), (bound, narrow)
            if done == 9:
                assert torch.equal(_bits(first), _bits(last))
    for count in (1, 2):  # the sign of a zero entry after one and two steps (later: +0)
        expected = stretch_steps(numbers[:count], y, norm, value, 0.0)[1]
        found = _stretch(layout, y, norm, value, 0.0, 0, address, steps=count)[1]
        assert torch.equal(_bits(found), _bits(expected))
    for bad in (float("nan"), float("inf")):
        start, first = y.clone(), norm.clone()
        start[-1, -1] = first[-1] = bad
        assert _stretch(layout, start, first, value, 1e-30, 0, address)[0] == 0


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
@pytest.mark.parametrize(("n", "size"), [(2, 8), (3, 7), (10, 333), (4, 64)])
@pytest.mark.parametrize("groups", ["one step", "several steps"])
def test_an_observed_stretch_writes_each_steps_counts_and_ratios(n, size, groups):
    """With the observers' rows: each step's active counts ``#{t: y[t, b] > 0}`` and its
    norms over the divisor (a divisor with zeros: 0/0 is NaN, p/0 inf), their sums over the
    steps done and the steps with a positive count, against the reference step by step, and
    the same state and norms as without them; the call that stops after a failing step sums
    the steps before it and that step."""
    from deeplimit.initialization import native

    generator = torch.Generator().manual_seed(n * 1000 + size + 7)
    lengths = [1] * 9 if groups == "one step" else [4, 3, 1, 2]
    offset = 0 if groups == "one step" else 1
    seeds = [int(s) for s in torch.randint(0, 2**62, (len(lengths),), generator=generator)]
    layout = (seeds, lengths, offset)
    numbers = _layout(seeds, lengths, offset, n * size)
    y = torch.randn(n, size, generator=generator)
    y[:, 0] = -1.0  # a collapsed path: counts 0, ratio 0 (0/0: NaN where the divisor is 0)
    norm = torch.empty(size)
    native.row_norms(y.unsqueeze(0), norm.unsqueeze(0), relu=True)
    address = native.row_norms_address(y.unsqueeze(0), norm.unsqueeze(0))
    divisor = torch.rand(size, generator=generator) + 0.5
    divisor[:2] = 0.0
    value = 0.3 / (1 + n)
    states, norms, state, last = [], [], y, norm
    for z in numbers:
        _, state, last = stretch_steps([z], state, last, value, 0.0)
        states.append(state)
        norms.append(last)
    for bound in stretch_bounds(numbers, y, norm, value):
        done = stretch_steps(numbers, y, norm, value, bound)[0]
        rows = torch.full((9, size + 5), -7, dtype=torch.int32)  # rows of a wider array
        counts, sums = rows[:, 2 : size + 2], torch.full((2, size), -7, dtype=torch.int32)
        ratio = torch.full((9, size), -7.0)
        found, out, first = _stretch(
            layout, y, norm, value, bound, 0, address, observed=(counts, sums, divisor, ratio)
        )
        plain = _stretch(layout, y, norm, value, bound, 0, address)
        assert found == done == plain[0]
        assert torch.equal(_bits(out), _bits(plain[1])) and torch.equal(
            _bits(first), _bits(plain[2])
        )
        started = bool(((norm <= 0) | (norm >= bound)).all())  # else no step runs
        ran = 0 if not started else min(done + 1, 9)  # the steps done and one that failed
        expected = [(s > 0).sum(0, dtype=torch.int32) for s in states[:ran]]
        for i in range(ran):
            assert torch.equal(counts[i], expected[i]), (bound, i)
            assert torch.equal(_bits(ratio[i]), _bits(norms[i] / divisor)), i
        assert bool((counts[ran:] == -7).all()) and bool((ratio[ran:] == -7.0).all())
        assert bool((rows[:, :2] == -7).all()) and bool((rows[:, size + 2 :] == -7).all())
        zero = torch.zeros(size, dtype=torch.int32)
        assert torch.equal(sums[0], sum(expected, zero))
        assert torch.equal(sums[1], sum(((e > 0).int() for e in expected), zero))
    # counts in one row (a distance of 0): the last step's, with the same sums
    row, sums = torch.full((size,), -7, dtype=torch.int32), torch.empty(2, size, dtype=torch.int32)
    observed = (row.expand(9, size), sums, None, None)
    assert _stretch(layout, y, norm, value, 0.0, 0, address, observed=observed)[0] == 9
    assert torch.equal(row, (states[-1] > 0).sum(0, dtype=torch.int32))
    every = [(s > 0).sum(0, dtype=torch.int32) for s in states]
    assert torch.equal(sums[0], sum(every, torch.zeros(size, dtype=torch.int32)))
    # no counts: the sums of the steps alive alone, from the norms
    alone = torch.full((2, size), -7, dtype=torch.int32)
    observed = (None, alone, None, None)
    assert _stretch(layout, y, norm, value, 0.0, 0, address, observed=observed)[0] == 9
    assert torch.equal(alone[1], sum(((e > 0).int() for e in every), torch.zeros_like(row)))
    # ``top``: the first step with an entry outside [-top, top] fails
    largest = [float(state.abs().max()) for state in states]
    for step in (0, 4, 8):
        top = sorted(largest[step:])[0] * (1 - 2**-20)  # the first step at or above it fails
        failing = next(i for i, value in enumerate(largest) if value > top)
        done = _stretch(layout, y, norm, value, 0.0, 0, address, top=top)[0]
        assert done == failing, (step, failing)
    assert _stretch(layout, y, norm, value, 0.0, 0, address, top=max(largest) * 2)[0] == 9


@pytest.mark.skipif(UPDATE is None, reason="the drawing update does not run here")
def test_a_compiled_stretch_refuses_groups_that_do_not_hold_its_steps():
    """-1 and nothing done for an offset past the first group or a group of no steps (the
    caller's layout is wrong), as for a t1 of NULL in the drawing update."""
    from deeplimit.initialization import native

    y, norm = torch.randn(2, 40), torch.ones(40)
    address = native.row_norms_address(y.unsqueeze(0), norm.unsqueeze(0))
    for lengths, offset in (([3, 3], 3), ([2, 0, 4], 1), ([1], 1)):
        layout = ([5] * len(lengths), lengths, offset)
        done, out, _ = _stretch(layout, y, norm, 0.1, 1e-9, 0, address, steps=3)
        assert done == -1 and torch.equal(out, y)  # the state untouched
    assert _stretch(([5, 5], [3, 3], 2), y, norm, 0.1, 1e-9, 0, address, steps=3)[0] == 3
    out, first, spare = y.clone(), norm.clone(), torch.empty(40)  # a group of 3 steps, no buffer
    done = KERNELS["relu stretch"](
        (ctypes.c_uint64 * 2)(5, 6),
        (ctypes.c_int64 * 2)(1, 3),
        0,
        3,
        None,
        out.data_ptr(),
        first.data_ptr(),
        spare.data_ptr(),
        2,
        40,
        0.1,
        1e-9,
        0,
        address,
        None,
        0,
        None,
        None,
        None,
        0.0,
    )
    assert done == -1 and torch.equal(out, y)
    assert UPDATE(5, y.data_ptr(), None, 0.1, 2, 40, 0) == -1
    # counts, sums or ratios at width 1 (nothing would be counted there), a ratio without a
    # divisor, counts without sums or with rows closer than B: refused
    one, ratio = torch.randn(1, 40), torch.empty(3, 40)
    rows, sums = torch.empty(5, 40, dtype=torch.int32), torch.empty(2, 40, dtype=torch.int32)
    layout = ([5, 6, 7], [1, 1, 1], 0)
    for observed in ((rows, sums, None, None), (None, sums, None, None), (None, None, norm, ratio)):
        assert _stretch(layout, one, norm, 0.1, 1e-9, 0, 0, observed=observed)[0] == -1
    assert _stretch(layout, one, norm, 0.1, 1e-9, 0, 0, top=1.0)[0] == -1
    for observed in ((None, None, None, ratio), (rows, None, None, None)):
        assert _stretch(layout, y, norm, 0.1, 1e-9, 0, address, observed=observed)[0] == -1
    close = torch.empty(200, dtype=torch.int32).as_strided((3, 40), (39, 1))
    assert (
        _stretch(layout, y, norm, 0.1, 1e-9, 0, address, observed=(close, sums, None, None))[0]
        == -1
    )
    assert (
        _stretch(layout, y, norm, 0.1, 1e-9, 0, address, observed=(rows, sums, None, None))[0] == 3
    )
