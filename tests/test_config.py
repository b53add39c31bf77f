import pytest

from jigsaw_kit.config import available_configs, load_config, parse_overrides
from jigsaw_kit.errors import KitError


def test_named_configs_load_and_validate():
    names = available_configs()
    assert {"cpu-minilm", "tfidf-lr", "kaggle-t4"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_overrides_are_typed():
    cfg = load_config("cpu-minilm", parse_overrides(["epochs=1", "max_length=64", "use_test_examples=false"]))
    assert cfg.epochs == 1.0 and cfg.max_length == 64 and cfg.use_test_examples is False


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochz: 3\n")
    with pytest.raises(KitError, match=r"unknown key\(s\) \['epochz'\]"):
        load_config(str(p))


def test_wrong_type_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("batch_size: lots\n")
    with pytest.raises(KitError, match="'batch_size' must be of type int"):
        load_config(str(p))


def test_bad_values_and_names():
    with pytest.raises(KitError, match="unknown template"):
        load_config("cpu-minilm", {"template": "nope"})
    with pytest.raises(KitError, match="max_length must be > 0"):
        load_config("cpu-minilm", {"max_length": "0"})
    with pytest.raises(KitError, match="unknown config 'nope'.*cpu-minilm"):
        load_config("nope")
    with pytest.raises(KitError, match="key=value"):
        parse_overrides(["epochs"])
