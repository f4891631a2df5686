"""Every YAML file is read with guards: a spec's learned prior can name neither a device, a pipe, an alias
bomb, a huge file nor a file outside the spec's folder, the working folder or the folders the operator lists."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from bayes_ab.errors import SpecError
from bayes_ab.learned_prior import load_prior
from bayes_ab.spec import PRIOR_DIRS, load_spec
from bayes_ab.yaml_files import MAX_YAML_BYTES, read_yaml_file

PRIOR = {"bayes_ab_prior": 1, "effect": "relative", "distribution": {"form": "normal", "location": 0.0, "scale": 0.02},
         "provenance": {"experiments": 20, "learned_at": "2026-12-03T00:00:00Z"}}


def _spec(folder, learned: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(
        "name: x\narms: [{name: control, control: true}, {name: treatment}]\n"
        f"metrics:\n  - {{name: conv, family: conversion, column: conv, prior: {{learned: '{learned}'}}}}\n")
    return folder / "spec.yaml"


@pytest.mark.parametrize("path, message", [("/dev/zero", "a device, pipe or socket, not a regular file"),
                                           ("/", "a folder, not a regular file")])
def test_what_is_not_a_regular_file_is_refused_before_a_byte_is_read(path, message):
    started = time.perf_counter()
    with pytest.raises(SpecError, match=f"{path}: prior file is {message}"):
        load_prior(path)
    assert time.perf_counter() - started < 5


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(SpecError, match="not a regular file"):
        read_yaml_file(tmp_path / "pipe.yaml", "prior file")


def test_alias_bombs_and_huge_files_are_refused(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\n")
    with pytest.raises(SpecError, match=r"bomb.yaml: not valid YAML \(aliases \(\*a0\) are not allowed"):
        load_prior(tmp_path / "bomb.yaml")
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(PRIOR) + "#" * MAX_YAML_BYTES)
    with pytest.raises(SpecError, match="big.yaml: prior file is larger than 1,000,000 bytes"):
        load_prior(tmp_path / "big.yaml")
    (tmp_path / "latin.yaml").write_bytes("scale: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin.yaml: not UTF-8 text \(byte 0xe9"):
        load_prior(tmp_path / "latin.yaml")


def test_a_spec_reaches_no_prior_outside_its_folder_the_working_folder_or_the_listed_ones(tmp_path, monkeypatch):
    outside = tmp_path / "e" / "prior.yaml"
    outside.parent.mkdir()
    outside.write_text(yaml.safe_dump(PRIOR))
    monkeypatch.chdir(tmp_path / "e")
    inside = tmp_path / "project" / "specs"
    # the spec's own folder (and below) is fine, by a relative or an absolute path
    (inside / "priors").mkdir(parents=True)
    (inside / "priors" / "p.yaml").write_text(yaml.safe_dump(PRIOR))
    assert load_spec(_spec(inside, "priors/p.yaml")).metrics[0].prior.learned.scale == 0.02
    assert load_spec(_spec(inside, str(inside / "priors" / "p.yaml"))).metrics[0].prior.learned.scale == 0.02
    monkeypatch.chdir(tmp_path / "project")
    for path in ("../../e/prior.yaml", "../../../../../../../../etc/passwd", "/etc/passwd", str(outside)):
        with pytest.raises(SpecError, match=r"spec.yaml: metrics\[0\].prior.learned: .*outside the spec's folder and "
                                            "the working folder") as refused:
            load_spec(_spec(inside, path))
        assert PRIOR_DIRS in str(refused.value) or "more characters" in str(refused.value)  # long paths are cut
    with pytest.raises(SpecError, match=f"e/prior.yaml: outside .*; list its folder in {PRIOR_DIRS} to allow it"):
        load_spec(_spec(inside, "../../e/prior.yaml"))
    # a symbolic link inside the folder is followed to where it points
    (inside / "priors" / "link.yaml").symlink_to(outside)
    with pytest.raises(SpecError, match="outside the spec's folder"):
        load_spec(_spec(inside, "priors/link.yaml"))
    # the operator lists a folder: then it is read
    monkeypatch.setenv(PRIOR_DIRS, str(outside.parent))
    assert load_spec(_spec(inside, str(outside))).metrics[0].prior.learned.scale == 0.02
    assert load_spec(_spec(inside, "priors/link.yaml")).metrics[0].prior.learned.scale == 0.02


def test_a_spec_given_in_code_reads_its_prior_where_it_says(tmp_path):
    from bayes_ab.spec import parse_spec

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PRIOR))
    spec = parse_spec({"name": "x", "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                       "metrics": [{"name": "conv", "family": "conversion", "column": "conv",
                                    "prior": {"learned": str(tmp_path / "p.yaml")}}]})
    assert spec.metrics[0].prior.learned.scale == 0.02
