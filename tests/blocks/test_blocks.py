"""Every block meets Prefect's block conventions and hands out a ready client."""

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from blocks import NumeraiAPI, NumeraiCredentials, NumeraiModel, model_block_name


@pytest.mark.parametrize("block_class", [NumeraiCredentials, NumeraiModel])
class TestBlockConventions(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block_class: type[Block]) -> type[Block]:
        return block_class


def test_credentials_give_a_guarded_client_and_hide_the_secret() -> None:
    credentials = NumeraiCredentials(
        public_id="PUBLIC", secret_key=SecretStr("SECRET-VALUE"), api_url="http://127.0.0.1:9/"
    )
    client = credentials.get_client()
    assert isinstance(client, NumeraiAPI)
    assert client.token == ("PUBLIC", "SECRET-VALUE")
    assert client.api_url == "http://127.0.0.1:9/"
    assert "SECRET-VALUE" not in repr(credentials)
    assert "SECRET-VALUE" not in credentials.model_dump_json()


def test_model_block_names_are_valid_block_names() -> None:
    assert model_block_name("Example_Small") == "example-small"
    assert NumeraiModel(model_name="my_model").block_name == "my-model"


def test_blocks_register_from_the_module() -> None:
    from prefect.blocks.core import Block as BaseBlock

    import blocks

    registered = {
        obj.get_block_type_slug()
        for obj in vars(blocks).values()
        if isinstance(obj, type) and issubclass(obj, BaseBlock)
    }
    assert {"numerai-credentials", "numerai-model"} <= registered


def test_prefect_block_register_finds_both_blocks(prefect_server: str) -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered 2 blocks" in result.stdout, result.stdout
    assert "Numerai Credentials" in result.stdout and "Numerai Model" in result.stdout
