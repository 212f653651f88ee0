"""Fixtures of the model tests: a broker on a manual clock, and a client on it with channel 1 open."""

from __future__ import annotations

import pytest

from lapine.testing.model import ModelBroker, ModelClient


@pytest.fixture
def model(lapine_model: ModelBroker) -> ModelBroker:
    """The plugin's lapine_model: what users of lapine.testing get is what these tests use."""
    return lapine_model


@pytest.fixture
def client(model: ModelBroker) -> ModelClient:
    return model.client()
