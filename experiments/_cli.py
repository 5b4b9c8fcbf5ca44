"""What the entry points share: each is a Hydra application with its own ``conf/<name>.yaml``.

:class:`App` runs one: ``python -m experiments.<name> key=value ...`` goes through ``@hydra.main`` (so
Hydra's ``--help``, ``--cfg job`` and ``-m`` work), and ``main(argv)`` from a test composes the same
config with Hydra's compose API and runs the same function. Before Hydra sees the arguments they are
checked here, so that a mistake is one line, ``error: config <key>: ...`` with exit status 2, not
Hydra's several lines or a traceback: an unknown key, an unknown option of a config group, a value
Hydra's grammar cannot read, a comma-separated value outside a multirun.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from bindvae.errors import BindVAEError, ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
HELP_FLAGS = ("-h", "--help")
MULTIRUN_FLAGS = ("-m", "--multirun")
# Hydra's flags that take the next argument as their value.
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                "-cd", "--experimental-rerun"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_QUOTED = ("'", '"', "[")


def help_requested(argv: list[str], usage: str | None) -> bool:
    """Write ``usage`` (the entry point's docstring) to stdout when ``argv`` asks for help.

    Returns:
        True when help was asked for (the caller then exits 0 without doing anything else).
    """
    if not any(arg in HELP_FLAGS for arg in argv):
        return False
    sys.stdout.write((usage or "").strip() + "\n")
    return True


def split_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the key=value overrides), in their original order each."""
    flags, overrides = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and not arg.startswith(("--=", "-=")):
            flags.append(arg)
            has_next = i + 1 < len(argv)
            if has_next and (arg in _VALUE_FLAGS or (arg == "--info" and argv[i + 1] in _INFO_CHOICES)):
                flags.append(argv[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _is_group(key: str) -> bool:
    return "." not in key and (CONF_DIR / key).is_dir()


def _base_config(config_name: str, overrides: list[str]):
    """The composed config with only the config-group choices applied (the keys every override must name)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            return compose(config_name, overrides=overrides)
    except HydraException as err:
        raise ConfigError("overrides", _first_line(err)) from None


def _groups(config_name: str) -> list[str]:
    """The config groups the primary config chooses from (train's ``data``, ``tiny``, ...)."""
    from omegaconf import OmegaConf

    entries = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{config_name}.yaml")).get("defaults", [])
    return [k for e in entries if isinstance(e, dict) for k in e if not k.startswith(("override", "hydra"))]


def _check_key(cfg, key: str, arg: str, groups: list[str]) -> None:
    """Raises ConfigError unless ``key`` (dotted) names a node of ``cfg`` (the message lists the known keys)."""
    from omegaconf import DictConfig

    node, parts = cfg, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
            return  # a list, a value or an unset section: Hydra checks what lies below
        if part not in node.keys():
            where = ".".join(parts[:depth])
            names = {str(k) for k in node.keys() if k != "hydra"} | (set(groups) if depth == 0 else set())
            known = ", ".join(sorted(names))
            raise ConfigError(key, f"unknown argument {arg!r}; known{' in ' + where if where else ''}: {known}")
        node = node._get_node(part)


def check_overrides(config_name: str, overrides: list[str], multirun: bool = False,
                    list_keys: tuple[str, ...] = ()) -> list[str]:
    """The overrides as Hydra should receive them, after checking each one.

    A value of a key in ``list_keys`` (``sets=A:a.fa,B:b.fa``) is one comma-separated string, so it is
    quoted for Hydra; so is any value Hydra's grammar cannot read as it is (``chip=CTCF=x.bed``), as the
    key=value entry points always took the rest of the argument after the first ``=`` verbatim.

    Raises:
        ConfigError: naming the key: an argument that is not key=value, an unknown key, an unknown
            option of a config group, a value that cannot be read, or a sweep (``a,b``) without ``-m``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    checked, parsed = [], []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        name = key.lstrip("+~")
        if not sep and not key.startswith("~"):
            raise ConfigError(key or arg, f"unknown argument {arg!r}; give key=value")
        if sep and name in list_keys and not value.startswith(_QUOTED):
            arg = f"{key}={_quote(value)}"
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            if not sep or value.startswith(_QUOTED) or arg.endswith("'"):
                raise ConfigError(name, f"cannot read {arg!r}: {_first_line(err)}") from None
            arg = f"{key}={_quote(value)}"
            override = parser.parse_override(arg)
        if override.is_sweep_override() and not multirun:
            raise ConfigError(name, f"{value!r} is a list of values to sweep over: run with -m, or quote the value")
        checked.append(arg)
        parsed.append((arg, name, value, override))
    groups = [arg for arg, name, value, o in parsed if _is_group(name) and not o.is_sweep_override() and value]
    base = None
    for arg, name, value, override in parsed:
        if name.startswith("hydra") or "/" in name or override.is_add() or override.is_force_add():
            continue
        if _is_group(name):
            group = CONF_DIR / name
            for option in value.split(",") if multirun else [value]:
                if option not in ("null", "") and "(" not in option and not (group / f"{option}.yaml").is_file():
                    known = sorted(p.stem for p in group.glob("*.yaml"))
                    raise ConfigError(name, f"unknown option {option!r}; one of {known}")
            continue
        if base is None:
            base = _base_config(config_name, groups)
        _check_key(base, name, arg.lstrip("~"), _groups(config_name))
    if base is not None and not multirun:
        _check_values(config_name, parsed)
    return checked


def _check_values(config_name: str, parsed: list) -> None:
    """Compose once with every override, so a value of the wrong type (``train.overwrite=maybe``) is one
    line naming its key rather than Hydra's merge report."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    args = [arg for arg, *_ in parsed]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            compose(config_name, overrides=args)
    except HydraException as err:
        culprit = next((name for arg, name, *_ in parsed if arg in str(err)), "overrides")
        raise ConfigError(culprit, _first_line(err.__cause__ or err)) from None


def text(value) -> str | None:
    """A path or name given as a config value: None when unset or empty, else the value as a string
    (Hydra reads ``out=2024`` as an int)."""
    return None if value is None or value == "" else str(value)


def items(value) -> list[str]:
    """A list-valued key: ``a,b`` (one string, the usual form) or Hydra's list ``[a,b]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v)]
    return [t for t in str(value).split(",") if t]


def _register_help(name: str, doc: str | None) -> None:
    """Hydra's ``--help`` for ``name``: the module's docstring, then every key with its current value."""
    from hydra.core.config_store import ConfigStore

    usage = (doc or "").strip().replace("$", "$$").replace("${", "\\${")
    template = (
        f"{usage}\n\n== Config (conf/{name}.yaml; override any key with key=value) ==\n\n$CONFIG\n"
        "== Hydra ==\n--cfg job prints the composed config; -m / --multirun runs once per value of key=a,b;\n"
        "--hydra-help shows Hydra's own options.\n"
    )
    node = {"app_name": name, "header": "", "footer": "", "template": template}
    ConfigStore.instance().store(group="hydra/help", name=name, node=node, provider="bindvae")


@dataclasses.dataclass(frozen=True)
class App:
    """One entry point: ``conf/<name>.yaml`` and the function that does the work.

    ``run`` receives the composed config as a plain dict (every key of the yaml, the command line's
    values applied) and returns the exit status; a :class:`BindVAEError` it raises becomes one line,
    ``error: <message>``, and status 2.
    """

    name: str
    doc: str | None
    run: Callable[[dict], int | None]
    list_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _register_help(self.name, self.doc)

    def defaults(self) -> dict:
        """The yaml's values (what a key is when the command line does not give it)."""
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{self.name}.yaml"))
        return {k: v for k, v in values.items() if k not in ("defaults", "hydra")}

    def main(self, argv: list[str] | None = None) -> int:
        """``python -m`` (``argv`` None: Hydra's own command line) or a test's ``main([...])``; the exit status."""
        from_command_line = argv is None
        argv = list(sys.argv[1:] if argv is None else argv)
        flags, overrides = split_flags(argv)
        if not any(f in HELP_FLAGS or f == "--hydra-help" for f in flags):
            try:
                overrides = check_overrides(self.name, overrides, any(f in MULTIRUN_FLAGS for f in flags),
                                            self.list_keys)
            except BindVAEError as err:
                sys.stderr.write(f"error: {err}\n")
                return 2
        if from_command_line or flags:
            return self._hydra_main([*flags, *overrides])
        try:
            cfg = self._compose(overrides)
        except BindVAEError as err:
            sys.stderr.write(f"error: {err}\n")
            return 2
        return self.call(cfg)

    def call(self, cfg) -> int:
        """Runs ``self.run`` on a composed config; a user mistake is one line on stderr and status 2."""
        from omegaconf import OmegaConf
        from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

        try:
            values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
            values.pop("hydra", None)
            return int(self.run(values) or 0)
        except MissingMandatoryValue as err:
            sys.stderr.write(f"error: config {err.full_key}: is required (set {err.full_key}=...)\n")
        except OmegaConfBaseException as err:
            sys.stderr.write(f"error: config: {_first_line(err)}\n")
        except BindVAEError as err:
            sys.stderr.write(f"error: {err}\n")
        return 2

    def _compose(self, overrides: list[str]):
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException

        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=self.name):
                return compose(self.name, overrides=overrides)
        except HydraException as err:
            raise ConfigError("overrides", _first_line(err)) from None

    def _task(self, cfg) -> None:
        code = self.call(cfg)
        if code:
            sys.exit(code)  # SystemExit passes through Hydra (a multirun stops at the first failed job)

    def _hydra_main(self, argv: list[str]) -> int:
        import hydra
        from hydra.core.global_hydra import GlobalHydra

        entry = hydra.main(config_path=str(CONF_DIR), config_name=self.name, version_base="1.3")(self._task)
        saved = sys.argv
        # The job is named after the entry point, not after this module (Hydra's guess from the task function).
        named = any(a.startswith("hydra.job.name=") for a in argv)
        sys.argv = [f"experiments.{self.name}", *argv, *([] if named else [f"hydra.job.name={self.name}"])]
        try:
            entry()
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        finally:
            sys.argv = saved
            GlobalHydra.instance().clear()
        return 0
