"""Precision 'auto': bf16 autocast only where the device computes bf16 natively, the same answer for
inference and training; explicit 'fp32'/'bf16' always win. CPU flags are monkeypatched (conftest pins
'no native bf16' for every other test)."""
from __future__ import annotations

import types

import pytest
import torch

from stylemix.inference import Stylizer
from stylemix.inference.cli import build_parser
from stylemix.models import precision
from stylemix.training.trainer import LoopConfig, Trainer

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni {extra}
bugs\t\t: spectre_v1
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes crc32 atomics {extra}
CPU implementer\t: 0x41
"""


def cpu(monkeypatch, cpuinfo: str, machine: str = "x86_64", capability: str = "AVX512") -> None:
    monkeypatch.setattr(precision, "_cpu_flags", lambda: precision.cpuinfo_flags(cpuinfo))
    monkeypatch.setattr(precision, "_cpu_capability", lambda: capability)
    monkeypatch.setattr(precision.platform, "machine", lambda: machine)


def test_cpuinfo_flags_reads_x86_and_arm_lines():
    assert {"avx512f", "avx512_bf16"} <= precision.cpuinfo_flags(X86_CPUINFO.format(extra="avx512_bf16"))
    assert "bf16" in precision.cpuinfo_flags(ARM_CPUINFO.format(extra="bf16"))
    assert precision.cpuinfo_flags("processor : 0\n") == frozenset()


@pytest.mark.parametrize("cpuinfo, machine, capability, expected", [
    (X86_CPUINFO.format(extra=""), "x86_64", "AVX512", None),  # AVX-512 without BF16: emulated, slower
    (X86_CPUINFO.format(extra=""), "x86_64", "AVX2", None),
    (X86_CPUINFO.format(extra="avx512_bf16"), "x86_64", "AVX512", torch.bfloat16),
    (X86_CPUINFO.format(extra="amx_bf16 amx_tile"), "x86_64", "AVX512", torch.bfloat16),
    (X86_CPUINFO.format(extra=""), "x86_64", "AMX", torch.bfloat16),  # torch reports an AMX level
    (ARM_CPUINFO.format(extra="bf16 i8mm"), "aarch64", "SVE256", torch.bfloat16),
    (ARM_CPUINFO.format(extra=""), "aarch64", "DEFAULT", None),
    ("", "arm64", "DEFAULT", None),  # no /proc/cpuinfo (macOS): fp32
])
def test_auto_dtype_on_cpu_follows_native_bf16(monkeypatch, cpuinfo, machine, capability, expected):
    cpu(monkeypatch, cpuinfo, machine, capability)
    assert precision.auto_dtype("cpu") == expected


@pytest.mark.parametrize("bf16_supported, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_dtype_on_cuda_asks_the_gpu(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert precision.auto_dtype("cuda") == expected
    assert precision.auto_dtype(torch.device("meta")) is None  # other device types: fp32


@pytest.mark.parametrize("native", [False, True])
def test_stylizer_auto_default_and_explicit_override(monkeypatch, tiny_model, native):
    cpu(monkeypatch, X86_CPUINFO.format(extra="avx512_bf16" if native else ""))
    assert Stylizer(tiny_model).dtype == ("bf16" if native else "fp32")
    assert Stylizer(tiny_model, dtype="fp32").dtype == "fp32"
    assert Stylizer(tiny_model, dtype="bf16").dtype == "bf16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        Stylizer(tiny_model, dtype="fp16")


@pytest.mark.parametrize("native", [False, True])
def test_training_auto_precision_uses_the_same_decision(monkeypatch, native):
    cpu(monkeypatch, X86_CPUINFO.format(extra="amx_bf16" if native else ""))
    task = types.SimpleNamespace(model=torch.nn.Linear(2, 2))
    amp = {p: Trainer(task, LoopConfig(precision=p, channels_last=False), "/nonexistent", {}).amp_dtype
           for p in ("auto", "fp32", "bf16")}
    assert amp == {"auto": torch.bfloat16 if native else None, "fp32": None, "bf16": torch.bfloat16}


@pytest.mark.parametrize("command", [["stylize", "c.png", "-s", "a.png", "-o", "o.png"],
                                     ["grid", "c.png", "-s", "a.png", "-s", "b.png", "-o", "o.png"],
                                     ["sheet", "c.png", "-o", "o.png"]])
def test_cli_dtype_defaults_to_auto(command):
    parser = build_parser()
    assert parser.parse_args(command).dtype == "auto"
    assert parser.parse_args([*command, "--dtype", "fp32"]).dtype == "fp32"
