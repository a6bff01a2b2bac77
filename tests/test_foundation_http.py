"""Every error speaks the contract: {"error": {"code", "message", "details"}}."""

from app.extensions import db
from app.stores.models import Store


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_path_is_a_json_404(client):
    assert_error(client.get("/no/such/thing"), 404, "NOT_FOUND")


def test_wrong_method_is_a_json_405(client):
    assert_error(client.delete("/healthz"), 405, "METHOD_NOT_ALLOWED")


def test_validation_errors_name_the_fields(client, admin_headers):
    error = assert_error(
        client.post("/admin/v1/stores", json={"name": ""}, headers=admin_headers),
        422,
        "VALIDATION_ERROR",
    )
    assert set(error["details"]) == {"code", "name"}


def test_non_json_body_is_a_clear_error_and_writes_nothing(client, admin_headers):
    response = client.post(
        "/admin/v1/stores",
        data="code=X",
        headers=admin_headers,
        content_type="application/x-www-form-urlencoded",
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.get_json()
    assert db.session.query(Store).count() == 0


def test_unexpected_error_is_a_500_that_rolls_back_and_leaks_nothing(make_app):
    other = make_app()

    @other.post("/_boom")
    def boom():
        db.session.add(Store(code="HALF", name="half written"))
        db.session.flush()
        raise RuntimeError("secret internals: password=hunter2")

    with other.app_context():
        response = other.test_client().post("/_boom")
        error = assert_error(response, 500, "INTERNAL_ERROR")
        assert "hunter2" not in response.get_data(as_text=True)
        assert error["message"] == "Internal error"
        db.session.remove()
        assert db.session.query(Store).filter_by(code="HALF").count() == 0


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_readyz_touches_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_when_redis_is_unreachable(make_app):
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with broken.app_context():
        error = assert_error(broken.test_client().get("/readyz"), 503, "NOT_READY")
        assert error["details"] == {"database": "ok", "redis": "unreachable"}


def test_openapi_spec_and_docs_are_served(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"] == "Huiyuan membership API"
    assert "/admin/v1/stores" in spec["paths"]
    assert "/healthz" in spec["paths"]
    assert "adminToken" in spec["components"]["securitySchemes"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.data.lower()
    assert b"/docs-assets/swagger-ui-bundle.js" in docs.data
    asset = client.get("/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_every_documented_error_response_uses_the_contract_schema(client):
    spec = client.get("/openapi.json").get_json()
    error_schema = spec["components"]["schemas"]["Error"]
    assert error_schema["properties"]["error"]["$ref"].endswith("ErrorDetail")
