"""The field's contract: density ignores the texture code; grouping codes is exact."""

from __future__ import annotations

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from assets2vec.configs import preset
from assets2vec.field_components.code_triplanes import group_codes
from assets2vec.train import build_model


def _bundle(n, shape, texture):
    g = torch.Generator().manual_seed(0)
    o = torch.randn(n, 3, generator=g)
    o = 2.6 * o / o.norm(dim=-1, keepdim=True)
    d = -o / o.norm(dim=-1, keepdim=True)
    return RayBundle(origins=o, directions=d, pixel_area=torch.ones(n, 1), metadata={"shape_code": shape, "texture_code": texture})


def test_density_has_exactly_zero_gradient_wrt_texture_code():
    for name in ("fast", "codenerf"):
        model = build_model(preset(name), 4)
        model.eval()
        model.grid_sampler.density_threshold = -1.0  # untrained: evaluate everywhere
        c = model.config
        shape = torch.randn(16, c.shape_dim, requires_grad=True)
        texture = torch.randn(16, c.texture_dim, requires_grad=True)
        out = model(_bundle(16, shape, texture))
        # Accumulation and depth come from density alone.
        g_tex = torch.autograd.grad(out["accumulation"].sum() + out["depth"].sum(), [texture], allow_unused=True)[0]
        assert g_tex is None or torch.count_nonzero(g_tex) == 0
        g_shape = torch.autograd.grad(out["accumulation"].sum(), [shape], allow_unused=True)[0]
        assert g_shape is not None and torch.count_nonzero(g_shape) > 0
        g_rgb = torch.autograd.grad(out["rgb"].sum(), [texture])[0]
        assert torch.count_nonzero(g_rgb) > 0, name


def test_group_codes_is_exact_and_differentiable():
    codes = torch.randn(3, 5, requires_grad=True)
    rows = codes[torch.tensor([2, 0, 2, 1, 0])]
    unique, inverse = group_codes(rows)
    assert torch.equal(unique[inverse], rows)
    unique.sum().backward()
    assert torch.equal(codes.grad, torch.ones_like(codes))


def test_cross_correlation_penalty_removes_linear_leakage_between_halves():
    from assets2vec.field_components.codes import cross_correlation

    g = torch.Generator().manual_seed(0)
    s = torch.randn(200, 4, generator=g)
    t = torch.cat([s[:, :1] * 2 + 0.1 * torch.randn(200, 1, generator=g), torch.randn(200, 3, generator=g)], 1)
    c = cross_correlation(s, t)
    assert c.shape == (4, 4) and c[0, 0] > 0.99 and c[1:, 1:].abs().max() < 0.3
    # Minimising the penalty alone decorrelates the halves.
    t = t.clone().requires_grad_(True)
    opt = torch.optim.Adam([t], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        cross_correlation(s, t).square().sum().backward()
        opt.step()
    assert cross_correlation(s, t.detach()).abs().max() < 0.05


def test_decorrelation_loss_is_part_of_training_loss():
    model = build_model(preset("fast"), 6)
    outputs = {"rgb": torch.zeros(4, 3), "code_norm_sum": torch.tensor(4.0), "accumulation": torch.zeros(4, 1),
               "depth": torch.zeros(4, 1)}
    batch = {"rgb": torch.zeros(4, 3), "alpha": torch.zeros(4), "surface_t": torch.zeros(4)}
    loss = model.get_loss_dict(outputs, batch)
    assert loss["decorrelation_loss"] > 0
    loss["decorrelation_loss"].backward()
    assert model.codes.texture.weight.grad.abs().sum() > 0


def test_kernel_dependence_sees_a_non_linear_link_the_correlation_misses():
    from assets2vec.field_components.codes import cross_correlation
    from assets2vec.field_components.dependence import debiased_cka, rbf_grams

    g = torch.Generator().manual_seed(0)
    s = torch.randn(300, 4, generator=g)
    linked = torch.cos(2 * s) + 0.3 * torch.randn(300, 4, generator=g)  # uncorrelated (even in s), not independent
    free = torch.randn(300, 4, generator=g)
    assert cross_correlation(s, linked).abs().max() < 0.25
    assert debiased_cka(rbf_grams(s)[0], rbf_grams(linked)[0]) > 0.08
    assert abs(float(debiased_cka(rbf_grams(s)[0], rbf_grams(free)[0]))) < 0.01  # debiased: about 0 when independent
    assert abs(float(debiased_cka(rbf_grams(s)[0], rbf_grams(5 * s + 1)[0])) - 1) < 1e-4  # columns are standardised
    wide = torch.randn(400, 32, generator=g)
    assert abs(float(debiased_cka(rbf_grams(wide)[0], rbf_grams(torch.randn(400, 32, generator=g))[0]))) < 0.02


def test_shape_clusters_are_deterministic_and_refit_on_schedule():
    from assets2vec.field_components.dependence import ShapeClusters

    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(50, 3, generator=g) + 6 * i for i in range(4)])
    a, b = ShapeClusters(3, ks=(4, 8), refresh=10), ShapeClusters(3, ks=(4, 8), refresh=10)
    a.refit_if_due(codes, 0)
    b.refit_if_due(codes, 0)
    assert torch.equal(a.centroids, b.centroids)
    lab = a.labels(codes)
    assert lab.shape == (2, 200) and len(torch.unique(lab[0])) == 4
    assert all(len(torch.unique(lab[0][50 * i:50 * (i + 1)])) == 1 for i in range(4))  # the 4 groups found
    before = a.centroids.clone()
    a.refit_if_due(codes + 100, 9)  # not due yet
    assert torch.equal(a.centroids, before)
    a.refit_if_due(codes + 100, 10)
    assert not torch.equal(a.centroids, before)
    tiny = ShapeClusters(3, ks=(4, 8))
    tiny.refit_if_due(codes[:5], 0)  # fewer assets than clusters: still a partition of them
    assert tiny.labels(codes[:5]).max() < 5


def test_independence_penalty_on_texture_codes_alone_hides_the_family_from_an_rbf_classifier():
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    from assets2vec.field_components.dependence import ShapeClusters, cluster_dependence

    g = torch.Generator().manual_seed(0)
    family = torch.arange(200) % 4
    shape = torch.nn.functional.one_hot(family, 4).float() * 3 + 0.3 * torch.randn(200, 4, generator=g)
    # Texture codes that mark the family in other dimensions, as a leaking run's do.
    texture = torch.nn.functional.one_hot((family + 1) % 4, 4).float() * 2 + 0.5 * torch.randn(200, 4, generator=g)
    texture = texture.requires_grad_(True)
    clusters = ShapeClusters(4)
    clusters.refit_if_due(shape, 0)
    labels = clusters.labels(shape)

    def read(t):
        return cross_val_score(SVC(), t.detach().numpy(), family.numpy(), cv=5).mean()

    before = read(texture)
    opt = torch.optim.Adam([texture], lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        cluster_dependence(labels, texture).backward()
        opt.step()
    assert before > 0.9 and read(texture) < 0.4, (before, read(texture))


def test_independence_loss_moves_only_texture_codes_and_subsamples_deterministically():
    config = preset("fast")
    config.model.code_decorrelation, config.model.code_independence, config.model.independence_assets = 0.0, 0.1, 8
    values = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(config, 12, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():  # texture codes that copy the shape codes: a dependence to penalise
            model.codes.texture.weight.copy_(3 * model.codes.shape.weight)
        for callback in model.get_training_callbacks(None):  # as a nerfstudio trainer does before step 0
            callback.run_callback_at_location(0, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        assert model.train_step == 0
        outputs = {"rgb": torch.zeros(4, 3), "code_norm_sum": torch.tensor(4.0), "accumulation": torch.zeros(4, 1),
                   "depth": torch.zeros(4, 1)}
        batch = {"rgb": torch.zeros(4, 3), "alpha": torch.zeros(4), "surface_t": torch.zeros(4)}
        loss = model.get_loss_dict(outputs, batch)
        assert "decorrelation_loss" not in loss and set(model.TABLE_LOSSES) & set(loss) == {"independence_loss"}
        loss["independence_loss"].backward()
        values.append(loss["independence_loss"].item())
        assert model.codes.shape.weight.grad is None or torch.count_nonzero(model.codes.shape.weight.grad) == 0
        # 8 of the 12 rows are drawn: the other four get no gradient.
        assert (model.codes.texture.weight.grad.abs().sum(1) > 0).sum() == 8
        assert "shape_clusters.centroids" in model.state_dict()  # resumes assign as before
    assert values[0] == values[1] and values[0] > 0
    off = preset("fast")
    off.model.code_independence = 0.0
    assert "shape_clusters.centroids" not in build_model(off, 12).state_dict()  # off: old checkpoints load


def _two_asset_batch(n):
    """Asset 0: every pixel wholly on the asset; asset 1: every pixel empty (white)."""
    o = _bundle(n, torch.zeros(n, 1), torch.zeros(n, 1)).origins
    on = torch.arange(n) < n // 2
    return {
        "origins": o, "directions": -o / o.norm(dim=-1, keepdim=True), "pixel_area": torch.ones(n, 1),
        "asset_index": (~on).long(), "surface_t": torch.where(on, 2.3, 0.0), "alpha": on.float(),
        "rgb": torch.where(on[:, None], 0.3, 1.0).expand(n, 3).contiguous(),
    }


def test_covered_texture_rays_keep_empty_pixels_from_training_texture_codes():
    from assets2vec.data.rays import to_ray_bundle

    grads = {}
    for mode in ("all", "covered"):
        config = preset("fast")
        config.model.texture_rays, config.model.code_reg, config.model.code_decorrelation = mode, 0.0, 0.0
        torch.manual_seed(0)
        model = build_model(config, 2, generator=torch.Generator().manual_seed(0))
        model.train()
        batch = _two_asset_batch(64)
        outputs = model(to_ray_bundle(batch))
        model.get_loss_dict(outputs, batch)["rgb_loss"].backward()
        grads[mode] = model.codes.texture.weight.grad.clone()
        # The colour network still learns from the empty pixels.
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.field.parameters()), mode
    assert grads["all"][1].abs().sum() > 0  # white background pulls on the empty asset's texture code ...
    assert torch.count_nonzero(grads["covered"][1]) == 0  # ... unless only covered pixels reach it
    assert grads["covered"][0].abs().sum() > 0
    assert torch.allclose(grads["covered"][0], grads["all"][0])
