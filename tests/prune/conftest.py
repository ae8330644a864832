import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def keras():
    import keras as k

    k.utils.set_random_seed(0)
    return k
