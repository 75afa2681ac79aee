"""Data-parallel training with two CPU processes (gloo), as torchrun would start them.

Each rank runs the unchanged Trainer; the test checks that both end with bit-identical weights
(although they start from different random decoders and see different batches) and that only rank 0
writes files. A second test runs the real CLI under torchrun.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from stylemix.models.io import load_tensors
from stylemix.training.checkpoint import read_metadata

pytestmark = pytest.mark.slow  # two processes each, one of them through torchrun

WORKER = r"""
import os, sys
import torch
from stylemix.models.io import save_tensors, to_dict
from stylemix.training.adain_task import AdaINTask
from stylemix.training.cli import build_config, build_model
from stylemix.training.trainer import Trainer

rank, config, out = int(os.environ["RANK"]), sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
cfg = build_config(config, [])
torch.manual_seed(100 + rank)  # a different random decoder per rank: rank 0's must win
model = build_model(cfg, log=lambda *a: None)
task = AdaINTask(model, cfg.data, cfg.loss, rank=rank, channels_last=cfg.loop.channels_last)
first = task.batches.batch(0)[0]
step = Trainer(task, cfg.loop, os.path.join(out, f"run{rank}"), to_dict(cfg)).fit()
state = {f"model.{k}": v for k, v in model.state_dict().items()}
save_tensors(os.path.join(out, f"rank{rank}.safetensors"), {**state, "first_batch": first}, {"step": str(step)})
torch.distributed.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def test_two_ranks_end_with_identical_weights_and_only_rank0_writes(run_setup, tmp_path):
    config, _ = run_setup
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(config), str(tmp_path)],
                              env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    w0, w1 = load_tensors(tmp_path / "rank0.safetensors"), load_tensors(tmp_path / "rank1.safetensors")
    assert not torch.equal(w0.pop("first_batch"), w1.pop("first_batch"))  # each rank its own data stream
    assert all(torch.equal(w0[k], w1[k]) for k in w0), [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not (tmp_path / "run1").exists()  # rank 1 wrote nothing
    ckpt = load_tensors(tmp_path / "run0" / "checkpoint.safetensors")
    assert read_metadata(tmp_path / "run0" / "checkpoint.safetensors")["step"] == "6"
    assert all(torch.equal(ckpt[k], w0[k]) for k in w0)
    torch.manual_seed(100)  # and training moved rank 0's decoder away from its initialisation
    from stylemix.training.cli import build_config, build_model
    init = build_model(build_config(str(config), []), log=lambda *a: None).state_dict()
    assert not torch.equal(init["decoder.convs.0.weight"], w0["model.decoder.convs.0.weight"])


def test_cli_runs_unchanged_under_torchrun(run_setup, tmp_path):
    config, _ = run_setup
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}",
           "-m", "stylemix.training", "--config", str(config), "--out", str(run), "--set", "loop.steps=4"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # one writer: no duplicated lines
    assert read_metadata(run / "checkpoint.safetensors")["step"] == "4"
    assert result.stdout.count("stopped at step 4") == 1
