"""environment.yml (conda) and pyproject.toml (pip) must list the same packages with the same version ranges.

pyproject.toml is the one place where dependencies are decided; environment.yml mirrors the union of
``[project] dependencies`` and every ``[project.optional-dependencies]`` extra, with conda-forge's names.
Entries that are not Python dependencies of the project (python, pip, nodejs) are allowed only from a short,
explicit list.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

#: PyPI name -> conda-forge name, where they differ.
CONDA_NAME = {"torch": "pytorch"}
#: Conda entries that are tools of the environment rather than dependencies in pyproject.toml.
CONDA_ONLY = {"python", "pip", "nodejs"}


def pyproject_requirements() -> dict[str, SpecifierSet]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    out: dict[str, SpecifierSet] = {}
    for line in reqs:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"pyproject.toml lists {name} twice"
        out[name] = req.specifier
    return out


_CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _parse_conda(spec: str) -> tuple[str, SpecifierSet]:
    """'pytorch>=2.3,<2.15' -> ('pytorch', SpecifierSet('>=2.3,<2.15')); 'python=3.11' -> ('python', ==3.11.*)."""
    m = _CONDA_SPEC.match(spec)
    assert m, f"cannot parse conda spec {spec!r}"
    name, rest = m.group(1), m.group(2).replace(" ", "")
    if rest.startswith("=") and not rest.startswith("=="):  # conda's fuzzy '=3.11' means 3.11.*
        rest = f"=={rest[1:]}.*"
    return canonicalize_name(name), SpecifierSet(rest)


def environment_requirements() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    """(conda entries, pip entries) of environment.yml, by canonical name."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            assert set(item) == {"pip"}, f"unexpected mapping in environment.yml dependencies: {item}"
            for line in item["pip"]:
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = req.specifier
        else:
            name, spec = _parse_conda(str(item))
            assert name not in conda, f"environment.yml lists {name} twice"
            conda[name] = spec
    return conda, pip


def test_environment_yml_is_valid_conda_file():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "dlc-teach"
    assert "conda-forge" in env["channels"]
    conda, _ = environment_requirements()
    assert conda["python"] == SpecifierSet("==3.11.*"), "environment.yml should pin python=3.11"
    assert "pip" in conda


def test_environment_yml_matches_pyproject():
    want = pyproject_requirements()
    conda, pip = environment_requirements()
    to_pypi = {canonicalize_name(v): canonicalize_name(k) for k, v in CONDA_NAME.items()}
    have: dict[str, SpecifierSet] = {}
    for name, spec in conda.items():
        if name in CONDA_ONLY:
            continue
        have[to_pypi.get(name, name)] = spec
    for name, spec in pip.items():
        assert name not in have, f"environment.yml lists {name} both as a conda and as a pip package"
        have[name] = spec

    problems = []
    for name in sorted(set(want) | set(have)):
        if name not in have:
            conda_name = CONDA_NAME.get(name, name)
            problems.append(f"  missing from environment.yml:  {conda_name}{want[name]}  (pyproject.toml has {name}{want[name]})")
        elif name not in want:
            problems.append(f"  only in environment.yml:       {name}{have[name]}  (add it to pyproject.toml or remove it)")
        elif have[name] != want[name]:
            problems.append(f"  different ranges for {name}:  pyproject.toml {want[name]}  vs  environment.yml {have[name]}")
    assert not problems, "environment.yml and pyproject.toml drifted apart:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "spec, name, rng",
    [("pytorch>=2.3,<2.15", "pytorch", ">=2.3,<2.15"), ("python=3.11", "python", "==3.11.*"), ("pip", "pip", "")],
)
def test_conda_spec_parser(spec, name, rng):
    assert _parse_conda(spec) == (name, SpecifierSet(rng))
