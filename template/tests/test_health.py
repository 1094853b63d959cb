def test_healthz_answers_ok(get) -> None:
    reply = get("/healthz")
    assert (reply.status, reply.body) == (200, {"status": "ok"})


def test_readyz_reports_each_backing_service(backing_services, get) -> None:
    reply = get("/readyz")
    assert reply.status == 200
    assert reply.body["status"] == "ok"
    assert all(state == "ok" for state in reply.body["checks"].values())


def test_an_unknown_path_is_a_json_404(get) -> None:
    reply = get("/no-such-page")
    assert reply.status == 404
    assert isinstance(reply.body, dict)
