from app.db import unit_of_work
from app.members.services import create_member
from app.outbox.services import enqueue_message


def make_backlog(n: int) -> None:
    with unit_of_work():
        member = create_member(source="test", welcome=False)
        for i in range(n):
            enqueue_message(member.id, "points_earned", {"points": i}, dedupe_key=f"m{i}")


def test_ops_endpoint_reports_the_outbox_backlog(client, admin_headers):
    make_backlog(3)
    body = client.get("/admin/v1/ops", headers=admin_headers).get_json()
    assert body["outbox_backlog"] == 3
    assert body["outbox"] == {"pending": 3}
    assert set(body["queues"]) == {"default", "outbox", "maintenance"}


def test_ops_endpoint_needs_an_admin(client):
    assert client.get("/admin/v1/ops").status_code == 401


def test_metrics_are_prometheus_text(client):
    make_backlog(2)
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "huiyuan_outbox_backlog 2.0" in text
    assert 'huiyuan_queue_depth{queue="outbox"}' in text
