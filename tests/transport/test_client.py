"""The outbound mTLS client, against the real server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.signing import pki
from gateway.transport.client import AgencyClient, DeliveryError

GATEWAY = "urn:x-safeguarding:agency:gateway:national"
LA = "urn:x-safeguarding:agency:la:999"


def test_presents_the_gateway_certificate_and_reuses_the_connection(gateway_server, deployment):
    url = f"{gateway_server.base_url}/connection-check"
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        first = client.request("GET", url, expected_agency=GATEWAY)
        target = ("127.0.0.1", gateway_server.port)
        (connection,) = client._idle[target]
        sock = connection.sock
        second = client.request("GET", url)
        assert client._idle[target] == [connection] and connection.sock is sock
    assert json.loads(first.body) == json.loads(second.body) == {"agency": GATEWAY}
    assert first.peer_agency == GATEWAY


def test_without_reuse_each_request_has_its_own_connection(gateway_server, deployment):
    with AgencyClient.for_certs_dir(deployment.dir, reuse_connections=False) as client:
        assert client.request("GET", f"{gateway_server.base_url}/connection-check").status == 200
        assert not any(client._idle.values())


def test_endpoint_must_be_the_expected_agency(gateway_server, deployment):
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        with pytest.raises(DeliveryError, match=f"not {LA}'s"):
            client.request("GET", f"{gateway_server.base_url}/connection-check", expected_agency=LA)


def test_endpoint_certificate_must_chain_to_the_deployment_ca(gateway_server, deployment, tmp_path):
    # A client whose deployment CA is another one does not trust this server,
    # whatever the system trust store or REQUESTS_CA_BUNDLE say.
    other = pki.create_deployment(tmp_path / "other", now=dt.datetime.now(dt.timezone.utc))
    with AgencyClient.for_certs_dir(other.directory) as client:
        with pytest.raises(DeliveryError, match="not trusted"):
            client.request("GET", f"{gateway_server.base_url}/connection-check")


def test_only_https_urls(deployment):
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        with pytest.raises(DeliveryError, match="https"):
            client.request("GET", "http://127.0.0.1/")


def test_unreachable_endpoint_is_a_delivery_error(deployment, unused_port):
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        with pytest.raises(DeliveryError):
            client.request("GET", f"https://127.0.0.1:{unused_port}/")


def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced(gateway_server, deployment):
    """gunicorn closes idle connections after its keep-alive (2 s); the next request must still go through."""
    import time

    url = f"{gateway_server.base_url}/connection-check"
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        assert client.request("GET", url).status == 200
        (stale,) = client._idle[("127.0.0.1", gateway_server.port)]
        time.sleep(3)  # past the server's keep-alive: it closes the connection
        reply = client.request("GET", url, expected_agency=GATEWAY)
        assert reply.status == 200
        assert client._idle[("127.0.0.1", gateway_server.port)] != [stale]


def test_several_idle_connections_the_server_closed_are_all_passed_over(gateway_server, deployment):
    """After a quiet spell every pooled connection is closed at the server's end: a request must neither fail nor
    retry into another closed one (each would cost a delivery a failed attempt and a backoff)."""
    import threading
    import time

    url = f"{gateway_server.base_url}/connection-check"
    target = ("127.0.0.1", gateway_server.port)
    with AgencyClient.for_certs_dir(deployment.dir) as client:
        # Three connections in the pool: three requests in flight at once.
        held = [client._checkout(target)[0] for _ in range(3)]
        for connection in held:
            connection.connect()
            connection.request("GET", "/connection-check")
            connection.getresponse().read()
            client._checkin(target, connection)
        stale = list(client._idle[target])
        assert len(stale) == 3 and not any(c.sock is None for c in stale)
        time.sleep(3)  # past the server's keep-alive (2 s): it closes all three

        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(client.request("GET", url).status))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200, 200]
        assert not any(c in stale for c in client._idle[target])
        assert all(c.sock is None for c in stale)  # closed on our side too, not leaked


def test_a_live_idle_connection_is_not_mistaken_for_a_closed_one(gateway_server, deployment):
    from gateway.transport.client import _dropped

    with AgencyClient.for_certs_dir(deployment.dir) as client:
        client.request("GET", f"{gateway_server.base_url}/connection-check")
        (connection,) = client._idle[("127.0.0.1", gateway_server.port)]
        assert not _dropped(connection)
