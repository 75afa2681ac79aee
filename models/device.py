"""Device names -> a usable torch.device, checked once, in one place: the API (`Stylizer`, `load_model`,
`optimize`), every CLI command's --device, `stylize_dataset` and the trainer all ask here, so 'cuda' without a
GPU or a typo fails with one sentence saying what would work instead of a driver traceback halfway through a
run. Under torchrun (LOCAL_RANK set) a bare 'cuda' means this process's GPU, cuda:LOCAL_RANK.
"""
from __future__ import annotations

import os
from typing import Mapping

import torch

KNOWN = "cpu, cuda, cuda:N or mps"


def local_device(device: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The name of this process's device, not checked: `device` if given, else one GPU per process when CUDA
    is present, else cpu; under torchrun (LOCAL_RANK in `env`, default os.environ) no device or a bare 'cuda'
    is cuda:LOCAL_RANK, while an explicit index is kept."""
    env = os.environ if env is None else env
    local = env.get("LOCAL_RANK", "0")
    if device is None:
        return f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    return f"cuda:{local}" if device == "cuda" and "LOCAL_RANK" in env else device


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device that exists on this machine (a bare 'cuda' under torchrun: see `local_device`).

    Args:
        device: 'cpu', 'cuda', 'cuda:1', 'mps', or a torch.device.

    Returns:
        The torch.device.

    Raises:
        ValueError naming the device and what is available instead.
    """
    if str(device) == "cuda":
        device = local_device("cuda")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}: use {KNOWN}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} needs a CUDA GPU, but torch finds none on this machine "
                             f"(no GPU, no driver, or a CPU-only torch build); use 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r} does not exist: this machine has {count} CUDA GPU(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} needs Apple's Metal (MPS), which is not available here; use 'cpu'")
    elif dev.type not in ("cpu", "meta"):
        backend = getattr(torch, dev.type, None)  # torch.xpu, torch.hpu, ... where this build has them
        if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
            raise ValueError(f"device {str(device)!r} is not available on this machine; use {KNOWN}")
    return dev
