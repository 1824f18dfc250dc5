"""Writes tests/data/keras_siamese.csv and tests/data/keras_diverged.csv with Keras's own CSVLogger
(run with `pip install keras` next to torch, KERAS_BACKEND=torch).

A small Siamese network (one shared embedding tower, contrastive loss on the pair distance) trains on
seeded synthetic pairs. keras_siamese.csv: 30 epochs with a validation split, then 30 more resumed with
`append=True` and `initial_epoch`, so the file has one header and epochs 0-59. keras_diverged.csv: the
learning rate jumps to 1e6 at epoch 8 and TerminateOnNaN stops the run, so its last loss is not finite."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MARGIN = 1.0


def pairs(rng: np.random.Generator, n: int = 512, dim: int = 8):
    """Pairs of points from four Gaussian classes; label 1 when both come from the same class."""
    centres = rng.normal(size=(4, dim)) * 2.0
    a_cls, b_cls = rng.integers(0, 4, n), rng.integers(0, 4, n)
    a = centres[a_cls] + rng.normal(size=(n, dim))
    b = centres[b_cls] + rng.normal(size=(n, dim))
    return a.astype("float32"), b.astype("float32"), (a_cls == b_cls).astype("float32")


def contrastive(same, distance):
    same = ops.reshape(same, (-1,))
    distance = ops.reshape(distance, (-1,))
    return ops.mean(same * distance ** 2 + (1 - same) * ops.relu(MARGIN - distance) ** 2)


def siamese(dim: int = 8) -> keras.Model:
    tower = keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(4)])
    left, right = keras.Input((dim,)), keras.Input((dim,))
    diff = layers.Subtract()([tower(left), tower(right)])
    distance = layers.Lambda(lambda d: ops.sqrt(ops.sum(d ** 2, axis=1, keepdims=True) + 1e-9))(diff)
    model = keras.Model([left, right], distance)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=contrastive)
    return model


def converged_run(path: str) -> None:
    keras.utils.set_random_seed(0)
    a, b, same = pairs(np.random.default_rng(0))
    model = siamese()
    model.fit([a, b], same, epochs=30, batch_size=64, validation_split=0.25, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.CSVLogger(path)])
    model.fit([a, b], same, initial_epoch=30, epochs=60, batch_size=64, validation_split=0.25, shuffle=False,
              verbose=0, callbacks=[keras.callbacks.CSVLogger(path, append=True)])


def diverged_run(path: str) -> None:
    keras.utils.set_random_seed(1)
    a, b, same = pairs(np.random.default_rng(1))
    model = siamese()
    blow_up = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 1e6 if epoch >= 8 else 0.05)
    model.fit([a, b], same, epochs=40, batch_size=64, shuffle=False, verbose=0,
              callbacks=[blow_up, keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(path)])


if __name__ == "__main__":
    converged_run(os.path.join(HERE, "keras_siamese.csv"))
    diverged_run(os.path.join(HERE, "keras_diverged.csv"))
