"""Fixtures of the model tests: a broker on a manual clock, and a client on it with channel 1 open."""

from __future__ import annotations

import pytest

from lapine.testing.model import ModelBroker, ModelClient


@pytest.fixture
def model() -> ModelBroker:
    return ModelBroker()


@pytest.fixture
def client(model: ModelBroker) -> ModelClient:
    return model.client()
