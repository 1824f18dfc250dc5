"""The pair/triplet sampler and dataset loading, checked against what each batch must be by
construction."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from siamdiag.errors import InputError, UsageError  # noqa: E402
from siamdiag.train.config import TrainConfig, expand_grid, parse_grid  # noqa: E402
from siamdiag.train.data import PairSampler, load_dataset  # noqa: E402


@pytest.fixture
def labels():
    # uneven classes, one class with a single example (it can be a negative, never an anchor)
    return torch.tensor([0] * 7 + [1] * 3 + [2] * 1 + [3] * 5)


def test_pairs_are_similar_exactly_when_labelled_so(labels):
    sampler = PairSampler(labels, "pairs", 64, imbalance=1.0, seed=1)
    for step in range(1, 30):
        b = sampler.batch(step)
        same = labels[b.anchor] == labels[b.other]
        assert torch.equal(same, b.similar.bool())
        assert not torch.any(b.anchor == b.other)
        assert int(b.similar.sum()) == 32
        assert not torch.any(labels[b.anchor] == 2)  # single-example class never anchors


def test_imbalance_sets_share_of_similar_pairs(labels):
    sampler = PairSampler(labels, "pairs", 100, imbalance=3.0, seed=0)
    assert int(sampler.batch(5).similar.sum()) == 75


def test_triplets_have_positive_of_same_and_negative_of_other_class(labels):
    sampler = PairSampler(labels, "triplet", 50, imbalance=1.0, seed=2)
    seen_negative_classes = set()
    for step in range(1, 40):
        b = sampler.batch(step)
        assert torch.equal(labels[b.anchor], labels[b.other])
        assert not torch.any(b.anchor == b.other)
        assert not torch.any(labels[b.anchor] == labels[b.negative])
        seen_negative_classes |= set(labels[b.negative].tolist())
    assert seen_negative_classes == {0, 1, 2, 3}


def test_batches_depend_on_seed_and_step_only(labels):
    a, b = PairSampler(labels, "pairs", 16, 1.0, seed=4), PairSampler(labels, "pairs", 16, 1.0, seed=4)
    assert torch.equal(a.batch(9).anchor, b.batch(9).anchor)
    assert not torch.equal(a.batch(9).anchor, a.batch(10).anchor)


def test_shards_partition_the_global_batch_and_its_noise(labels):
    sampler = PairSampler(labels, "triplet", 12, 1.0, seed=0, noise_shape=(2,))
    batch = sampler.batch(3)
    shards = [batch.shard(r, 3) for r in range(3)]
    assert torch.equal(torch.cat([s.anchor for s in shards]), batch.anchor)
    assert torch.equal(torch.cat([s.negative for s in shards]), batch.negative)
    assert batch.noise.shape == (3, 12, 2)
    assert torch.equal(torch.cat([s.noise for s in shards], dim=1), batch.noise)


def test_positive_draws_cover_the_class_uniformly():
    labels = torch.tensor([0] * 4 + [1] * 4)
    sampler = PairSampler(labels, "triplet", 4000, 1.0, seed=0)
    b = sampler.batch(1)
    mask = b.anchor == 0
    counts = np.bincount(b.other[mask].numpy(), minlength=4)[1:4]
    expected = mask.sum().item() / 3
    assert counts.sum() == mask.sum().item()
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_digits_is_bundled_and_complete():
    ds = load_dataset(TrainConfig())
    assert ds.x.shape == (1797, 1, 8, 8) and ds.classes == 10
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0


def test_csv_data_with_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,label\n0.1,0.2,cat\n0.3,0.1,dog\n0.2,0.2,cat\n0.5,0.4,dog\n")
    ds = load_dataset(TrainConfig(data=str(path)))
    assert ds.x.shape == (4, 2) and ds.y.tolist() == [0, 1, 0, 1]


def test_csv_data_bad_cell_is_located(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,label\n0.1,0.2,a\n0.3,oops,b\n0.1,0.1,a\n")
    with pytest.raises(InputError) as err:
        load_dataset(TrainConfig(data=str(path)))
    assert (err.value.line, err.value.column) == (3, 2)


def test_npz_images_and_missing_arrays(tmp_path):
    good = tmp_path / "g.npz"
    np.savez(good, x=np.zeros((6, 4, 4)), y=np.array([0, 0, 0, 1, 1, 1]))
    assert load_dataset(TrainConfig(data=str(good))).x.shape == (6, 1, 4, 4)
    bad = tmp_path / "b.npz"
    np.savez(bad, features=np.zeros((6, 3)))
    with pytest.raises(InputError, match="label array"):
        load_dataset(TrainConfig(data=str(bad)))


def test_grid_expands_every_combination_with_typed_values():
    combos = expand_grid(TrainConfig(), parse_grid(["lr=0.1,0.01", "loss=triplet,contrastive", "normalize=false"]))
    assert [label for label, _ in combos] == [
        "lr=0.1-loss=triplet-normalize=False", "lr=0.1-loss=contrastive-normalize=False",
        "lr=0.01-loss=triplet-normalize=False", "lr=0.01-loss=contrastive-normalize=False"]
    assert combos[2][1].lr == 0.01 and combos[2][1].normalize is False


@pytest.mark.parametrize("spec", ["lr", "nope=1", "lr=abc", "loss=hinge", "steps=1.5"])
def test_bad_grid_specs_are_usage_errors(spec):
    with pytest.raises(UsageError):
        expand_grid(TrainConfig(), parse_grid([spec]))
