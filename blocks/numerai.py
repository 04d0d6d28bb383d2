"""Prefect blocks: Numerai API keys and the configuration of one Numerai model."""

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, SecretStr, field_validator

from model.names import model_block_name
from model.sizes import check_size
from model.tournaments import tournament as find_tournament

from .client import CLASSIC, NumeraiAPI

_DOCS = HttpUrl("https://docs.numer.ai/tournament/submissions")


class NumeraiCredentials(Block):
    """
    API keys of a Numerai account, and where its API lives.

    Example:
        Load stored credentials and get a ready client:
        ```python
        from blocks import NumeraiCredentials
        credentials = NumeraiCredentials.load("BLOCK_NAME")
        client = credentials.get_client()
        ```
    """

    _block_type_name = "Numerai Credentials"
    _documentation_url = _DOCS

    public_id: str = Field(description="The public id of a Numerai API key.")
    secret_key: SecretStr = Field(description="The secret key of that API key.")
    api_url: str | None = Field(
        default=None,
        description="GraphQL endpoint; empty means Numerai's own, set it for the local sandbox.",
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long one API call may take before it counts as failed.",
    )

    def get_client(self, tournament: int = CLASSIC) -> NumeraiAPI:
        """A numerapi client for these keys, with timeouts and clear errors."""
        return NumeraiAPI(
            self.public_id,
            self.secret_key.get_secret_value(),
            api_url=self.api_url,
            timeout=self.timeout_seconds,
            tournament=tournament,
        )


class NumeraiModel(Block):
    """
    One Numerai model: its name and id on Numerai, and what predicts for it.

    Example:
        Load a model's configuration:
        ```python
        from blocks import NumeraiModel
        model = NumeraiModel.load("BLOCK_NAME")
        print(model.model_name, model.predictor_path)
        ```
    """

    _block_type_name = "Numerai Model"
    _documentation_url = _DOCS

    model_name: str = Field(description="The model's name on Numerai.")
    model_id: str | None = Field(
        default=None,
        description="The model's id on Numerai; looked up by name when empty.",
    )
    predictor_path: str = Field(
        default="artifacts/example_model.pkl",
        description=(
            "A cloudpickled predict(live_features[, live_benchmark_models]) file, as Numerai's "
            "Model Uploads take it; the example model is saved the same way."
        ),
    )
    feature_set: str | None = Field(
        default=None,
        description=(
            "Optional: the feature set from features.json whose columns the predictor reads "
            "(less memory). Empty: the whole live frame, every column, as Numerai's runner "
            "gives a Model Upload."
        ),
    )
    size: str | None = Field(
        default=None,
        description=(
            "Optional task size (numerai-cli's presets: mem-lg, cpu-md, ...): the model then "
            "runs in a round run of its own size group. Empty: in the round run itself."
        ),
    )
    tournament: int = Field(
        default=CLASSIC, description="The tournament: 8 Classic, 11 Signals, 12 Crypto."
    )
    data_path: str | None = Field(
        default=None,
        description=(
            "Signals/Crypto: a parquet or CSV file passed to the predictor as its second "
            "argument (your own daily prices); empty: the second file the API lists, if any."
        ),
    )

    @field_validator("size")
    @classmethod
    def _known_size(cls, value: str | None) -> str | None:
        """A size must be one of the presets."""
        return None if value is None else check_size(value)

    @field_validator("tournament", mode="before")
    @classmethod
    def _tournament_number(cls, value: Any) -> Any:
        """Accept a tournament's name ("signals") as well as its number."""
        if isinstance(value, str | int) and not isinstance(value, bool):
            return find_tournament(value).number
        return value

    @property
    def block_name(self) -> str:
        """The name this model's block is saved under."""
        return model_block_name(self.model_name)
