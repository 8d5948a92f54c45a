"""create_app: settings from the environment, local assets, dev tools off by default."""

import logging

from dash import DiskcacheManager

from dashapp.app import create_app


def test_defaults_are_production_safe(tiny_dir, monkeypatch):
    monkeypatch.delenv("QUANTLENS_DEBUG", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    app = create_app(tiny_dir)
    assert app.server is not None
    assert app.config.serve_locally is True
    assert not app._dev_tools.ui and not app._dev_tools.props_check
    html = app.server.test_client().get("/").get_data(as_text=True)
    assert "/assets/00-bootstrap-flatly.min.css" in html
    assert "http://" not in html and "https://" not in html          # no CDN at run time
    css = app.server.test_client().get("/assets/00-bootstrap-flatly.min.css").get_data(as_text=True)
    assert "googleapis" not in css and "--bs-primary" in css
    assert isinstance(app._background_manager, DiskcacheManager)


def test_debug_only_when_asked(tiny_dir, monkeypatch):
    monkeypatch.setenv("QUANTLENS_DEBUG", "1")
    app = create_app(tiny_dir)
    assert app._dev_tools.ui


def test_model_dir_from_the_environment(tiny_dir, monkeypatch):
    monkeypatch.setenv("QUANTLENS_MODEL_DIR", str(tiny_dir))
    layout = create_app().server.test_client().get("/_dash-layout").get_data(as_text=True)
    assert "good.onnx" in layout and "cnn_fp32" not in layout
    assert str(tiny_dir) not in layout                                 # no server paths in the page


def test_redis_url_without_celery_falls_back_to_disk(tiny_dir, monkeypatch):
    import importlib.util
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log = logging.getLogger("dashapp.app")
    log.addHandler(handler)
    try:
        app = create_app(tiny_dir)
    finally:
        log.removeHandler(handler)
    if importlib.util.find_spec("celery") is None:
        assert isinstance(app._background_manager, DiskcacheManager)
        assert any("celery is not installed" in m for m in seen)
