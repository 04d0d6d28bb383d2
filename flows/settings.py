"""The flows' settings: one typed object, read from the environment each time it is asked for."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FlowSettings(BaseSettings):
    """NUMERAI_* settings of a round run (environment variables; defaults for production)."""

    model_config = SettingsConfigDict(env_prefix="NUMERAI_", extra="ignore")

    api_retries: int = Field(
        default=4, ge=0, description="Retries of a Numerai API call that failed transiently."
    )
    retry_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay; it doubles with each retry."
    )
    round_patience_seconds: float = Field(
        default=900.0,
        ge=0,
        description=(
            "How long a run's first call waits out an outage: a run started while Numerai does "
            "not answer submits as soon as it is back, not at the next retry."
        ),
    )
    close_margin_seconds: float = Field(
        default=15.0, ge=0, description="No upload starts closer than this to the round's close."
    )
    model_concurrency: int = Field(
        default=8,
        ge=1,
        description=(
            "Models of a round that work at once. They share the live frames read for their "
            "feature set, but each holds what its predictor makes while it runs, so this bounds "
            "the round's memory as well as its API traffic."
        ),
    )
    model_lease_seconds: float = Field(
        default=60.0,
        ge=60,  # Prefect's server refuses shorter leases
        description=(
            "Lease on a model's concurrency slot, renewed while its run works: a killed run's "
            "model is free again this long after its last renewal."
        ),
    )
    # Keys ECS injects from Secrets Manager; when both are set they win over the block.
    public_id: str | None = Field(default=None, repr=False)
    secret_key: SecretStr | None = Field(default=None, repr=False)
    api_url: str | None = Field(default=None, description="Numerai's GraphQL endpoint override.")


def flow_settings() -> FlowSettings:
    """The settings as the environment says now (tests and the season change it between runs)."""
    return FlowSettings()
