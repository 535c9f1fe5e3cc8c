import json

from assets2vec.configs import FitConfig, preset


def test_fast_preset_round_trips_through_json():
    config = preset("fast")
    back = FitConfig.from_json(config.to_json())
    assert back == config and back.model.code_independence == config.model.code_independence > 0
    assert back.edge_fraction == config.edge_fraction > 0


def test_a_run_file_written_before_a_field_existed_loads_as_it_was_trained():
    # Runs store their whole configuration; one written before the edge rays and the independence
    # penalty existed lacks both keys and must load with them off, not with today's preset values.
    stored = json.loads(preset("fast").to_json())
    del stored["edge_fraction"], stored["model"]["code_independence"]
    old = FitConfig.from_json(json.dumps(stored))
    assert old.edge_fraction is None and old.model.code_independence == 0.0
    assert old.steps == preset("fast").steps  # stored keys win over any default


def test_reference_presets_keep_their_own_recipe():
    # CodeNeRF mixes rays over all assets, which the edge share cannot do (it needs assets_per_batch).
    for name in ("codenerf", "tiny"):
        c = preset(name)
        assert c.edge_fraction is None and c.model.code_independence == 0.0, name


def test_dataclass_defaults_are_the_products():
    # One default per setting: FitConfig() in Python trains what `assets2vec fit` trains.
    assert FitConfig() == preset("fast")
    assert FitConfig().edge_fraction == 0.25 and FitConfig().model.code_independence == 0.2 and FitConfig().steps == 12000
