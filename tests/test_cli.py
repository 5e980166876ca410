"""The `embsum` entry point itself."""

import torch.distributed as dist

from embsum_hf.cli import end_distributed


def test_end_distributed_destroys_the_process_group(tmp_path):
    # what `accelerate launch` leaves a rank with; exiting with it alive can SIGABRT in gloo's threads
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
