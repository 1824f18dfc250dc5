"""The flat gradient buffer of siamdiag train (siamdiag/train/gradients.py). Oracles: PyTorch's own
loop (``zero_grad(set_to_none=True)``, backward, step), which must train the same parameters bit for
bit, and each gradient's norm recomputed in float64."""
import math

import pytest

torch = pytest.importorskip("torch")

from siamdiag.train.gradients import GradientBuffer  # noqa: E402


def model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))


def batches(steps: int):
    generator = torch.Generator().manual_seed(7)
    return [(torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 3, (16,), generator=generator))
            for _ in range(steps)]


def float64_norm(parameters) -> float:
    return math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in parameters))


@pytest.mark.parametrize("optimizer", [
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    lambda ps: torch.optim.AdamW(ps, lr=1e-2),
], ids=["sgd", "adam", "adamw"])
def test_training_through_the_buffer_gives_pytorchs_loop_bit_for_bit(optimizer):
    plain, buffered = model(0), model(0)
    plain_opt, buffered_opt = optimizer(list(plain.parameters())), optimizer(list(buffered.parameters()))
    gradients = GradientBuffer(list(buffered.parameters()))
    for x, y in batches(25):
        plain_opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(plain(x), y).backward()
        gradients.zero()
        torch.nn.functional.cross_entropy(buffered(x), y).backward()
        assert float(gradients.norm()) == pytest.approx(float64_norm(plain.parameters()), rel=1e-5)
        plain_opt.step()
        buffered_opt.step()
    for a, b in zip(plain.state_dict().values(), buffered.state_dict().values()):
        assert torch.equal(a, b)


def test_every_gradient_is_a_view_of_the_buffer_and_zero_clears_it():
    net = model(1)
    params = list(net.parameters())
    gradients = GradientBuffer(params)
    x, y = batches(1)[0]
    torch.nn.functional.cross_entropy(net(x), y).backward()
    start, end = gradients.flat.data_ptr(), gradients.flat.data_ptr() + gradients.flat.nbytes
    assert all(start <= p.grad.data_ptr() < end and p.grad.shape == p.shape for p in params)
    assert float(gradients.flat.abs().sum()) > 0
    gradients.zero()
    assert all(float(p.grad.abs().sum()) == 0 for p in params)


def test_gradients_set_to_none_or_replaced_are_put_back_at_the_next_zero():
    net = model(2)
    params = list(net.parameters())
    gradients = GradientBuffer(params)
    torch.optim.SGD(params, lr=0.1).zero_grad(set_to_none=True)   # what a user's loop would do
    params[0].grad = torch.ones_like(params[0])
    gradients.zero()
    x, y = batches(1)[0]
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert all(p.grad is view for p, view in zip(params, gradients.views))
    assert float(gradients.norm()) == pytest.approx(float64_norm(params), rel=1e-5)


def test_the_norm_overflows_where_clip_grad_norm_does():
    """clip_grad_norm_ logs the norm of the per-parameter norms, in float32."""
    weight = torch.nn.Parameter(torch.zeros(4))
    gradients = GradientBuffer([weight])
    for value, expected in ((1e18, 2e18), (1e20, math.inf)):   # the sum of squares passes float32's largest at ~1.8e19
        weight.grad.fill_(value)
        assert float(torch.nn.utils.get_total_norm([weight.grad])) == pytest.approx(expected, rel=1e-6)
        assert float(gradients.norm()) == pytest.approx(expected, rel=1e-6)


def test_parameters_of_two_dtypes_are_refused():
    with pytest.raises(ValueError, match="one dtype"):
        GradientBuffer([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])
