import pytest


def _cuda_usable() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_usable():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
