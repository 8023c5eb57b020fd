"""Two processes on gloo (DistributedDataParallel, sharded data) train exactly what one
process with the same global batch trains."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp
from test_train_support import SquareClips, ddp_worker, tiny_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    from aid_model.aid import trainable_parameters
    from aid_model.train import build_config, train

    steps = 3
    # 2 processes × batch 1 = 1 process × batch 2; dataset of 8: 4 batches an epoch.
    # Adam's eps 1e-6 rather than 1e-8: SVD's own image-token key projection (attn2.to_k)
    # has a true gradient of exactly zero (softmax over one key), so it receives rounding
    # noise only; with eps 1e-8 Adam turns that noise into lr-sized steps, which differ
    # between the two float summation orders. Parameters with real gradients are unaffected.
    common = {"optim": {"max_steps": steps, "warmup_steps": 1, "eps": 1e-6}}
    ddp_values = tiny_config(tmp_path / "ddp", loader={"batch_size": 1}, **common)
    mp.spawn(ddp_worker, args=(2, _free_port(), ddp_values, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)

    single = train(build_config(tiny_config(tmp_path / "single", loader={"batch_size": 2},
                                            **common)), dataset=SquareClips())
    single_parameters = trainable_parameters(single.trainer.model)

    # Both ranks hold bit-identical weights (DDP averages the gradients before the step).
    assert rank0["parameters"].keys() == rank1["parameters"].keys() == single_parameters.keys()
    for name, tensor in rank0["parameters"].items():
        assert torch.equal(tensor, rank1["parameters"][name]), name
    assert rank0["losses"] == rank1["losses"]  # the logged loss is the mean over ranks

    # And the same result as one process: same samples, same per-sample noise; only the
    # order of float sums differs.
    assert len(rank0["losses"]) == steps
    torch.testing.assert_close(torch.tensor(rank0["losses"]), torch.tensor(single.losses),
                               rtol=1e-5, atol=1e-6)
    for name, parameter in single_parameters.items():
        torch.testing.assert_close(rank0["parameters"][name], parameter.detach(),
                                   rtol=1e-4, atol=1e-5, msg=name)
    # Not trivially equal: training moved the zero-initialised MCondition projections.
    opened = [t for n, t in rank0["parameters"].items() if ".to_out_mcondition." in n]
    assert opened and all(t.abs().sum() > 0 for t in opened)
    # Only rank 0 wrote the run's files.
    assert (tmp_path / "ddp" / "aid_final.safetensors").is_file()
    assert (tmp_path / "ddp" / "log.jsonl").read_text().count("\n") == steps
