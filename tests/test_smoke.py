"""The app starts, serves its health check and sends anonymous users to sign in."""


def test_health_reports_database_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_login_shows_role_home(client, login_as):
    login_as("admin")
    page = client.get("/").get_data(as_text=True)
    assert "Administration" in page
    assert "Users" in page
