"""mirkit.shard_from_env: the same rules as `mirkit tag --shard auto`."""

import pytest

import mirkit


def test_shard_from_env():
    assert mirkit.shard_from_env({}) == (0, 1)
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert mirkit.shard_from_env(slurm) == (2, 4)
    assert mirkit.shard_from_env({"JOB_COMPLETION_INDEX": "5", "MIRKIT_SHARD_COUNT": "8"}) == (5, 8)
    with pytest.raises(mirkit.ParameterError, match="MIRKIT_SHARD_COUNT"):
        mirkit.shard_from_env({"JOB_COMPLETION_INDEX": "5"})
    with pytest.raises(mirkit.ParameterError, match="out of range"):
        mirkit.shard_from_env({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"})
