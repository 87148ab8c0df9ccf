"""The steps of a compiled stretch of one ReLU input (``_mt_normal.c``'s
``mt_relu_stretch_f32``, ``_factor_update.c``'s ``relu_stretch``) one torch call at a time:
the reference the kernels' tests compare with."""

from __future__ import annotations

import torch

from deeplimit.initialization import native


def stretch_steps(numbers, y, norm, value, bound):
    """With the normals ``numbers`` of each step: ``addcmul_``, then the norms (``clamp`` at
    width 1, ``native.row_norms`` wider), each checked (a norm in (0, bound) or not finite
    stops): the steps done whose norms all passed, and the state and the norms where a
    kernel stops (after the last step, or after the step that failed; at the start where
    the first norms fail)."""
    n, size = y.shape
    y, norm = y.clone(), (y[0].clamp(min=0) if n == 1 else norm.clone())

    def passed(x: torch.Tensor) -> bool:
        return bool(((x <= 0) | ((x >= bound) & torch.isfinite(x))).all())

    if not passed(norm):
        return 0, y, norm
    for i, z in enumerate(numbers):
        y.addcmul_(norm, z.view(n, size), value=value)
        norm = torch.empty(size, dtype=y.dtype)
        if n == 1:
            torch.clamp(y[0], min=0, out=norm)
        else:
            assert native.row_norms(y.unsqueeze(0), norm.unsqueeze(0), relu=True)
        if not passed(norm):
            return i, y, norm
    return len(numbers), y, norm


def stretch_bounds(numbers, y, norm, value) -> list[float]:
    """Three bounds for a stretch from ``y`` with the normals ``numbers`` (at least 5 steps):
    below every norm (no step stops), just above the smallest positive norm at the start (the
    start fails), and one that some later step fails (the first of them stops)."""
    positive = []  # the smallest positive norm at the start and after each step
    state, last = y.clone(), norm.clone()
    for z in [None, *numbers]:
        if z is not None:
            _, state, last = stretch_steps([z], state, last, value, 0.0)
        positive.append(float(last[last > 0].min()))
    return [min(positive) / 2, positive[0] * 1.0001, sorted(positive[1:])[4]]


def per_step(monkeypatch, call):
    """``call()`` with every step of the chain checked, a view each (no stretches: the
    reference the stretches are compared with)."""
    from deeplimit.initialization import chain

    monkeypatch.setattr(chain, "_STRETCHES", False)
    try:
        return call()
    finally:
        monkeypatch.setattr(chain, "_STRETCHES", True)


def observed(width, depth, y0, names, layers, **kwargs):
    """``observe_resnet``'s values of float32 ReLU inputs ``y0`` (copies)."""
    import deeplimit as dl

    result = dl.observe_resnet(
        width, depth, "relu", y0=y0, observables=names, layers=layers, dtype="float32", **kwargs
    )
    return {name: value.clone() for name, value in result.values.items()}


def assert_same(found, expected):
    """The same results, bit for bit (NaN and -0 included)."""
    assert found.keys() == expected.keys()
    for name in found:
        a, b = found[name].contiguous(), expected[name].contiguous()
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.numpy().tobytes() == b.numpy().tobytes(), name
