"""LengthGroupedSampler under simulated DDP ranks, and the exact-once ShardedEvalSampler."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainlab.datasets import LengthGroupedSampler, ShardedEvalSampler

# A long-tailed length distribution, like tokenized questions.
LENGTHS = np.random.default_rng(0).lognormal(mean=4.5, sigma=0.8, size=1001).astype(int).clip(4, 512).tolist()


def _ranks(world_size=2, **options):
    options = {"batch_size": 8, "seed": 3, "mega_batch_mult": 10, **options}
    return [
        LengthGroupedSampler(LENGTHS, num_replicas=world_size, rank=rank, **options)
        for rank in range(world_size)
    ]


def _padding(batches):
    return sum(
        max(LENGTHS[i] for i in batch) * len(batch) - sum(LENGTHS[i] for i in batch) for batch in batches
    )


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_get_disjoint_equal_numbers_of_batches_that_cover_the_data(drop_last):
    samplers = _ranks(drop_last=drop_last)
    batches = [sampler.batches() for sampler in samplers]
    assert len(batches[0]) == len(batches[1]) == (62 if drop_last else 63)
    seen = [i for rank_batches in batches for batch in rank_batches for i in batch]
    assert len(seen) == len(set(seen))  # no sample on two ranks, nor twice on one
    assert len(seen) == (992 if drop_last else 1001)
    for sampler, rank_batches in zip(samplers, batches):
        assert len(sampler) == len(list(sampler)) == sum(map(len, rank_batches))
        assert all(len(batch) == 8 for batch in rank_batches[:-1])


def test_each_step_deals_one_length_group_to_all_ranks():
    rank0, rank1 = (sampler.batches() for sampler in _ranks())
    for first, second in zip(rank0, rank1):
        # One length-sorted global batch dealt alternately: the ranks' lengths interleave.
        a = sorted((LENGTHS[i] for i in first), reverse=True)
        b = sorted((LENGTHS[i] for i in second), reverse=True)
        assert all(a[k] >= b[k] for k in range(len(b)))
        assert all(b[k] >= a[k + 1] for k in range(len(a) - 1))


def test_length_grouping_cuts_padding_against_random_batches():
    grouped = _ranks(world_size=1)[0].batches()
    permutation = np.random.default_rng(0).permutation(len(LENGTHS)).tolist()
    random_batches = [permutation[i : i + 8] for i in range(0, len(permutation), 8)]
    assert _padding(grouped) < 0.3 * _padding(random_batches)


def test_order_is_a_pure_function_of_seed_and_epoch():
    first, second = _ranks()[0], _ranks()[0]
    first.set_epoch(4)
    second.set_epoch(4)
    assert list(first) == list(second)
    second.set_epoch(5)
    assert list(first) != list(second)
    assert _ranks(seed=4)[0].batches() != _ranks()[0].batches()


def test_resuming_skips_exactly_the_batches_already_seen():
    sampler = _ranks()[1]
    sampler.set_epoch(2)
    full = sampler.batches()
    sampler.set_epoch(2, start_batch=10)
    assert list(sampler) == [i for batch in full[10:] for i in batch]
    assert len(sampler) == sum(map(len, full[10:]))


def test_a_dataloader_cuts_the_stream_into_the_samplers_batches():
    sampler = _ranks()[0]
    loader = DataLoader(torch.arange(len(LENGTHS)), batch_size=8, sampler=sampler)
    assert [batch.tolist() for batch in loader] == sampler.batches()


def test_a_final_step_smaller_than_the_world_still_gives_every_rank_a_batch():
    lengths = list(range(1, 18))  # 17 samples, 4 ranks x 4: one left over for the last step
    samplers = [LengthGroupedSampler(lengths, 4, num_replicas=4, rank=rank) for rank in range(4)]
    batches = [sampler.batches() for sampler in samplers]
    assert [len(b) for b in batches] == [2, 2, 2, 2] and all(len(b[-1]) == 1 for b in batches)
    assert sorted({i for rank_batches in batches for batch in rank_batches for i in batch}) == list(range(17))


def test_sharded_eval_sampler_sees_each_sample_exactly_once():
    shards = [list(ShardedEvalSampler(13, num_replicas=2, rank=rank)) for rank in range(2)]
    assert [len(shard) for shard in shards] == [7, 6]
    assert shards[0] + shards[1] == list(range(13))
    assert [len(ShardedEvalSampler(2, 4, rank)) for rank in range(4)] == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="rank 2"):
        ShardedEvalSampler(13, num_replicas=2, rank=2)
