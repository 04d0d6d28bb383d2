"""Size groups: which models a run keeps, and the job variables a size sets per pool type."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from blocks import NumeraiModel
from flows.submit_round import Placement, split_by_size
from model.sizes import SIZES, size_job_variables


def _models(**sizes: str | None) -> dict[str, NumeraiModel]:
    return {name: NumeraiModel(model_name=name, size=size) for name, size in sizes.items()}


def test_job_variables_of_a_size_per_pool_type() -> None:
    assert size_job_variables("mem-lg", "ecs") == {"cpu": 4096, "memory": 30720}
    assert size_job_variables("mem-lg", "docker") == {"mem_limit": "30720m"}
    assert size_job_variables("mem-lg", "process") == {}
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        size_job_variables("huge", "ecs")


def test_a_model_block_takes_only_a_known_size() -> None:
    assert NumeraiModel(model_name="m", size="cpu-sm").size == "cpu-sm"
    with pytest.raises(ValidationError, match="unknown size"):
        NumeraiModel(model_name="m", size="enormous")


def test_unsized_models_stay_and_each_other_size_is_a_group() -> None:
    ecs = Placement(uuid.uuid4(), "ecs", {"cpu": 2048, "memory": 16384, "image": "x"})
    here, groups = split_by_size(_models(a=None, b="mem-lg", c="mem-lg", d="cpu-sm"), None, ecs)
    assert list(here) == ["a"]
    assert groups == {"mem-lg": ["b", "c"], "cpu-sm": ["d"]}


def test_a_model_of_the_runs_own_size_stays() -> None:
    ecs = Placement(uuid.uuid4(), "ecs", {"cpu": 2048, "memory": 16384})
    # Started for mem-lg, or already at mem-md's CPU and memory: no run of its own.
    here, groups = split_by_size(_models(a="mem-lg", b="mem-md", c="gen-xs"), "mem-lg", ecs)
    assert list(here) == ["a", "b"]
    assert groups == {"gen-xs": ["c"]}


def test_a_process_pool_gives_each_size_a_process_and_no_deployment_keeps_all() -> None:
    process = Placement(uuid.uuid4(), "process", {})
    models = _models(a=None, b="mem-lg")
    assert split_by_size(models, None, process) == ({"a": models["a"]}, {"mem-lg": ["b"]})
    assert split_by_size(models, None, None) == (models, {})  # in-process: nothing to start
    assert set(SIZES) >= {"mem-lg", "cpu-sm", "gen-xs"}
