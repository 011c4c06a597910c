"""environment.yml and pyproject.toml must install the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"pyyaml": "pyyaml"}


def _name_and_spec(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return CONDA_TO_PYPI.get(name, name), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["dev"]
    # dev names other extras as "fitlab[classroom]": their packages are in the environment.
    for requirement in list(requirements):
        if found := re.fullmatch(r"fitlab\[(\w+)\]", requirement):
            requirements.remove(requirement)
            requirements += extras[found.group(1)]
    return dict(_name_and_spec(r) for r in requirements)


def _environment() -> tuple[dict[str, str], dict]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    packages, pip_section = {}, {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip_section = entry
            packages.update(_name_and_spec(r) for r in entry["pip"] if not r.startswith("-e"))
        else:
            packages.update([_name_and_spec(entry)])
    return packages, {"env": env, "pip": pip_section}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    packages, _ = _environment()
    python_spec = packages.pop("python")
    packages.pop("pip")
    assert packages == _pyproject()
    assert python_spec == ">=3.11"


def test_environment_yml_is_a_conda_forge_env_that_installs_fitlab():
    _, parts = _environment()
    assert parts["env"]["channels"] == ["conda-forge"]
    assert "-e ." in parts["pip"]["pip"]
