"""Task sizes: numerai-cli's presets, as a model's `size` in models.toml names them.

A model with a size runs in a round run of its own size group, which a deployment run starts
with the job variables of that size for its work pool's type (flows/submit_round.py).
"""

from __future__ import annotations

from typing import Any

# Task sizes as (CPU units, MiB), named after numerai-cli's presets; where numerai-cli's numbers
# are not a Fargate combination (8 vCPU needs 4 GiB steps, 16 vCPU 8 GiB steps from 32 GiB) the
# nearest valid one is taken. A deployment's own size is set in prefect-ecs.yaml (`<<: *mem-md`).
SIZES: dict[str, tuple[int, int]] = {
    "gen-xs": (512, 2048),
    "gen-sm": (1024, 4096),
    "gen-md": (2048, 8192),
    "gen-lg": (4096, 16384),
    "gen-xl": (8192, 32768),
    "gen-2xl": (16384, 65536),
    "cpu-xs": (512, 1024),
    "cpu-sm": (1024, 2048),
    "cpu-md": (2048, 4096),
    "cpu-lg": (4096, 8192),
    "cpu-xl": (8192, 16384),
    "cpu-2xl": (16384, 32768),
    "mem-xs": (512, 4096),
    "mem-sm": (1024, 8192),
    "mem-md": (2048, 16384),
    "mem-lg": (4096, 30720),
    "mem-xl": (8192, 61440),
    "mem-2xl": (16384, 81920),
    "mem-3xl": (16384, 98304),
    "mem-4xl": (16384, 122880),
}
DEFAULT_SIZE = "mem-md"  # numerai-cli's default too


def check_size(name: str) -> str:
    """The size's name, or a ValueError listing the presets."""
    if name not in SIZES:
        raise ValueError(f"unknown size {name!r}; one of {', '.join(SIZES)}")
    return name


def size_job_variables(name: str, pool_type: str) -> dict[str, Any]:
    """Job variables that give a run this size on a work pool of this type.

    ECS: the task's CPU units and MiB. Docker: the container's memory limit. Other pools (a
    process pool) have no size to set: a size group there is still a process of its own.
    """
    cpu, memory = SIZES[check_size(name)]
    if pool_type == "ecs":
        return {"cpu": cpu, "memory": memory}
    if pool_type == "docker":
        return {"mem_limit": f"{memory}m"}
    return {}
