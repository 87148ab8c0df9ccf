"""The attention-head block (training/attention.py): gradients against finite differences,
shapes, causality, the one-token reduction to the 2LP unit, the order of a head's output at
initialization, training, bad inputs."""

import math

import numpy as np
import pytest
import torch

from deeplimit.training import (
    AttentionBlock,
    TwoLayerBlock,
    build_resnet,
    synthetic_sequence_task,
    train_resnet,
)

torch.set_num_threads(1)


def _model(block, depth=2, width=3, dim=6, d_in=3, d_out=2, seeds=2, **kwargs):
    return build_resnet(
        depth, width, dim, input_dim=d_in, output_dim=d_out, block=block, seeds=seeds, **kwargs
    )


def _sequences(n=2, t=3, d_in=3, d_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((n, t, d_in))), torch.from_numpy(
        rng.standard_normal((n, t, d_out))
    )


def test_gradients_match_central_finite_differences_in_float64():
    x, y = _sequences()
    block = AttentionBlock(3, key_dim=2, activation="tanh")
    # alpha = 4 so that the branches matter at this small size
    model = _model(block, alpha=4.0)
    flat_x, flat_y = x.reshape(6, 3), y.reshape(6, 2)
    grads = model.gradients(flat_x, flat_y)
    params = {name: value.clone() for name, value in model.parameters.items()}
    rng = np.random.default_rng(1)
    eps = 1e-6
    checked = 0
    for name, value in params.items():
        for _ in range(6):
            index = tuple(int(rng.integers(0, n)) for n in value.shape)
            network = index[0]
            plus = {k: v.clone() for k, v in params.items()}
            minus = {k: v.clone() for k, v in params.items()}
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric = (
                model.risk_of(plus, flat_x, flat_y)[network]
                - model.risk_of(minus, flat_x, flat_y)[network]
            ) / (2 * eps)
            analytic = grads[name][index]
            assert float(abs(numeric - analytic)) <= 1e-6 * max(1.0, float(abs(numeric))) + 1e-9, (
                name,
                index,
                float(numeric),
                float(analytic),
            )
            checked += 1
    assert checked == 24
    # and the gradient is not trivially zero
    assert all(float(g.abs().max()) > 1e-4 for g in grads.values())


def test_one_token_head_is_the_2lp_unit():
    torch.manual_seed(0)
    s, n, m, d = 2, 5, 4, 8
    h = torch.randn(s, n, d, dtype=torch.float64)
    params = {
        "q": torch.randn(s, m, 3, d, dtype=torch.float64),
        "k": torch.randn(s, m, 3, d, dtype=torch.float64),
        "u": torch.randn(s, m, d, dtype=torch.float64) * math.sqrt(d),
        "v": torch.randn(s, m, d, dtype=torch.float64) * math.sqrt(d),
    }
    head = AttentionBlock(1, key_dim=3, activation="tanh").branch(h, params)
    unit = TwoLayerBlock("tanh").branch(h, {"u": params["u"], "v": params["v"]})
    torch.testing.assert_close(head, unit, rtol=1e-12, atol=1e-12)


def test_causal_mask_earlier_tokens_ignore_later_ones():
    torch.manual_seed(1)
    block = AttentionBlock(4, key_dim=2)
    d, m = 6, 3
    params = block.initialize_layer(torch.Generator().manual_seed(0), m, d)
    params = {k: v.unsqueeze(0) for k, v in params.items()}
    h = torch.randn(1, 2 * 4, d, dtype=torch.float64)
    out = block.branch(h, params).reshape(1, 2, 4, d)
    changed = h.clone().reshape(1, 2, 4, d)
    changed[:, :, 2:] += 5.0
    out2 = block.branch(changed.reshape(1, 8, d), params).reshape(1, 2, 4, d)
    torch.testing.assert_close(out[:, :, :2], out2[:, :, :2], rtol=0, atol=0)
    assert float((out[:, :, 2:] - out2[:, :, 2:]).abs().max()) > 1e-3
    weights = block.attention_weights(h, params)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    assert float(weights.triu(1).abs().max()) == 0.0


@pytest.mark.parametrize("dim", [16, 64])
def test_head_output_second_moment_at_initialization(dim):
    """With a linear value path, E[out_{t,i}^2 | q, k] = A_t G A_t^T with G_sr = <h^s, h^r>
    (u, v independent N(0, D)): entries O(sqrt(D)) like a 2LP unit's. The mean of
    out^2 - A G A^T over M independent heads is tested against 4.5 of its standard errors."""
    t, m = 4, 4000
    block = AttentionBlock(t, key_dim=2, activation="identity")
    generator = torch.Generator().manual_seed(dim)
    params = {k: v.unsqueeze(0) for k, v in block.initialize_layer(generator, m, dim).items()}
    h = torch.randn(1, t, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    heads = block.head_outputs(h, params)[0, :, 0]  # (M, T, D)
    weights = block.attention_weights(h, params)[0, :, 0]  # (M, T, T)
    gram = h[0] @ h[0].T
    expected = torch.einsum("mts,sr,mtr->mt", weights, gram, weights)  # (M, T)
    for token in range(t):
        diff = heads[:, token, 0] ** 2 - expected[:, token]
        z = float(diff.mean() / (diff.std() / math.sqrt(m)))
        assert abs(z) < 4.5, (token, z)
        # the order: mean square / D is O(1) (between the extreme eigenvalues of G/D)
        ratio = float((heads[:, token] ** 2).mean()) / dim
        eig = torch.linalg.eigvalsh(gram / dim)
        assert 0.5 * float(eig.min()) <= ratio <= 2.0 * float(eig.max())


def test_train_resnet_attention_shapes_and_loss_decreases():
    data = synthetic_sequence_task(samples=6, tokens=5)
    result = train_resnet(
        3,
        4,
        12,
        block="attention",
        key_dim=2,
        data=(data.x, data.y),
        steps=6,
        seeds=2,
        record_movement=True,
    )
    assert result.embeddings.shape == (2, 7, 6, 5, 12)
    assert result.outputs.shape == (2, 7, 6, 5, 5)
    assert result.loss.shape == (2, 7)
    assert result.x.shape == (6, 5, 5) and result.y.shape == (6, 5, 5)
    assert result.block.startswith("attention(T=5, d_k=2")
    assert bool((result.loss[:, -1] < 0.95 * result.loss[:, 0]).all())
    assert bool((result.loss[:, 1:] <= result.loss[:, :-1] + 1e-12).all())
    assert set(result.movement) == {"q", "k", "u", "v"}
    # records: the loss is the mean square of outputs - y over samples, tokens and coordinates
    loss = ((result.outputs - result.y) ** 2).flatten(2).mean(-1)
    torch.testing.assert_close(loss, result.loss)


def test_batch_equals_separate_runs_and_default_data():
    a = train_resnet(2, 3, 8, block="attention", steps=2, seeds=[0, 1])
    b = train_resnet(2, 3, 8, block="attention", steps=2, seeds=[1])
    assert a.embeddings.shape == (2, 3, 10, 4, 8)
    torch.testing.assert_close(a.embeddings[1], b.embeddings[0], rtol=1e-10, atol=1e-12)


def test_antithetic_heads_cancel_at_initialization():
    block = AttentionBlock(3, key_dim=2, antithetic=True)
    model = _model(block, width=4)
    x, _ = _sequences()
    forward = model.forward(x.reshape(6, 3))
    torch.testing.assert_close(forward.last, model.embed(x.reshape(6, 3)).expand(2, -1, -1))
    with pytest.raises(ValueError, match="hidden_width must be even"):
        _model(block, width=3)


def test_float32_matches_float64():
    kwargs = dict(block="attention", key_dim=2, steps=3, seeds=1)
    a = train_resnet(2, 4, 8, dtype=torch.float64, **kwargs)
    b = train_resnet(2, 4, 8, dtype=torch.float32, **kwargs)
    torch.testing.assert_close(b.embeddings.double(), a.embeddings, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(block="attention", data=(np.zeros((4, 3)), np.zeros((4, 2)))), "X must be a 3-D"),
        (
            dict(block="attention", data=(np.zeros((4, 3, 2)), np.zeros((4, 2, 2)))),
            "same N and T",
        ),
        (dict(block="attention", data=(np.zeros((4, 3, 2)), np.zeros((4, 3)))), "data Y must be"),
        (dict(block="attention", key_dim=0), "key_dim"),
        (dict(key_dim=2), "key_dim applies to block='attention' only"),
        (dict(block="2lp", key_dim=2), "key_dim applies"),
        (dict(block="transformer"), "block must be"),
        (dict(block="attention", data=[1, 2, 3]), "data must be None"),
    ],
)
def test_bad_inputs_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_resnet(2, 3, 4, steps=1, **kwargs)


def test_block_2lp_by_name_equals_default():
    a = train_resnet(2, 3, 4, steps=2, block="2lp")
    b = train_resnet(2, 3, 4, steps=2)
    torch.testing.assert_close(a.embeddings, b.embeddings)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    kwargs = dict(block="attention", key_dim=2, steps=3, seeds=2)
    a = train_resnet(2, 4, 8, device="cpu", **kwargs)
    b = train_resnet(2, 4, 8, device="cuda", **kwargs)
    torch.testing.assert_close(b.embeddings, a.embeddings, rtol=1e-9, atol=1e-9)


def test_sequence_data_checks_its_arrays():
    from deeplimit.training import SequenceData

    with pytest.raises(ValueError, match="same N and T"):
        SequenceData(torch.zeros(2, 3, 1, dtype=torch.float64), torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match="finite"):
        SequenceData(torch.full((2, 3, 1), math.nan, dtype=torch.float64), torch.zeros(2, 3, 1))
    data = SequenceData(np.ones((2, 3, 1)), np.zeros((2, 3, 2)))
    assert data.flat().x.shape == (6, 1) and data.tokens == 3


# -- attention in the one-description API (TrainingProblem) ----------------------------------


def _problem(**kwargs):
    from deeplimit.training import TrainingProblem

    x, y = _sequences(n=3, t=3)
    return TrainingProblem(6, block="attention", key_dim=2, data=(x, y), steps=2, **kwargs)


def test_problem_trains_heads_like_train_resnet_and_keeps_the_token_axis():
    problem = _problem()
    assert problem.tokens == 3 and problem.data.samples == 9  # token rows
    assert problem.block.spec == "attention(T=3, d_k=2, tanh)"
    result = problem.train(2, 4, seeds=[0, 1])
    direct = train_resnet(
        2, 4, 6, block="attention", key_dim=2, data=(problem.sequences.x, problem.sequences.y),
        steps=2, seeds=[0, 1],
    )  # fmt: skip
    assert result.embeddings.shape == (2, 3, 3, 3, 6) and result.x.shape == (3, 3, 3)
    torch.testing.assert_close(result.embeddings, direct.embeddings, rtol=0, atol=0)
    assert result.problem == problem == direct.problem
    # replace keeps the heads and the sequences
    relu = problem.replace(activation="relu", key_dim=3)
    assert relu.block.spec == "attention(T=3, d_k=3, relu)" and relu.tokens == 3
    assert problem.replace(data_seed=4).sequences.x.shape == (10, 3, 5)  # synthetic, same T


def test_problem_limit_of_heads_is_reference_networks_and_exact_methods_say_why():
    from deeplimit.training import Exact, Reference, Span, limit_error
    from deeplimit.training.problem import REFERENCE_SEED

    problem = _problem()
    assert problem.default_method() == Reference()
    assert "no exact solver exists for block attention" in problem.default_method().reason(problem)
    method = Reference(depth=4, hidden_width=8, seeds=2)
    limit = problem.limit(method, on_divergence="raise")
    assert limit.embeddings.shape == (3, 3, 3, 6)  # (K+1, N, T, D)
    # the estimate is the seed mean of the reference networks, bit for bit
    networks = problem.train(4, 8, seeds=[0, 1], seed=REFERENCE_SEED)
    torch.testing.assert_close(limit.embeddings, networks.embeddings.mean(0), rtol=0, atol=0)
    assert limit_error(problem.train(2, 4, seeds=2), limit).shape == (3,)
    for exact in (Exact(), Span()):
        with pytest.raises(ValueError, match=r"attention heads .* no closed-form limit"):
            problem.limit(exact)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(block=AttentionBlock(4, key_dim=2)), "T=3 tokens .* expects tokens=4"),
        (dict(block="attention", key_dim=0), "key_dim"),
        (dict(key_dim=2), "key_dim applies to block='attention' only"),
        (dict(block=TwoLayerBlock("tanh"), key_dim=2), "key_dim applies"),
        (dict(block="attention", activation="bogus"), "activation"),
    ],
)
def test_problem_bad_inputs_name_the_parameter(kwargs, match):
    from deeplimit.training import TrainingProblem

    x, y = _sequences(n=3, t=3)
    with pytest.raises(ValueError, match=match):
        TrainingProblem(6, data=(x, y) if "block" in kwargs else None, **kwargs)
