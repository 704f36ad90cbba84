"""Shared test settings and the one trained model of the test run."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_ood.models import SmallCNN


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests run tiny models: one torch thread is faster than several, and on a
    machine busy with other jobs more threads were measured up to 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_images():
    """Digits as ``(N, 1, 8, 8)`` float32 images in [0, 1]: 1200 to train on, 597 held out.

    Returns ``(X_train, y_train, X_test, y_test)``.
    """
    data = load_digits()
    X = (data.images / 16.0).astype(np.float32)[:, None]
    return X[:1200], data.target[:1200], X[1200:], data.target[1200:]


@pytest.fixture(scope="session")
def digits_net(digits_images, one_torch_thread):
    """The test run's one trained model: a SmallCNN (width 8), 4 seeded Adam epochs.

    Trained once per session; tests must not modify it (they check that the
    library leaves models as they were).
    """
    X_train, y_train, X_test, y_test = digits_images
    torch.manual_seed(0)
    net = SmallCNN(10, width=8)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    X_t, y_t = torch.from_numpy(X_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(4):
        for batch in torch.randperm(len(X_t), generator=generator).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X_t[batch]), y_t[batch])
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
    assert accuracy > 0.8
    return net
