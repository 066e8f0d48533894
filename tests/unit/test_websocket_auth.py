"""A realtime upgrade's key comes from the Authorization header or the key subprotocol; the key is never echoed."""

from __future__ import annotations

from server.api.websocket_auth import websocket_credentials


def test_the_key_comes_from_the_header_or_the_subprotocol_and_is_never_echoed() -> None:
    assert websocket_credentials({"authorization": "Bearer gw_live_a"}, []) == ("gw_live_a", None)
    offered = ["realtime", "openai-insecure-api-key.gw_live_b", "openai-beta.realtime-v1"]
    secret, accepted = websocket_credentials({}, offered)
    assert secret == "gw_live_b" and accepted == "realtime"
    assert websocket_credentials({"authorization": "Bearer gw_live_h"}, offered)[0] == "gw_live_h"
    assert websocket_credentials({}, ["openai-insecure-api-key."]) == (None, None)
