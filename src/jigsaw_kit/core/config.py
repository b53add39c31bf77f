"""Typed run configuration: the keys every method shares, plus the chosen method's own options.

    cfg = load_config("cpu-contrastive", {"tune.steps": "30"})
    cfg.seed, cfg.template                       # shared by every method (Config)
    cfg.options.embed_c, cfg.options.tune.steps  # the method's own (methods/options.py, methods/transformer/options.py)

A YAML file keeps every key at the top level; a group of options (contrastive's `tune`) is a nested mapping,
or dotted on the command line (`--set tune.steps=30`). Old flat names still load: each options class maps
them to their new place (`LEGACY`, e.g. contrastive's max_steps -> tune.steps). A key the chosen method does
not have, a wrong type and a value out of range are errors naming the key (a typo must not silently fall
back to a default). Named configs live in `src/jigsaw_kit/configs/` (`configs/` at the repo root points
there) so they ship inside the wheel used on Kaggle.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import yaml

from jigsaw_kit.core.errors import KitError

# The method registry: a config's `method` -> the class that implements it (jigsaw_kit.methods.base.Method),
# and its options dataclass. Strings, imported on demand: reading a config imports neither torch nor pandas
# (the options modules are small for that reason), and core stays below methods.
METHODS = {
    "transformer": "jigsaw_kit.methods.transformer.method:TransformerMethod",
    "tfidf-lr": "jigsaw_kit.methods.tfidf:TfidfRuleModel",
    "hybrid": "jigsaw_kit.methods.hybrid:HybridRuleModel",
    "contrastive": "jigsaw_kit.methods.contrastive:ContrastiveHybrid",
}
OPTIONS = {
    "transformer": "jigsaw_kit.methods.transformer.options:TransformerOptions",
    "tfidf-lr": "jigsaw_kit.methods.options:TfidfOptions",
    "hybrid": "jigsaw_kit.methods.options:HybridOptions",
    "contrastive": "jigsaw_kit.methods.options:ContrastiveOptions",
}
DEFAULT_METHOD = "transformer"
_SCALARS = (bool, int, float, str, list[str], list[float])


class MethodOptions:
    """Base of each method's options dataclass: its keys with their defaults, and its own checks.

    A field whose type is another MethodOptions dataclass is a group (`tune`): a nested mapping in YAML,
    dotted keys (`tune.steps`) on the command line.
    """

    # an old flat key -> its dotted place in these options; files and --set written before the split still load
    LEGACY: ClassVar[dict[str, str]] = {}
    # list keys whose default [] means "off": an empty list (or `--set key=`) is valid for them
    MAY_BE_EMPTY: ClassVar[tuple[str, ...]] = ()

    def check(self, cfg: Config) -> None:
        """KitError naming the config and the key when a value is out of range; each subclass adds its own."""

    @classmethod
    def keys(cls) -> list[str]:
        """Every key, groups' dotted (`tune.steps`), in declaration order."""
        hints = get_type_hints(cls)
        out: list[str] = []
        for f in fields(cls):
            sub = hints[f.name]
            out += [f"{f.name}.{k}" for k in sub.keys()] if _is_group(sub) else [f.name]
        return out

    def flat(self) -> dict[str, Any]:
        """{dotted key: value}, the groups' keys spelled out (what comparisons and messages show)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MethodOptions):
                out.update({f"{f.name}.{k}": v for k, v in value.flat().items()})
            else:
                out[f.name] = value
        return out


def _is_group(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, MethodOptions)


def options_class(method: str) -> type[MethodOptions]:
    """The options dataclass of a method (imported on demand, as METHODS)."""
    if method not in OPTIONS:
        raise KitError(f"method must be one of {tuple(METHODS)}, got {method!r}.")
    module, _, name = OPTIONS[method].partition(":")
    return getattr(importlib.import_module(module), name)


def method_keys(method: str) -> str:
    """The keys a config of this method may set, for messages: its own, the old names it reads, the shared ones."""
    cls = options_class(method)
    old = f" (old names still read: {', '.join(f'{k} -> {v}' for k, v in cls.LEGACY.items())})" if cls.LEGACY else ""
    return f"its keys: {', '.join(cls.keys())}{old}; keys of every method: {', '.join(COMMON)}"


@dataclass
class Config:
    """A run: what every method shares, and `options`, the chosen method's own (see the module docstring).

    Defaults are the CPU MiniLM fine-tune; configs/*.yaml say why for each recipe.
    """

    name: str = "cpu-minilm"
    # "transformer" (fine-tune a checkpoint), "tfidf-lr" (baseline), "hybrid" (TF-IDF + frozen-encoder embeddings,
    # per-rule logistic regressions, exact lookup) or "contrastive" (the hybrid on an encoder tuned first): METHODS
    method: str = DEFAULT_METHOD
    template: str = "rule-body"
    use_test_examples: bool = True  # the test file's 2+2 examples per row are labelled training rows
    seed: int = 42
    # the method's options dataclass (OPTIONS); None: its defaults
    options: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes; never read by code

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise KitError(f"config '{self.name}': method must be one of {tuple(METHODS)}, got {self.method!r}.")
        cls = options_class(self.method)
        if self.options is None:
            self.options = cls()
        elif type(self.options) is not cls:  # e.g. replace(cfg, method=...) without new options
            raise KitError(
                f"config '{self.name}': method {self.method} takes {cls.__name__}, got {type(self.options).__name__}."
            )

    def validate(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise KitError(f"config '{self.name}': seed must be in [0, 2**32), got {self.seed}.")
        from jigsaw_kit.core.templates import TEMPLATES  # local import: templates imports nothing from here

        if self.template not in TEMPLATES:
            raise KitError(
                f"config '{self.name}': unknown template {self.template!r}; choose one of {sorted(TEMPLATES)}."
            )
        self.options.check(self)

    def to_dict(self) -> dict[str, Any]:
        """The YAML layout: shared keys, the method's keys at the top level (groups nested), then extra."""
        out = {k: getattr(self, k) for k in COMMON if k != "extra"}
        return {**out, **dataclasses.asdict(self.options), "extra": dict(self.extra)}

    def flat(self) -> dict[str, Any]:
        """Every key and value, groups dotted (`tune.steps`): what run-folder checks compare."""
        return {**{k: getattr(self, k) for k in COMMON}, **self.options.flat()}

    def override(self, values: dict[str, Any], source: str = "override") -> Config:
        """A copy with these keys set as `--set` would (old names, dotted groups, typed), validated."""
        if "method" in values and values["method"] != self.method:
            raise KitError(f"{source}: a loaded config keeps its method ({self.method}); load another config instead.")
        common, own = _split(values)
        cfg = _apply_common(self, common, source)
        cfg = dataclasses.replace(cfg, options=_apply_options(self.options, own, self.method, source))
        cfg.validate()
        return cfg


COMMON = tuple(f.name for f in fields(Config) if f.name != "options")


def config_dir() -> Path:
    return Path(str(importlib.resources.files("jigsaw_kit") / "configs"))


def available_configs() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path as given, else a named config shipped with the kit."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise KitError(f"config file {p} does not exist. Named configs: {', '.join(available_configs())}.")
        return p
    named = config_dir() / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    raise KitError(
        f"unknown config {name_or_path!r}: not a file and not a named config. "
        f"Named configs: {', '.join(available_configs())}; or pass a path to a .yaml file."
    )


def _coerce(key: str, value: Any, typ: Any, source: str, empty_ok: bool = False) -> Any:
    """Check/convert one value to the dataclass field's type, with a message naming the key."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif typ in (list[str], list[float]):
        return _coerce_list(key, value, typ, source, empty_ok)
    else:  # dict
        if isinstance(value, dict):
            return value
    raise KitError(f"{source}: '{key}' must be of type {getattr(typ, '__name__', typ)}, got {value!r}.")


def _coerce_list(key: str, value: Any, typ: Any, source: str, empty_ok: bool) -> list:
    """A YAML list, or one comma-separated string (what `--set key=a,b` gives), of names or numbers."""
    if empty_ok and (value is None or (isinstance(value, str) and not value.strip())):
        return []
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (list, tuple)) and (items or empty_ok):
        if typ == list[str] and all(isinstance(v, str) and v.strip() for v in items):
            return [v.strip() for v in items]
        if typ == list[float] and not any(isinstance(v, bool) for v in items):
            try:
                return [float(v) for v in items]
            except (TypeError, ValueError):
                pass
    what = "names" if typ == list[str] else "numbers"
    raise KitError(
        f"{source}: '{key}' must be a {'' if empty_ok else 'non-empty '}list of {what} "
        f"(or a comma-separated string), got {value!r}."
    )


def _split(values: dict[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shared keys, the method's keys) of a mapping; str(): YAML keys may be numbers."""
    common = {str(k): v for k, v in values.items() if str(k) in COMMON}
    return common, {str(k): v for k, v in values.items() if str(k) not in COMMON}


def _apply_common(cfg: Config, values: dict[str, Any], source: str) -> Config:
    hints = get_type_hints(Config)
    typed = {k: _coerce(k, v, hints[k] if hints[k] in _SCALARS else dict, source) for k, v in values.items()}
    if typed.get("method", cfg.method) not in METHODS:
        raise KitError(f"{source}: method must be one of {tuple(METHODS)}, got {typed['method']!r}.")
    if typed.get("method", cfg.method) != cfg.method:  # another method: its own options, from their defaults
        typed["options"] = None
    return dataclasses.replace(cfg, **typed)


def _owners(key: str, but: str) -> str:
    """Which other methods have this key, and under which name there (for the unknown-key message)."""
    found = []
    for m in OPTIONS:
        cls = options_class(m)
        if m != but and (key in cls.keys() or key in cls.LEGACY):
            found.append(m if key in cls.keys() else f"{m} (as {cls.LEGACY[key]})")
    return f" {key} is an option of method {', '.join(found)}." if found else ""


def _targets(options: MethodOptions, values: dict[str, Any], method: str, source: str) -> dict[str, tuple[str, Any]]:
    """{dotted key in `options`: (the key as written, value)}: old names mapped, nested groups spelled out."""
    cls = type(options)
    hints = get_type_hints(cls)
    keys = cls.keys()
    out: dict[str, tuple[str, Any]] = {}
    for written, value in values.items():
        key = cls.LEGACY.get(written, written)
        if key in hints and _is_group(hints[key]):
            if not isinstance(value, dict):
                raise KitError(
                    f"{source}: {key} is a group of options, a mapping of {', '.join(hints[key].keys())} "
                    f"(or set them one by one: --set {key}.{hints[key].keys()[0]}=...), got {value!r}."
                )
            pairs = [(f"{key}.{k}", f"{written}.{k}", v) for k, v in value.items()]
        else:
            pairs = [(key, written, value)]
        for dotted, as_written, v in pairs:
            if dotted not in keys:
                raise KitError(
                    f"{source}: {as_written} is not an option of method {method}; {method_keys(method)}."
                    + _owners(dotted, method)
                )
            if dotted in out:
                raise KitError(
                    f"{source}: {out[dotted][0]} and {as_written} are both set, and both mean {dotted}: keep one."
                )
            out[dotted] = (as_written, v)
    return out


def _apply_options(options: MethodOptions, values: dict[str, Any], method: str, source: str) -> MethodOptions:
    """A copy of `options` with `values` (keys as written in a file or --set) typed and set."""
    groups: dict[str, dict[str, tuple[str, Any]]] = {}
    for dotted, pair in _targets(options, values, method, source).items():
        head, _, rest = dotted.partition(".")
        groups.setdefault(head, {})[rest] = pair
    return _set(options, groups, source)


def _set(options: MethodOptions, groups: dict[str, dict[str, tuple[str, Any]]], source: str) -> MethodOptions:
    hints = get_type_hints(type(options))
    changes: dict[str, Any] = {}
    for name, sub in groups.items():
        if _is_group(hints[name]):
            nested = {}
            for dotted, pair in sub.items():
                head, _, rest = dotted.partition(".")
                nested.setdefault(head, {})[rest] = pair
            changes[name] = _set(getattr(options, name), nested, source)
        else:
            written, value = sub[""]
            typ = hints[name] if hints[name] in _SCALARS else dict
            changes[name] = _coerce(written, value, typ, source, name in type(options).MAY_BE_EMPTY)
    return dataclasses.replace(options, **changes)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings from `--set` into a dict (values typed later against the options' dataclass)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise KitError(f"--set expects key=value, got {pair!r} (e.g. --set epochs=1, --set tune.steps=30).")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


# Keys that the config.yaml of every run folder written before options were split per method holds, flat; no
# method has both epochs (a fine-tune's) and tfidf_c (the TF-IDF heads')
_OLD_DUMP = frozenset({"epochs", "max_steps", "precision", "tfidf_max_features", "tfidf_c", "embed_c"})


def _refuse_old_dump(raw: dict[str, Any], method: str, path: Path) -> None:
    if not _OLD_DUMP <= set(map(str, raw)):
        return
    raise KitError(
        f"{path} lists the options of every method, flat, as the config.yaml that an older kit version saved in "
        f"each run folder did; this kit keeps only the options of the config's method ({method}). A run folder "
        f"saved by an older kit version: train again (`jigsaw-kit train --config {raw.get('name', 'NAME')} "
        f"--run-dir {path.parent}`). A config of your own: keep only the keys of method {method}; "
        f"{method_keys(method)}."
    )


def _read_yaml(path: Path) -> dict[Any, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        mark = getattr(e, "problem_mark", None)  # one line: the problem and where, not PyYAML's drawing of it
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(e, "problem", None) or " ".join(str(e).split())
        raise KitError(f"config file {path} is not valid YAML (UTF-8 text; {why}{where}): fix or re-save it.") from None
    if not isinstance(raw, dict):
        raise KitError(f"config file {path} must hold a mapping of key: value, got {type(raw).__name__}.")
    return raw


def load_config(name_or_path: str = "cpu-minilm", overrides: dict[str, Any] | None = None) -> Config:
    """Named config or YAML path, then overrides (`--set`); validated. The method comes from either."""
    path = resolve_config_path(name_or_path)
    raw = _read_yaml(path)
    raw.setdefault("name", path.stem)
    source = f"config file {path}"
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    file_common, file_own = _split(raw)
    over_common, over_own = _split(overrides)
    cfg = _apply_common(Config(), file_common, source)
    cfg = _apply_common(cfg, over_common, "command-line override")
    _refuse_old_dump(raw, cfg.method, path)
    options = _apply_options(cfg.options, file_own, cfg.method, source)
    options = _apply_options(options, over_own, cfg.method, "command-line override")
    cfg = dataclasses.replace(cfg, options=options)
    try:
        cfg.validate()
    except KitError as e:  # name the file: a run folder's config.yaml is not one the user chose by name
        raise KitError(f"{e} (config file {path}{', with command-line overrides' if overrides else ''})") from None
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
