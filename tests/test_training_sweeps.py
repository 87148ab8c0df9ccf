"""The 2LP block's whole-sweep loops (``TwoLayerBlock.forward_sweep``/``backward_sweep``) against
the layer-by-layer reference (``Block``'s sweeps over ``residual_forward``/``backward``), and the
NumPy row products of ``N = 1`` (``TwoLayerBlock.row_products``) against torch's: the tensor
path (``compiled_sweeps = False``; the compiled sweeps of ``N = 1`` have their own tests,
``tests/test_training_native.py``)."""

import importlib

import pytest
import torch

from deeplimit.training import MeanFieldScaling, TwoLayerBlock, build_resnet, train
from deeplimit.training.authors import authors_linear_task
from deeplimit.training.data import TrainingData
from deeplimit.training.model import Block

model_module = importlib.import_module("deeplimit.training.model")
train_module = importlib.import_module("deeplimit.training.train")
DATA = {"N=10": None, "N=1": authors_linear_task()}


def task(samples):
    if samples == "N=1":
        return DATA["N=1"]
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return TrainingData(x, torch.sin(x @ torch.ones(3, 3, dtype=torch.float64)), "test task")


class LayerByLayer(TwoLayerBlock):
    """The same block through the generic sweeps: one ``residual_forward``/``backward`` call
    per layer (the code path before the whole-sweep loops)."""

    def forward_sweep(self, *args):
        return Block.forward_sweep(self, *args)

    def backward_sweep(self, *args):
        return Block.backward_sweep(self, *args)


def tensor_path(block):
    block.compiled_sweeps = False
    return block


def scalings(seeds):
    return [MeanFieldScaling(1.0 + 0.3 * i, 0.05 + 0.05 * i) for i in range(seeds)]


def trained(block, data, dtype, *, mixed, seeds=3, steps=3, depth=4, width=16, dim=8):
    model = build_resnet(
        depth,
        width,
        dim,
        input_dim=3,
        output_dim=3,
        block=block,
        seeds=seeds,
        dtype=dtype,
        scaling=scalings(seeds) if mixed else MeanFieldScaling(1.0, 0.1),
    )
    result = train(model, data, steps, record_adjoint=True, record_layers=True)
    return result, model.storage


def assert_same(first, second, tol=0.0):
    (a, a_params), (b, b_params) = first, second
    pairs = [(getattr(a, key), getattr(b, key)) for key in ("outputs", "loss", "adjoint")]
    pairs += [(a.states, b.states)] + [(a_params[k], b_params[k]) for k in a_params]
    for left, right in pairs:
        if tol == 0.0:
            assert torch.equal(left, right)
        else:
            scale = float(right.abs().max())
            assert torch.allclose(left, right, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("activation", ["tanh", "identity", "relu"])
@pytest.mark.parametrize("layout", ["samples", "units"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("samples", ["N=10", "N=1"])
@pytest.mark.parametrize("mixed", [False, True], ids=["shared", "per-network"])
def test_whole_sweeps_equal_layer_by_layer_bit_for_bit(activation, layout, dtype, samples, mixed):
    """The same operations on the same operands: every record, the adjoint and the trained
    parameters equal bit for bit (torch's row products on both sides)."""
    runs = []
    for kind in (TwoLayerBlock, LayerByLayer):
        block = tensor_path(kind(activation))
        block.state_layout, block.row_products = layout, "torch"
        runs.append(trained(block, task(samples), dtype, mixed=mixed))
    assert_same(*runs)
    assert not torch.equal(runs[0][0].loss[:, 0], runs[0][0].loss[:, -1])  # sanity: it trained


def test_a_subclass_overriding_a_layer_method_gets_the_generic_sweeps():
    calls = []

    class Counted(TwoLayerBlock):
        def residual_forward(self, h, params, scale):
            calls.append("forward")
            return super().residual_forward(h, params, scale)

    result, _ = trained(Counted("tanh"), task("N=10"), torch.float64, mixed=False, steps=2)
    reference, _ = trained(TwoLayerBlock("tanh"), task("N=10"), torch.float64, mixed=False, steps=2)
    assert calls.count("forward") == 4 * 3  # L layers, K + 1 forward passes
    assert torch.equal(result.outputs, reference.outputs)


def test_row_products_setting():
    block = TwoLayerBlock("identity")
    assert block.row_products == "auto"
    one, ten = torch.zeros(2, 1, 4), torch.zeros(2, 10, 4)
    assert block.numpy_row_products(one.float())  # float32, N = 1, CPU
    assert not block.numpy_row_products(one.double())
    assert not block.numpy_row_products(ten.float())
    block.row_products = "numpy"
    assert block.numpy_row_products(one.double()) and not block.numpy_row_products(ten.double())
    block.row_products = "torch"
    assert not block.numpy_row_products(one.float())
    block.row_products = "blas"
    with pytest.raises(ValueError, match="row_products"):
        block.numpy_row_products(one)


@pytest.fixture
def two_groups(monkeypatch):
    """Split every batch of two or more networks over two threads (``_NetworkGroups``)."""
    monkeypatch.setattr(train_module, "_GROUP_MIN_FLOPS", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("mixed", [False, True], ids=["shared", "per-network"])
@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "two-groups"])
def test_numpy_row_products_equal_torch_to_rounding(
    activation, dtype, mixed, groups, monkeypatch, request
):
    """NumPy's BLAS sums ``a_j v_j`` in another order: the same training to the dtype's
    rounding (5 steps of the authors' linear task and of tanh; the relative differences seen are
    ~2e-6 in float32 and ~3e-15 in float64), and the NumPy path does run."""
    if groups:
        request.getfixturevalue("two_groups")
    used = []
    real = model_module._row_product

    def counted(*args):
        used.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(model_module, "_row_product", counted)
    runs = {}
    for choice in ("numpy", "torch"):
        block = tensor_path(TwoLayerBlock(activation))
        block.row_products = choice
        options = dict(mixed=mixed, seeds=4, steps=5, depth=6, width=32, dim=16)
        runs[choice] = trained(block, task("N=1"), dtype, **options)
        assert bool(used) == (choice == "numpy")
        if choice == "numpy":
            # each group's networks in one call per layer and pass: S or S / 2
            assert set(used) == ({2} if groups else {4})
            used.clear()
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert_same(runs["numpy"], runs["torch"], tol)


def test_auto_uses_numpy_row_products_for_float32_n1_only(monkeypatch):
    used = []
    real = model_module._row_product
    monkeypatch.setattr(model_module, "_row_product", lambda *args: used.append(1) or real(*args))
    for dtype, samples, expected in (
        (torch.float32, "N=1", True),
        (torch.float64, "N=1", False),
        (torch.float32, "N=10", False),
    ):
        used.clear()
        trained(tensor_path(TwoLayerBlock("identity")), task(samples), dtype, mixed=False, steps=1)
        assert bool(used) == expected


def test_numpy_row_products_step_back_for_autograd():
    """Parameters tracked by autograd cannot go through NumPy: the sweeps use torch's products
    then, and autograd through the forward pass still works."""
    block = TwoLayerBlock("identity")
    block.row_products = "numpy"
    model = build_resnet(3, 8, 4, input_dim=3, output_dim=3, block=block, seeds=2)
    data = task("N=1")
    for value in model.storage.values():
        value.requires_grad_(True)
    last = model.forward(data.x).last
    last.sum().backward()
    assert all(value.grad is not None for value in model.storage.values())
