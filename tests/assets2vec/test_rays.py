"""Multi-asset ray table and batcher: held-out split, nerfstudio rays, surface distances, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assets2vec.data.rays import AssetBatcher, RayBatcher, StreamedRayTable, build_ray_table, holdout_views, to_ray_bundle
from render_core.dataset import RenderedDataset


def test_holdout_is_deterministic_and_per_asset():
    a = holdout_views("chair-s0-00000", 18, 2, seed=0)
    assert len(a) == 2 and np.array_equal(a, holdout_views("chair-s0-00000", 18, 2, seed=0))
    picks = {tuple(holdout_views(f"asset-{i}", 18, 2, seed=0)) for i in range(20)}
    assert len(picks) > 5  # different assets hold out different views
    with pytest.raises(ValueError):
        holdout_views("x", 6, 6)


def test_train_and_heldout_partition_the_views(small_dataset):
    ds = RenderedDataset(small_dataset)
    train = build_ray_table(ds, split="train", n_holdout=2)
    held = build_ray_table(ds, split="heldout", n_holdout=2)
    px = ds.image_size**2
    assert len(train) == len(ds) * 4 * px and len(held) == len(ds) * 2 * px
    for a, asset_id in enumerate(ds.asset_ids):
        tv = set(train.view_index[train.asset_index == a].tolist())
        hv = set(held.view_index[held.asset_index == a].tolist())
        assert not tv & hv and tv | hv == set(range(6))
        assert hv == set(holdout_views(asset_id, 6, 2, 0).tolist())


def test_rays_hit_the_surface_at_surface_t(small_dataset):
    ds = RenderedDataset(small_dataset)
    table = build_ray_table(ds, asset_ids=ds.asset_ids[:2], split="all")
    torch.testing.assert_close(table.directions.norm(dim=-1), torch.ones(len(table)), atol=1e-5, rtol=0)
    hit = table.surface_t > 0
    assert (hit <= (table.alpha > 0)).all() and hit.any()  # a ray through the pixel centre that hits implies coverage
    # Rebuild the z-depth from the ray and compare with the stored depth map.
    views = ds.load(ds.asset_ids[0])
    n = ds.image_size**2
    sel = slice(0, n)  # view 0 of asset 0
    pts = table.origins[sel] + table.directions[sel] * table.surface_t[sel, None]
    w2c = np.linalg.inv(views.c2w[0])
    cam = pts.numpy() @ w2c[:3, :3].T + w2c[:3, 3]
    depth = views.depth[0].reshape(-1)
    m = depth > 0
    np.testing.assert_allclose(-cam[m, 2], depth[m], atol=1e-4)
    np.testing.assert_array_equal(table.rgb[sel].numpy(), views.rgb[0].reshape(-1, 3))


def test_batcher_is_seeded_and_resumable(small_dataset):
    ds = RenderedDataset(small_dataset)
    table = build_ray_table(ds)
    a = RayBatcher(table, 256, torch.Generator().manual_seed(0), foreground_fraction=0.75)
    b = RayBatcher(table, 256, torch.Generator().manual_seed(0), foreground_fraction=0.75)
    first = [a.next_indices() for _ in range(3)]
    assert all(torch.equal(x, b.next_indices()) for x in first)
    assert (table.alpha[first[0]] > 0).float().mean() >= 0.74
    state = a.state_dict()
    c = RayBatcher(table, 256, torch.Generator().manual_seed(123), foreground_fraction=0.75)
    c.load_state_dict(state)
    assert torch.equal(a.next_indices(), c.next_indices())
    other = RayBatcher(table, 256, torch.Generator().manual_seed(1))
    assert not torch.equal(first[0], other.next_indices())


def test_batcher_covers_every_ray_each_epoch(small_dataset):
    ds = RenderedDataset(small_dataset)
    table = build_ray_table(ds, asset_ids=ds.asset_ids[:1])
    batcher = RayBatcher(table, 100, torch.Generator().manual_seed(0))
    seen = torch.cat([batcher.next_indices() for _ in range(len(table) // 100)])
    assert len(torch.unique(seen)) == len(seen) == (len(table) // 100) * 100


def test_ray_bundle_carries_asset_index(small_dataset):
    ds = RenderedDataset(small_dataset)
    batch = next(iter(RayBatcher(build_ray_table(ds), 64, torch.Generator().manual_seed(0))))
    bundle = to_ray_bundle(batch)
    assert bundle.metadata["asset_index"].shape == (64, 1)
    assert batch["rgb"].dtype == torch.float32 and batch["rgb"].max() <= 1.0


def test_bad_inputs(small_dataset):
    ds = RenderedDataset(small_dataset)
    with pytest.raises(ValueError, match="split"):
        build_ray_table(ds, split="test")
    with pytest.raises(ValueError, match="no assets"):
        build_ray_table(ds, asset_ids=[])
    with pytest.raises(KeyError, match="not in dataset"):
        build_ray_table(ds, asset_ids=["nope"])
    with pytest.raises(ValueError, match="batch size"):
        RayBatcher(build_ray_table(ds, asset_ids=ds.asset_ids[:1]), 0, torch.Generator())


def test_streamed_table_gives_the_in_memory_batches(small_dataset):
    """Streamed rays are the in-memory table's rays, row for row, with only a few assets decoded at a time."""
    ds = RenderedDataset(small_dataset)
    memory = build_ray_table(ds, split="train", n_holdout=2)
    streamed = StreamedRayTable(ds, split="train", n_holdout=2, cache_assets=2)
    assert len(streamed) == len(memory) and streamed.rays_per_asset == 4 * ds.image_size**2
    idx = torch.randint(len(memory), (3000,), generator=torch.Generator().manual_seed(0))
    a, b = memory.select(idx), streamed.select(idx)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(memory.assets_of(idx), streamed.assets_of(idx))
    assert len(streamed._cache) <= 2 and streamed.loads >= len(ds)
    for split, edges in ((False, False), (True, False), (True, True)):
        assert all(torch.equal(x, y) for x, y in zip(memory.asset_pools(3, split, edges), streamed.asset_pools(3, split, edges)))
    # The batcher draws the same batches from either table.
    batchers = [AssetBatcher(t, 3, 100, torch.Generator().manual_seed(0), foreground_fraction=0.5, edge_fraction=0.25) for t in (memory, streamed)]
    for _ in range(5):
        i, j = (bt.next_indices() for bt in batchers)
        assert torch.equal(i, j)
        assert all(torch.equal(x, y) for x, y in zip(memory.select(i).values(), streamed.select(j).values()))


def test_streamed_table_bad_input(small_dataset):
    ds = RenderedDataset(small_dataset)
    with pytest.raises(KeyError, match="not in dataset"):
        StreamedRayTable(ds, asset_ids=["nope"])
    with pytest.raises(ValueError, match="same .non-zero. number of views"):
        StreamedRayTable(ds, asset_ids=ds.asset_ids[:2], views={ds.asset_ids[0]: [0, 1], ds.asset_ids[1]: [0]})
    with pytest.raises(ValueError, match="at least one asset"):
        StreamedRayTable(ds, cache_assets=0)



def test_worker_slices_join_into_the_batch_and_read_only_their_assets(small_dataset):
    """Data-parallel workers draw the same batch; each draws (and a streamed table reads) only its slice's assets."""
    ds = RenderedDataset(small_dataset)
    n_assets, per_asset = 4, 50
    whole = AssetBatcher(build_ray_table(ds, split="train", n_holdout=2), n_assets, per_asset,
                         torch.Generator().manual_seed(3), foreground_fraction=0.5)
    tables = [StreamedRayTable(ds, split="train", n_holdout=2, cache_assets=1) for _ in range(2)]
    workers = [AssetBatcher(t, n_assets, per_asset, torch.Generator().manual_seed(3), foreground_fraction=0.5) for t in tables]
    bounds = [(0, 90), (90, 200)]  # a slice boundary inside the second asset
    for _ in range(3):
        full = whole.next_indices()
        parts = [w.next_indices(lo, hi) for w, (lo, hi) in zip(workers, bounds)]
        assert len(full) == whole.batch_size == 200 and torch.equal(torch.cat(parts), full)
        assert all(torch.equal(w.batch_assets(), whole.batch_assets()) for w in workers)
        assert len(whole.batch_assets()) == n_assets
    # Worker 0 read assets 1-2 of each batch, worker 1 assets 2-4 (one cached asset): never the whole batch.
    for t, per_batch in zip(tables, (2, 3)):
        assert t.loads <= 3 * per_batch < 3 * n_assets


def test_edge_pool_is_the_empty_pixels_near_the_object(small_dataset):
    """Edge rays: empty, and within EDGE_RADIUS pixels of a covered one; the batch takes its share from them."""
    from assets2vec.data.rays import EDGE_RADIUS

    ds = RenderedDataset(small_dataset)
    table = build_ray_table(ds, split="train", n_holdout=2)
    covered, near, far = table.asset_pools(1, True, True)
    rows = torch.cat([covered, near, far]).sort().values
    assert torch.equal(rows, torch.cat(table.asset_pools(1, False)))  # a partition of the asset's rays
    assert (table.alpha[covered] > 0).all() and (table.alpha[near] == 0).all() and (table.alpha[far] == 0).all()
    assert 0 < len(near) < len(far)
    S = ds.image_size
    start = int(rows[0])
    fg = (table.alpha[rows] > 0).view(-1, S, S).numpy()
    for r, expect in ((near, True), (far, False)):
        local = (r - start).numpy()
        v, i, j = local // (S * S), (local // S) % S, local % S
        for vv, ii, jj in list(zip(v, i, j))[:200]:
            window = fg[vv, max(ii - EDGE_RADIUS, 0): ii + EDGE_RADIUS + 1, max(jj - EDGE_RADIUS, 0): jj + EDGE_RADIUS + 1]
            assert window.any() == expect
    batcher = AssetBatcher(table, 1, 400, torch.Generator().manual_seed(0), foreground_fraction=0.5, edge_fraction=0.25)
    idx = batcher.next_indices()
    a = int(batcher.batch_assets()[0])
    _, near_a, _ = table.asset_pools(a, True, True)
    assert int(torch.isin(idx, near_a).sum()) == 100
    with pytest.raises(ValueError, match="edge fraction must be in"):
        AssetBatcher(table, 1, 400, torch.Generator(), foreground_fraction=0.5, edge_fraction=0.6)
    with pytest.raises(ValueError, match="needs a foreground fraction"):
        AssetBatcher(table, 1, 400, torch.Generator(), edge_fraction=0.2)
