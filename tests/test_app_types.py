"""Where the app's types say a value is always there, the code refuses loudly when it is not."""

from __future__ import annotations

import asyncio

import pytest

from app.api.auth import AuthController
from telemed.access import SYSTEM


def test_who_am_i_refuses_an_actor_that_is_no_user():
    """`/me` answers with the signed-in user's id and organisation, which the API document
    promises; an actor without them (the system) is a wiring defect, never an answer with
    nulls in their place."""
    with pytest.raises(RuntimeError, match="no signed-in user"):
        asyncio.run(AuthController.me.fn(None, SYSTEM))
