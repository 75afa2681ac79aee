"""Which precision "auto" means on a device: bf16 autocast where the hardware computes bf16 natively.

Emulated bf16 is slower than float32 (bf16 autocast convolutions ran 2.6x slower than fp32 on an AVX-512
CPU without AVX512-BF16), so "auto" checks for native support instead of assuming it on every CPU.
The one place that decides; inference (`Stylizer`) and training (`LoopConfig.precision`) both ask here.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

# /proc/cpuinfo flags of native bf16 arithmetic: x86 AVX512-BF16 or AMX-BF16; Arm FEAT_BF16.
X86_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
ARM_BF16_FLAGS = frozenset({"bf16"})


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (x86 `flags`, Arm `Features`); empty where unknown."""
    try:
        return cpuinfo_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def cpuinfo_flags(text: str) -> frozenset[str]:
    """The feature flags in /proc/cpuinfo text: the first `flags` (x86) or `Features` (Arm) line."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX on x86, BF16 on Arm)."""
    flags = _cpu_flags()
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return bool(flags & ARM_BF16_FLAGS)
    if flags & X86_BF16_FLAGS:
        return True
    capability = _cpu_capability().upper()  # e.g. 'AVX512'; an AMX/BF16 level where torch reports one
    return "AMX" in capability or "BF16" in capability


def _cpu_capability() -> str:
    """The instruction set level torch's CPU kernels were dispatched to ('DEFAULT', 'AVX2', 'AVX512', ...)."""
    return torch.backends.cpu.get_cpu_capability()


def auto_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype precision "auto" means on `device`.

    Args:
        device: the device the model runs on.

    Returns:
        torch.bfloat16 on CUDA GPUs that support it and on CPUs with native bf16; None (plain float32)
        elsewhere, including other device types.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None
