import pytest

from jigsaw_kit.core.config import available_configs, load_config, parse_overrides
from jigsaw_kit.core.errors import KitError


def test_named_configs_load_and_validate():
    names = available_configs()
    assert {"cpu-minilm", "tfidf-lr", "kaggle-t4"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name


def test_overrides_are_typed():
    cfg = load_config("cpu-minilm", parse_overrides(["epochs=1", "max_length=64", "use_test_examples=false"]))
    assert cfg.options.epochs == 1.0 and cfg.options.max_length == 64 and cfg.use_test_examples is False


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochz: 3\n")
    with pytest.raises(KitError, match=r"epochz is not an option of method transformer; its keys: model, max_length"):
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


# --- checkpoints that cannot work: tiny random models saved to tmp (no download, seconds) ---------------

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "spam", "rule", "buy", "legal", "advice", "the", "a"]


def _tiny_checkpoint(d, config, weights: bool = True):
    """config.json (+ random weights) + a WordPiece tokenizer built from a hand-written vocab.txt."""
    from transformers import AutoModel, BertTokenizer

    d.mkdir(parents=True)
    (d / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(d / "vocab.txt")).save_pretrained(str(d))
    config.save_pretrained(str(d))
    if weights:
        AutoModel.from_config(config).save_pretrained(str(d))
    return d


def _tiny_bert(**kw):
    from transformers import BertConfig

    args = dict(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    return BertConfig(**{**args, "intermediate_size": 32, "max_position_embeddings": 64, **kw})


# Both ways of using a checkpoint, fine-tuning it and embedding with it, must refuse a bad one cleanly.
BOTH = pytest.mark.parametrize("config", ["cpu-minilm", "cpu-hybrid"])


def _run_tiny(tmp_path, model, *extra, config="cpu-minilm"):
    from jigsaw_kit.cli import main

    from ..conftest import SAMPLE

    out = tmp_path / "out"
    args = ["run", "--data-dir", str(SAMPLE), "--config", config, "--model", str(model), "--set", "max_length=32"]
    if config == "cpu-minilm":  # the hybrid trains no steps: max_steps is not one of its options
        args += ["--max-steps", "1"]
    return main([*args, *extra, "--output", str(out / "s.csv"), "--run-dir", str(out / "run")])


@BOTH
def test_tiny_checkpoint_trains_and_predicts(tmp_path, config):
    # The control for the refusals below: the same kind of folder, complete, does work.
    assert _run_tiny(tmp_path, _tiny_checkpoint(tmp_path / "bert", _tiny_bert()), config=config) == 0
    assert (tmp_path / "out" / "s.csv").is_file()


def test_checkpoint_without_weights(tmp_path, capsys):
    assert _run_tiny(tmp_path, _tiny_checkpoint(tmp_path / "bert", _tiny_bert(), weights=False)) == 2
    assert "lacks weights" in capsys.readouterr().err


@BOTH
def test_checkpoint_that_cannot_be_a_sequence_classifier(tmp_path, capsys, config):
    from transformers import ViTConfig

    vit = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=8)
    assert _run_tiny(tmp_path, _tiny_checkpoint(tmp_path / "vit", vit), config=config) == 2
    err = capsys.readouterr().err
    what = "sequence classifier" if config == "cpu-minilm" else "text encoder"
    assert "cannot load" in err and what in err and "Traceback" not in err


@BOTH
def test_checkpoint_with_unknown_model_type(tmp_path, capsys, config):
    import json

    d = _tiny_checkpoint(tmp_path / "bert", _tiny_bert())
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "not-a-model"}))
    assert _run_tiny(tmp_path, d, config=config) == 2
    err = capsys.readouterr().err
    assert str(d) in err and "Traceback" not in err


@BOTH
def test_max_length_beyond_the_checkpoint(tmp_path, capsys, config):
    # No model_max_length in the tokenizer: the position table (64) is the limit.
    tiny = _tiny_checkpoint(tmp_path / "bert", _tiny_bert())
    assert _run_tiny(tmp_path, tiny, "--set", "max_length=128", config=config) == 2
    assert "max_length 128 exceeds" in (err := capsys.readouterr().err) and "max_position_embeddings" in err


def test_max_length_beyond_the_tokenizer_limit(monkeypatch, capsys):
    from jigsaw_kit.core.checkpoints import check_max_length, load_tokenizer, resolve_model

    from ..conftest import ROOT

    monkeypatch.setenv("JIGSAW_KIT_WEIGHTS", str(ROOT / "weights"))
    cfg = load_config("cpu-minilm", {"max_length": "1024"})
    path = resolve_model(cfg.options.model)
    with pytest.raises(KitError, match=r"max_length 1024 exceeds .*\(512, model_max_length.*--set max_length=512"):
        check_max_length(cfg.options.max_length, path, load_tokenizer(path))


@pytest.mark.parametrize(
    "text, match",
    [
        ("epochs: [1, 2]\n", "'epochs' must be of type float"),
        ("use_test_examples: maybe\n", "'use_test_examples' must be of type bool"),
        ("max_steps: 2.5\n", "'max_steps' must be of type int"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("epochs: [unclosed\n", "not valid YAML"),
        ("save_steps: two\n", "'save_steps' must be of type int"),
    ],
)
def test_wrong_types_and_shapes(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(KitError, match=match):
        load_config(str(p))
